"""Phone numbers and access needs are sealed at rest (DESIGN rule 4), yet organisers see them.

Raw SQL over the tables shows only ``v1:<kid>:...`` ciphertexts; the ORM, the organiser
pages and the CSV exports show the plaintext. A value moved to another row does not
open. ``flask crypto rotate`` (a real subprocess) re-seals them; the migration seals
rows written before it and opens them again on downgrade.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text

from campaign import create_app
from campaign.actions.models import Action, ActionSignup, ActionStatus
from campaign.core import migrations
from campaign.core.crypto import DecryptionError, KeyRing, new_key_spec
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.people.importing import import_supporters
from campaign.people.models import ConsentRecord, Supporter
from campaign.people.services import add_supporter
from tests import factories
from tests.conftest import links_in, login, mail_to, path_of, post, throwaway_database

ROOT = Path(__file__).resolve().parents[2]
PHONE = "07700 900123"
NEEDS = "Wheelchair user: step-free route, and I get tired after an hour"
OTHER_PHONE = "0161 496 0000"


def _raw(sql: str) -> list[tuple]:
    return [tuple(row) for row in db.session.execute(text(sql))]


def _assert_sealed(values: list[str], *secrets: str) -> None:
    for value in values:
        assert value.startswith("v1:"), value
        for secret in secrets:
            assert secret not in value


def test_raw_columns_show_no_phone_or_access_needs_while_organisers_see_them(client, make):
    organiser = make.user()
    group = make.group("Riverside Health Justice", organiser=organiser)
    action = factories.published_action(group)
    db.session.commit()
    response = post(client, f"/g/{group.slug}/actions/{action.id}",
                    {"name": "Ana Silva", "email": "ana@example.org", "phone": PHONE,
                     "access_needs": NEEDS})  # fmt: skip
    assert response.status_code == 302
    login(client, organiser)
    ben = {"email": "ben@example.org", "first_name": "Ben", "phone": OTHER_PHONE}
    added = post(client, f"/g/{group.slug}/people/new", ben)
    assert added.status_code == 302, added.get_data(as_text=True)[:300]

    signup_rows = _raw("SELECT phone, access_needs FROM action_signups")
    assert len(signup_rows) == 1
    _assert_sealed(list(signup_rows[0]), PHONE, "0770", "Wheelchair", "step-free")
    supporter_phones = [p for (p,) in _raw("SELECT phone FROM supporters") if p]
    assert len(supporter_phones) == 1
    _assert_sealed(supporter_phones, OTHER_PHONE, "0161")

    base = f"/g/{group.slug}/manage/actions/{action.id}"
    signups_page = client.get(f"{base}/signups").get_data(as_text=True)
    assert PHONE in signups_page and "step-free route" in signups_page
    signups_csv = client.get(f"{base}/signups.csv").get_data(as_text=True)
    assert PHONE in signups_csv and "step-free route" in signups_csv
    check_in = client.get(f"{base}/check-in").get_data(as_text=True)
    assert "step-free route" in check_in
    people_csv = client.get(f"/g/{group.slug}/people.csv").get_data(as_text=True)
    assert OTHER_PHONE in people_csv


def test_the_person_sees_their_own_details_behind_their_link(client, make):
    group = make.group()
    action = factories.published_action(group)
    db.session.commit()
    ana = {"name": "Ana", "email": "ana@example.org", "phone": PHONE, "access_needs": NEEDS}
    post(client, f"/g/{group.slug}/actions/{action.id}", ana)

    link = next(u for u in links_in(mail_to("ana@example.org")[-1]) if "/signup/" in u)
    page = client.get(path_of(link)).get_data(as_text=True)
    assert PHONE in page and "step-free route" in page


def test_a_sealed_value_moved_to_another_row_does_not_open(session, make):
    group = make.group()
    action = factories.published_action(group)
    first = ActionSignup(action_id=action.id, group_id=group.id, email="a@example.org",
                         name="A", phone=PHONE, access_needs=NEEDS)  # fmt: skip
    second = ActionSignup(action_id=action.id, group_id=group.id, email="b@example.org", name="B")
    db.session.add_all([first, second])
    db.session.flush()
    assert (first.phone, first.access_needs) == (PHONE, NEEDS)
    db.session.execute(
        text("UPDATE action_signups SET phone = (SELECT phone FROM action_signups WHERE id = :a) "
             "WHERE id = :b"), {"a": first.id, "b": second.id},
    )  # fmt: skip
    db.session.expire(second)
    with pytest.raises(DecryptionError):
        _ = second.phone
    # And a column's value does not open as another column of the same row.
    db.session.execute(
        text("UPDATE action_signups SET access_needs = phone WHERE id = :a"), {"a": first.id}
    )
    db.session.expire(first)
    with pytest.raises(DecryptionError):
        _ = first.access_needs


def test_changing_a_value_reseals_it_and_an_unchanged_one_writes_nothing(session, make):
    group = make.group()
    supporter, _ = add_supporter(make.user(), group, email="c@example.org", phone=PHONE)
    db.session.flush()
    stored = supporter.phone_sealed
    supporter.phone = PHONE
    assert supporter.phone_sealed == stored and supporter not in db.session.dirty
    supporter.phone = OTHER_PHONE
    db.session.flush()
    db.session.expire_all()
    again = db.session.get(Supporter, supporter.id)
    assert again.phone == OTHER_PHONE and again.phone_sealed != stored
    [(raw,)] = db.session.execute(
        text("SELECT phone FROM supporters WHERE id = :id"), {"id": supporter.id}
    ).all()
    _assert_sealed([raw], OTHER_PHONE)


def test_imported_phones_are_sealed_new_rows_and_known_ones(session, make):
    actor = make.user()
    group = make.group()
    known, _ = add_supporter(actor, group, email="known@example.org", phone="0000")
    csv_text = f"email,phone\nknown@example.org,{OTHER_PHONE}\nnew@example.org,{PHONE}\n"
    import_supporters(group, actor, csv_text, {0: "email", 1: "phone"}, source="import:t.csv")
    raw = [p for (p,) in _raw("SELECT phone FROM supporters") if p]
    assert len(raw) == 2
    _assert_sealed(raw, PHONE, OTHER_PHONE)
    db.session.expire_all()
    phones = {
        s.email: s.phone for s in db.session.scalars(select(Supporter).where(
            Supporter.group_id == group.id))
    }  # fmt: skip
    assert phones == {"known@example.org": OTHER_PHONE, "new@example.org": PHONE}


def _app(url: str, tmp_path: Path, keys: str):
    return create_app("testing", {"SQLALCHEMY_DATABASE_URI": url, "ENCRYPTION_KEYS": keys,
                                  "MAIL_FILE_DIR": str(tmp_path / "mail")})  # fmt: skip


def _people(group_id: int) -> None:
    action = Action(group_id=group_id, title="Stall", starts_at=utcnow() + timedelta(days=1),
                    ends_at=utcnow() + timedelta(days=1, hours=1),
                    status=ActionStatus.PUBLISHED)  # fmt: skip
    db.session.add(action)
    db.session.flush()
    supporter = Supporter(group_id=group_id, email="ana@example.org", first_name="Ana",
                          phone=PHONE)  # fmt: skip
    db.session.add(supporter)
    db.session.flush()
    db.session.add(ConsentRecord(supporter_id=supporter.id, group_id=group_id,
                                 action="granted", method="form"))  # fmt: skip
    db.session.add(ActionSignup(action_id=action.id, group_id=group_id, email="ana@example.org",
                                supporter_id=supporter.id, name="Ana", phone=PHONE,
                                access_needs=NEEDS))  # fmt: skip
    db.session.commit()


def test_flask_crypto_rotate_reseals_phones_and_access_needs(tmp_path):
    old_key, new_key = new_key_spec("old"), new_key_spec("new")
    with throwaway_database("sqlite", tmp_path) as url:
        app = _app(url, tmp_path, old_key)
        with app.app_context():
            migrations.upgrade("head")
            _people(factories.group().id)
            db.engine.dispose()
        env = os.environ | {
            "CAMPAIGN_ENV": "development",
            "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": url,
            "SECRET_KEY": "rotate-test-secret",
            "ENCRYPTION_KEYS": f"{new_key},{old_key}",
            "PYTHONPATH": str(ROOT),
        }
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "campaign", "crypto", "rotate"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "3 value(s) re-encrypted" in done.stdout

        app = _app(url, tmp_path, f"{new_key},{old_key}")
        with app.app_context():
            values = [
                *[v for (v,) in db.session.execute(text("SELECT phone FROM supporters"))],
                *[v for row in db.session.execute(
                    text("SELECT phone, access_needs FROM action_signups")) for v in row],
            ]  # fmt: skip
            assert len(values) == 3 and all(v.startswith("v1:new:") for v in values)
            # Only the new key is needed from now on.
            app.extensions["campaign_keyring"] = KeyRing.parse(new_key)
            signup = db.session.scalars(select(ActionSignup)).one()
            assert (signup.phone, signup.access_needs) == (PHONE, NEEDS)
            assert db.session.scalars(select(Supporter)).one().phone == PHONE
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def test_the_migration_seals_plaintext_rows_and_downgrade_opens_them(empty_database, tmp_path):
    app = _app(empty_database, tmp_path, new_key_spec("m1"))
    with app.app_context():
        migrations.upgrade("head")
        _people(factories.group().id)
        migrations.downgrade("0005_actions_signups")  # as it was: plaintext columns
        db.session.close()
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT phone FROM supporters")).scalar() == PHONE
            assert tuple(
                connection.execute(text("SELECT phone, access_needs FROM action_signups")).one()
            ) == (PHONE, NEEDS)
        migrations.upgrade("head")
        with db.engine.connect() as connection:
            [(phone,)] = connection.execute(text("SELECT phone FROM supporters")).all()
            [row] = connection.execute(text("SELECT phone, access_needs FROM action_signups"))
            _assert_sealed([phone, *row], PHONE, NEEDS)
            # Rebuilding the tables on SQLite lost nothing that points at them.
            assert connection.execute(sa.text("SELECT count(*) FROM consent_records")).scalar()
            assert (
                connection.execute(text("SELECT supporter_id FROM action_signups")).scalar()
                is not None
            )
        signup = db.session.scalars(select(ActionSignup)).one()
        assert (signup.phone, signup.access_needs) == (PHONE, NEEDS)
        db.session.close()
        assert migrations.drift() == []
        db.engine.dispose()


def test_the_sealed_fields_are_the_ones_docs_privacy_lists():
    import campaign.models  # noqa: F401 - every capability's models
    from campaign.core.crypto import sealed_fields

    listed = {(f.table, f.column) for fields in sealed_fields().values() for f in fields}
    assert listed == {
        ("supporters", "phone"),
        ("action_signups", "phone"),
        ("action_signups", "access_needs"),
    }
    privacy = (ROOT / "docs" / "privacy.md").read_text()
    for table, column in listed:
        assert f"`{table}.{column}`" in privacy
