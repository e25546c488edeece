// Live progress for a background job: fetch the page again, swap in the new figures,
// and reload once the job has finished (to show its result). Without this script the
// page refreshes itself (a <meta http-equiv="refresh"> inside <noscript>).
(function () {
  "use strict";
  var INTERVAL = 1500;

  function poll() {
    var current = document.getElementById("job-progress");
    if (!current || current.getAttribute("data-finished") === "true") {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("job-progress");
        if (!fresh) {
          return;
        }
        if (fresh.getAttribute("data-finished") === "true") {
          window.location.reload();
          return;
        }
        current.replaceWith(document.importNode(fresh, true));
        window.setTimeout(poll, INTERVAL);
      })
      .catch(function () {
        window.setTimeout(poll, INTERVAL * 4);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(poll, INTERVAL);
  });
})();
