"""DESIGN rule 17: every model that holds a person's data takes part in erasure.

The walk goes over every mapped model; a model holds personal data when a column is
named like an address, a name, a phone number, a postcode, access needs or notes, or
when it says so with ``__personal_data__ = True``. Each such model is registered with
``core.erasure`` or listed below with the reason it is not.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

import campaign.models  # noqa: F401 - every capability's models
from campaign.core import erasure
from campaign.core.erasure import ErasureSubject
from campaign.core.models import Base

PERSONAL_COLUMN = re.compile(
    r"(^|_)(e?mail|email|name|phone|mobile|address|addr|postcode|access_needs|notes?|dob|birth)"
    r"($|_)"
)

# Tables that hold such columns but are not a supporter's data, each with its reason.
NOT_A_SUPPORTERS_DATA = {
    "users": "platform accounts (organisers, members): closed through the account's own "
             "deletion, not a group's supporter erasure",
    "groups": "the group itself: its name and the public contact address it chose",
    "invitations": "an invitation to a platform account, single use and expiring; part of "
                   "accounts, not of a supporter's record",
    "actions": "an action's title and venue address: the group's public event, no person",
    "audit_events": "ids and event names only; the IP address is the acting user's, and "
                    "rows written for a supporter's own request keep none (keep_ip=False)",
    "login_throttles": "failed logins to a platform account, keyed by a hash of the client "
                       "address; part of accounts, deleted with the user",
    "erased_addresses": "only a keyed hash of an erased address: the erasure itself, removed "
                        "when the person signs up again",
}  # fmt: skip


def _mapped_models() -> list[type]:
    return sorted(
        (mapper.class_ for mapper in Base.registry.mappers), key=lambda cls: cls.__tablename__
    )


def _personal_columns(model: type) -> list[str]:
    return [
        column.name
        for column in model.__table__.columns
        if PERSONAL_COLUMN.search(column.name) or column.info.get("personal")
    ]


def _holds_personal_data(model: type) -> bool:
    return bool(getattr(model, "__personal_data__", False) or _personal_columns(model))


def test_every_model_with_personal_data_takes_part_in_erasure(app):
    registered = erasure.registered_models()
    missing = [
        f"{model.__name__} ({', '.join(_personal_columns(model)) or 'marked'})"
        for model in _mapped_models()
        if _holds_personal_data(model)
        and model not in registered
        and model.__tablename__ not in NOT_A_SUPPORTERS_DATA
    ]
    assert not missing, (
        "These models hold personal data but are not registered with campaign.core.erasure "
        "(register an eraser and an exporter, or add them to NOT_A_SUPPORTERS_DATA with a "
        f"reason): {missing}"
    )


def test_the_allow_list_names_only_real_tables_not_also_registered(app):
    tables = {model.__tablename__: model for model in _mapped_models()}
    assert set(NOT_A_SUPPORTERS_DATA) <= set(tables)
    registered = erasure.registered_models()
    assert not [name for name in NOT_A_SUPPORTERS_DATA if tables[name] in registered]


def test_the_capabilities_holding_supporter_data_are_registered(app):
    names = {participant.name for participant in erasure.participants()}
    assert {"people", "actions", "outbox"} <= names
    from campaign.actions.models import ActionSignup
    from campaign.core.outbox import OutboxMessage
    from campaign.people.models import ConsentRecord, Supporter

    assert {Supporter, ConsentRecord, ActionSignup, OutboxMessage} <= erasure.registered_models()


def test_the_walk_catches_an_unregistered_model(app):
    """The check above can fail: a new model with a personal column is caught."""

    class VolunteerNote(Base):
        __tablename__ = "volunteer_notes_probe"
        id: sa.orm.Mapped[int] = sa.orm.mapped_column(primary_key=True)
        notes: sa.orm.Mapped[str] = sa.orm.mapped_column(sa.Text)

    class MarkedProbe(Base):
        __tablename__ = "marked_probe"
        __personal_data__ = True
        id: sa.orm.Mapped[int] = sa.orm.mapped_column(primary_key=True)

    try:
        with pytest.raises(AssertionError, match="VolunteerNote.*MarkedProbe|MarkedProbe"):
            test_every_model_with_personal_data_takes_part_in_erasure(app)
        erasure.register(
            "probe",
            models=[VolunteerNote, MarkedProbe],
            erase=lambda subject: None,
            export=lambda subject: {},
        )
        test_every_model_with_personal_data_takes_part_in_erasure(app)
    finally:
        erasure._participants.pop("probe", None)
        for probe in (VolunteerNote, MarkedProbe):
            Base.registry._dispose_cls(probe)
            Base.metadata.remove(probe.__table__)


def test_two_participants_may_not_export_the_same_section(app):
    erasure.register("clash", models=[], erase=lambda s: None, export=lambda s: {"emails": []})
    try:
        with pytest.raises(RuntimeError, match="emails"), app.test_request_context():
            erasure.export_everywhere(ErasureSubject(group_id=0, supporter_id=0, email="x@y.z"))
    finally:
        erasure._participants.pop("clash", None)
