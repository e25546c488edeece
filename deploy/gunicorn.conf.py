"""gunicorn settings for Campaign: ``gunicorn -c deploy/gunicorn.conf.py campaign.wsgi:app``.

The worker count is the app's own WEB_WORKERS setting (WEB_WORKERS, else
WEB_CONCURRENCY, else 1), so create_app() knows how many processes share the rate
limits and refuses ``memory://`` storage when there are several. Set it to two per
core: sync workers, because on a 2-core machine a 3-query page ran at about a quarter
of hello-world throughput with sync workers, and gthread was unstable on database
pages. A worker sits near 55 MB; recycling after a few thousand requests keeps any
slow growth bounded. Every value can be overridden from the environment.
"""

import os

from config import web_workers

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = web_workers()
worker_class = "sync"
# Long work (sends, imports, purges) runs in Celery, so a request that takes longer
# than this is a fault, not a big job.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# The app reads the client address through ProxyFix (TRUSTED_PROXY_HOPS), not gunicorn.
forwarded_allow_ips = "127.0.0.1"
accesslog = None  # the app writes its own JSON request lines (REQUEST_LOGS)
errorlog = "-"
