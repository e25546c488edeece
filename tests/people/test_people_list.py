"""Organisers' supporter list: counts, search, filters, pagination and the empty state."""

from __future__ import annotations

import re

import pytest

from campaign.people.models import UpdatesStatus
from campaign.people.services import erase_supporter
from tests.people.organiser_helpers import make_team, supporter, text, user_client


@pytest.fixture
def team(app, make):
    return make_team(app)


def _emails(body: str) -> set[str]:
    return set(re.findall(r"[\w.+-]+@example\.org", body))


def test_the_list_shows_this_groups_supporters_and_counts(team, make):
    group = team["group"]
    supporter(group, "ana@example.org", first_name="Ana", status=UpdatesStatus.SUBSCRIBED)
    supporter(group, "bo@example.org", first_name="Bo", status=UpdatesStatus.PENDING)
    supporter(group, "cy@example.org", status=UpdatesStatus.UNSUBSCRIBED)
    supporter(group, "di@example.org")
    other_group = make.group()
    supporter(other_group, "elsewhere@example.org", first_name="Elsewhere")

    response = team["client"].get(team["base"])

    assert response.status_code == 200
    body = text(response)
    assert "4 supporters" in body
    assert "1 getting updates" in body
    assert "1 waiting to confirm" in body
    assert "1 unsubscribed" in body
    assert "1 never asked" in body
    for email in ("ana@example.org", "bo@example.org", "cy@example.org", "di@example.org"):
        assert email in body
    assert "elsewhere@example.org" not in body and "Elsewhere" not in body
    assert f'href="{team["base"]}/new"' in body
    assert f"{team['base']}.csv" in body
    assert '<table class="stacked">' in body and 'data-label="Email"' in body


def test_each_row_links_to_the_supporters_page(team):
    row = supporter(team["group"], "ana@example.org", first_name="Ana", last_name="Silva")
    body = text(team["client"].get(team["base"]))
    assert f'href="{team["base"]}/{row.id}">Ana Silva</a>' in body


def test_empty_list_points_to_the_get_updates_page(team):
    body = text(team["client"].get(team["base"]))
    assert "No supporters yet" in body
    assert f'href="/g/{team["group"].slug}/subscribe"' in body
    assert "<table" not in body


def test_erased_supporters_are_not_listed_but_counted_apart(team, app):
    group = team["group"]
    gone = supporter(group, "gone@example.org", first_name="Gone")
    supporter(group, "kept@example.org")
    with app.test_request_context():
        erase_supporter(team["organiser"], gone)

    body = text(team["client"].get(team["base"]))

    assert "1 supporter:" in body
    assert "1 more person asked to be erased" in body
    assert "gone@example.org" not in body and "Gone" not in body
    assert "erased.invalid" not in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ana", {"ana@example.org"}),  # first name, any case
        ("SILVA", {"ana@example.org", "bo@example.org"}),  # last name
        ("bo@exa", {"bo@example.org"}),  # email
        ("e1 6", {"ana@example.org"}),  # postcode, lower case
        ("ana silva", {"ana@example.org"}),  # every word must match
        ("%", set()),  # a wildcard typed in the box matches itself, not everyone
        ("_", set()),
    ],
)
def test_search_by_name_email_or_postcode(team, query, expected):
    group = team["group"]
    supporter(group, "ana@example.org", first_name="Ana", last_name="Silva", postcode="e1 6an")
    supporter(group, "bo@example.org", first_name="Bo", last_name="Silva", postcode="N1 9GU")
    supporter(group, "cy@example.org", first_name="Cy", last_name="Jones")

    response = team["client"].get(team["base"], query_string={"q": query})

    assert response.status_code == 200
    assert _emails(text(response)) == expected


def test_a_search_that_is_too_long_is_a_clear_400(team):
    response = team["client"].get(team["base"], query_string={"q": "x" * 200})
    assert response.status_code == 400
    assert "under 100 characters" in text(response)


def test_filter_by_tag_and_by_status(team):
    group = team["group"]
    ana = supporter(group, "ana@example.org", tags=["nurses"], status=UpdatesStatus.SUBSCRIBED)
    supporter(group, "bo@example.org", tags=["nurses"], status=UpdatesStatus.UNSUBSCRIBED)
    supporter(group, "cy@example.org", tags=["stall"], status=UpdatesStatus.SUBSCRIBED)
    nurses = ana.tags[0]
    client = team["client"]

    by_tag = text(client.get(team["base"], query_string={"tag": nurses.id}))
    assert _emails(by_tag) == {"ana@example.org", "bo@example.org"}
    assert "2 supporters match" in by_tag

    by_status = text(client.get(team["base"], query_string={"status": "subscribed"}))
    assert _emails(by_status) == {"ana@example.org", "cy@example.org"}

    both = text(client.get(team["base"], query_string={"tag": nurses.id, "status": "subscribed"}))
    assert _emails(both) == {"ana@example.org"}

    never = text(client.get(team["base"], query_string={"status": "none"}))
    assert _emails(never) == set()
    assert "No supporters match" in never


def test_a_tag_of_another_group_cannot_be_used_as_a_filter(team, make):
    other_group = make.group()
    elsewhere = supporter(other_group, "elsewhere@example.org", tags=["secret tag"])
    supporter(team["group"], "ana@example.org")

    response = team["client"].get(team["base"], query_string={"tag": elsewhere.tags[0].id})

    assert response.status_code == 400
    body = text(response)
    assert _emails(body) == set()
    assert "secret tag" not in body


@pytest.mark.parametrize("params", [{"status": "everyone"}, {"tag": "abc"}, {"tag": "99999"}])
def test_unknown_filter_values_are_a_clear_400(team, params):
    supporter(team["group"], "ana@example.org")
    response = team["client"].get(team["base"], query_string=params)
    assert response.status_code == 400
    assert 'class="error' in text(response)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sil", {"ana@example.org", "bo@example.org"}),  # the start of a name
        ("ilva", set()),  # not the middle of one: the search runs on indexes of prefixes
        ("ana@", {"ana@example.org"}),  # the start of an address
        ("example.org", set()),
        ("N19", {"bo@example.org"}),  # postcode, spaces ignored
        ("n1 9g", {"bo@example.org"}),  # the whole search begins the postcode
        ("bo jones", set()),  # every word must match the same person
        ("Ó'Brien", {"cy@example.org"}),
        ("Ó'b", {"cy@example.org"}),
    ],
)
def test_search_matches_the_start_of_names_addresses_and_postcodes(team, make, query, expected):
    group = team["group"]
    supporter(group, "ana@example.org", first_name="Ana", last_name="Silva", postcode="E1 6AN")
    supporter(group, "bo@example.org", first_name="Bo", last_name="Silva", postcode="N1 9GU")
    supporter(group, "cy@example.org", first_name="Cy", last_name="Ó'Brien")
    supporter(make.group(), "sil@example.org", first_name="Silvia")  # another group

    response = team["client"].get(team["base"], query_string={"q": query})

    assert response.status_code == 200
    assert _emails(text(response)) == expected


def test_search_combines_with_tag_and_status_and_counts_matches(team):
    group = team["group"]
    supporter(group, "ana@example.org", first_name="Ana", last_name="Silva", tags=["stall"],
              status=UpdatesStatus.SUBSCRIBED)  # fmt: skip
    supporter(group, "bo@example.org", first_name="Bo", last_name="Silva", tags=["stall"])
    supporter(group, "cy@example.org", first_name="Cy", last_name="Silva")
    body = text(team["client"].get(team["base"]))
    tag_id = re.search(r'<option value="(\d+)">stall</option>', body).group(1)

    both = text(team["client"].get(team["base"], query_string={"q": "silva", "tag": tag_id}))
    assert _emails(both) == {"ana@example.org", "bo@example.org"}
    assert "2 supporters match" in both
    subscribed = team["client"].get(
        team["base"], query_string={"q": "silva", "tag": tag_id, "status": "subscribed"}
    )
    assert _emails(text(subscribed)) == {"ana@example.org"}
    assert "1 supporter matches" in text(subscribed)


def test_the_list_is_paginated_and_keeps_the_filters(team, app):
    group = team["group"]
    per_page = app.config["PER_PAGE"]
    for n in range(per_page + 2):
        supporter(group, f"p{n:03d}@example.org", tags=["stall"])
    supporter(group, "untagged@example.org")
    body = text(team["client"].get(team["base"]))
    match = re.search(r'<option value="(\d+)">stall</option>', body)
    assert match, "the tag filter offers the group's tags"
    tag_id = match.group(1)

    first = text(team["client"].get(team["base"], query_string={"tag": tag_id}))
    assert "Page 1 of 2" in first
    assert len(_emails(first)) == per_page
    assert "p000@example.org" not in first  # newest first: the first added is on page 2
    next_link = re.search(r'href="([^"]+)" rel="next"', first).group(1)
    assert f"tag={tag_id}" in next_link

    second = text(team["client"].get(next_link.replace("&amp;", "&")))
    assert _emails(second) == {"p000@example.org", "p001@example.org"}
    assert "untagged@example.org" not in second


def test_dashboard_links_to_supporters_for_organisers_only(team, app):
    dashboard = f"/g/{team['group'].slug}/dashboard"
    assert f'href="{team["base"]}"' in text(team["client"].get(dashboard))
    volunteer = user_client(app, team["volunteer"])
    assert f'href="{team["base"]}"' not in text(volunteer.get(dashboard))
