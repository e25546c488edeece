"""The public directory of groups and a group's public page."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus
from tests.groups.helpers import client_for, text

GROUP_LINK = re.compile(r'<a href="/g/([^"]+)">([^<]+)</a>')


def listed(response) -> list[str]:
    """The names of the groups shown on a directory page, in order."""
    return [name for _slug, name in GROUP_LINK.findall(text(response))]


def test_directory_lists_approved_groups_only(client, make):
    make.group("Alpha Health Justice")
    make.group("Beta Waiting", status=GroupStatus.PENDING)
    make.group("Gamma Refused", status=GroupStatus.REJECTED)

    response = client.get("/groups")

    assert response.status_code == 200
    names = listed(response)
    assert "Alpha Health Justice" in names
    assert "Beta Waiting" not in names
    assert "Gamma Refused" not in names
    assert "Beta Waiting" not in text(response)
    assert "Gamma Refused" not in text(response)


def test_search_by_name_is_case_insensitive(client, make):
    make.group("Alpha Health Justice", area="Eastfield")
    make.group("Other Group", area="Westfield")

    response = client.get("/groups?q=aLPHA")

    assert response.status_code == 200
    assert listed(response) == ["Alpha Health Justice"]


def test_search_by_area_is_case_insensitive(client, make):
    make.group("First Group", area="Northbridge")
    make.group("Second Group", area="Southmoor")

    response = client.get("/groups?q=NORTHbridge")

    assert listed(response) == ["First Group"]


def test_search_does_not_find_pending_groups(client, make):
    make.group("Northbridge Waiting", area="Northbridge", status=GroupStatus.PENDING)
    response = client.get("/groups?q=Northbridge")
    assert listed(response) == []
    assert "No group matches" in text(response)


def test_search_with_no_match_shows_the_empty_state(client, make):
    make.group("Alpha Health Justice")
    response = client.get("/groups?q=zzzznothing")
    assert response.status_code == 200
    assert listed(response) == []
    assert "No group matches “zzzznothing”" in text(response)


def test_search_wildcards_match_literally(client, make):
    make.group("Alpha Health Justice")
    make.group("Beta Group")
    for q in ("%", "_"):
        response = client.get("/groups", query_string={"q": q})
        assert response.status_code == 200
        assert listed(response) == [], f"a search for {q!r} matched every group"


def test_pagination(client, make):
    for n in range(1, 31):
        make.group(f"Paged Group {n:02d}")
    total = db.session.scalar(
        select(func.count(Group.id)).where(Group.status == GroupStatus.APPROVED)
    )
    assert total >= 30

    first = client.get("/groups")
    assert first.status_code == 200
    assert len(listed(first)) == 25
    assert "Previous" not in text(first)
    assert 'rel="next"' in text(first)

    second = client.get("/groups?page=2")
    assert second.status_code == 200
    names = listed(second)
    assert len(names) == total - 25
    assert "Paged Group 30" in names
    assert not set(names) & set(listed(first))
    assert "Previous" in text(second)
    assert 'rel="prev"' in text(second)


def test_pagination_keeps_the_search(client, make):
    for n in range(1, 31):
        make.group(f"Paged Group {n:02d}")
    make.group("Unrelated")

    first = client.get("/groups?q=paged")
    assert len(listed(first)) == 25
    assert "q=paged" in text(first)

    second = client.get("/groups?q=paged&page=2")
    assert listed(second) == [f"Paged Group {n}" for n in range(26, 31)]


def test_overlong_search_is_400_with_a_message(client, make):
    make.group("Alpha Health Justice")
    response = client.get("/groups", query_string={"q": "a" * 101})
    assert response.status_code == 400
    assert "Keep the search under 100 characters." in text(response)
    assert listed(response) == []


def test_a_100_character_search_is_allowed(client):
    response = client.get("/groups", query_string={"q": "a" * 100})
    assert response.status_code == 200


def test_script_in_search_is_escaped(client, make):
    make.group("Alpha Health Justice")
    q = "<script>alert(1)</script>"

    response = client.get("/groups", query_string={"q": q})

    assert response.status_code == 200
    body = text(response)
    assert "<script" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_script_in_an_overlong_search_is_escaped(client):
    q = "<script>alert(1)</script>" + "x" * 100
    response = client.get("/groups", query_string={"q": q})
    assert response.status_code == 400
    body = text(response)
    assert "<script" not in body
    assert "&lt;script&gt;" in body


# --- a group's public page -----------------------------------------------------------------


def test_public_page_shows_an_approved_group(client, make):
    group = make.group("Alpha Health Justice", area="Eastfield")
    response = client.get(f"/g/{group.slug}")
    assert response.status_code == 200
    body = text(response)
    assert "Alpha Health Justice" in body
    assert "Eastfield" in body
    assert f'href="mailto:{group.contact_email}"' in body
    assert "waiting for approval" not in body


def test_public_page_of_an_unknown_group_is_404(client):
    assert client.get("/g/no-such-group").status_code == 404


def test_public_page_renders_markdown(client, make):
    group = make.group()
    group.description = "We *campaign* for **free care**.\n\n- one\n- two"
    db.session.flush()

    body = text(client.get(f"/g/{group.slug}"))

    assert "<em>campaign</em>" in body
    assert "<strong>free care</strong>" in body
    assert "<li>one</li>" in body


def test_public_page_sanitises_the_description(app, client, make):
    group = make.group()
    group.description = (
        "Hello <script>alert(1)</script>\n\n"
        '[x](javascript:alert(1)) and <a href="javascript:alert(2)">y</a> '
        '<img src="x" onerror="alert(3)">'
    )
    db.session.flush()

    for visitor in (client, client_for(app, make.user(admin=True))):
        response = visitor.get(f"/g/{group.slug}")
        assert response.status_code == 200
        body = text(response).lower()
        assert "<script" not in body
        assert "javascript:" not in body
        assert "onerror" not in body
        assert "<img" not in body
