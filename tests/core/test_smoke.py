from tests.conftest import login


def test_front_page_for_visitors(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Find a group near you" in response.data


def test_logged_in_front_page_lists_groups(client, make):
    user = make.user()
    group = make.group("Riverside Health Justice", organiser=user)
    login(client, user)
    response = client.get("/")
    assert group.name.encode() in response.data
