"""Erasure and the data download as a contract between capabilities.

Every capability that keeps rows about a person registers here, for its own models,
an *eraser* (scrub or delete those rows) and an *exporter* (what they hold, for the
person's data download). ``people.services.erase_supporter`` and ``export_supporter``
call every participant, so a capability added later takes part by registering, and
the lower layers never import it. ``tests/core/test_erasure_registry.py`` walks every
mapped model and fails when one that holds personal data is not registered.

A model says it holds personal data by a column named like an address, a name, a
phone number, a postcode, access needs or notes, or by ``__personal_data__ = True``.

An erased address is remembered only as a keyed hash (``address_hash``): enough for
imports and organisers' additions to recognise it, useless to anyone reading the
database without the secret key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app


@dataclass(frozen=True)
class ErasureSubject:
    """Whom to erase or export: one supporter of one group, and their address as it was."""

    group_id: int
    supporter_id: int
    email: str


Eraser = Callable[[ErasureSubject], None]
Exporter = Callable[[ErasureSubject], dict[str, Any]]


@dataclass(frozen=True)
class Participant:
    name: str
    models: tuple[type, ...]
    erase: Eraser
    export: Exporter
    order: int


_participants: dict[str, Participant] = {}


def register(
    name: str,
    *,
    models: Iterable[type],
    erase: Eraser,
    export: Exporter,
    order: int = 50,
) -> None:
    """Take part in erasure and the data download for ``models``.

    ``export`` returns the sections it adds to the download (their keys must not clash
    with another participant's). Lower ``order`` runs first; the people capability,
    whose rows the others point at, runs last (it replaces the address they match on).
    Registering the same name again replaces it (a module imported twice).
    """
    _participants[name] = Participant(
        name=name, models=tuple(models), erase=erase, export=export, order=order
    )


def participants() -> list[Participant]:
    return sorted(_participants.values(), key=lambda p: (p.order, p.name))


def registered_models() -> set[type]:
    return {model for participant in _participants.values() for model in participant.models}


def erase_everywhere(subject: ErasureSubject) -> list[str]:
    """Run every participant's eraser in the caller's transaction; returns their names."""
    done = []
    for participant in participants():
        participant.erase(subject)
        done.append(participant.name)
    return done


def export_everywhere(subject: ErasureSubject) -> dict[str, Any]:
    """Every participant's sections of the data download, in one dictionary."""
    data: dict[str, Any] = {}
    for participant in participants():
        for key, value in participant.export(subject).items():
            if key in data:
                raise RuntimeError(f"two erasure participants export {key!r}")
            data[key] = value
    return data


def address_hash(email: str) -> str:
    """A keyed digest of an address (HMAC-SHA256, key derived from ``SECRET_KEY``).

    Changing ``SECRET_KEY`` makes earlier digests unrecognisable: erased people could
    then be imported again (docs/privacy.md says so).
    """
    secret = current_app.config["SECRET_KEY"].encode()
    key = hmac.new(secret, b"campaign.erased-address.v1", hashlib.sha256).digest()
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()
