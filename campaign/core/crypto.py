"""Field encryption for sensitive columns: AES-GCM with a key id, rotatable.

Stored form: ``v1:<kid>:<base64url(nonce || ciphertext)>``. The table, column and row id
are bound in as associated data, so a value copied into another row or column will not
decrypt. Keys come from ``ENCRYPTION_KEYS`` ("kid:base64key,kid2:base64key2"); the first
key encrypts, every key decrypts, so rotation is: put a new key first, run
``flask crypto rotate``, then drop the old key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

PREFIX = "v1"


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, bytes]
    primary: str

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        primary = ""
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, sep, b64 = part.partition(":")
            if not sep or not kid or ":" in kid:
                raise ValueError("ENCRYPTION_KEYS entries look like kid:base64key")
            key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            if len(key) not in (16, 24, 32):
                raise ValueError(f"encryption key {kid!r} must be 16, 24 or 32 bytes")
            keys[kid] = key
            primary = primary or kid
        if not keys:
            raise ValueError("ENCRYPTION_KEYS is empty")
        return cls(keys=keys, primary=primary)


def new_key_spec(kid: str = "k1") -> str:
    """A fresh key entry for ENCRYPTION_KEYS."""
    return f"{kid}:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _keyring() -> KeyRing:
    ring = current_app.extensions.get("campaign_keyring")
    if ring is None:
        ring = KeyRing.parse(current_app.config["ENCRYPTION_KEYS"])
        current_app.extensions["campaign_keyring"] = ring
    return ring


def _aad(table: str, column: str, row_id: int | str) -> bytes:
    return f"{table}.{column}#{row_id}".encode()


def encrypt_field(plaintext: str, *, table: str, column: str, row_id: int | str) -> str:
    ring = _keyring()
    nonce = os.urandom(12)
    sealed = AESGCM(ring.keys[ring.primary]).encrypt(
        nonce, plaintext.encode(), _aad(table, column, row_id)
    )
    body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return f"{PREFIX}:{ring.primary}:{body}"


def decrypt_field(stored: str, *, table: str, column: str, row_id: int | str) -> str:
    try:
        version, kid, body = stored.split(":", 2)
    except ValueError:
        raise DecryptionError("not an encrypted value") from None
    ring = _keyring()
    if version != PREFIX or kid not in ring.keys:
        raise DecryptionError(f"unknown key id {kid!r}")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    try:
        plain = AESGCM(ring.keys[kid]).decrypt(raw[:12], raw[12:], _aad(table, column, row_id))
    except InvalidTag:
        raise DecryptionError("value does not belong here or key is wrong") from None
    return plain.decode()


def needs_rotation(stored: str) -> bool:
    """True when a value was sealed with a key that is no longer the primary one."""
    return stored.split(":", 2)[1] != _keyring().primary


# --- sealed model attributes --------------------------------------------------------------------
#
# A model keeps the ciphertext in a mapped column (``phone_sealed``, named ``phone`` in the
# table) and exposes the plaintext through a ``SealedText`` attribute (``phone``). The row id
# is part of the associated data, and a new row has no id until it is inserted: its value
# waits on the instance, the INSERT writes an empty placeholder, and an after-flush step
# seals the value with the new id in the same transaction. Plaintext never reaches the
# database. Empty values are stored empty (a ciphertext would show its length anyway).

_SEALED_FIELDS: dict[type, list[SealedText]] = {}


class SealedText:
    """A plaintext attribute over an encrypted column of the same model."""

    def __init__(self, stored_attr: str, column: str) -> None:
        self.stored_attr = stored_attr
        self.column = column

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner
        self.table = owner.__tablename__
        self._pending = f"_sealed_pending_{name}"
        self._cache = f"_sealed_cache_{name}"
        _SEALED_FIELDS.setdefault(owner, []).append(self)
        _listen_once()

    def seal(self, plaintext: str, row_id: int) -> str:
        """The stored form of ``plaintext`` for row ``row_id`` ('' stays '')."""
        if not plaintext:
            return ""
        return encrypt_field(plaintext, table=self.table, column=self.column, row_id=row_id)

    def open(self, stored: str | None, row_id: int) -> str:
        """The plaintext of a stored value read with plain SQL (e.g. a CSV export)."""
        if not stored:
            return ""
        return decrypt_field(stored, table=self.table, column=self.column, row_id=row_id)

    def __get__(self, obj: object, owner: type | None = None) -> object:
        if obj is None:
            return self  # never a column: a query on ciphertext would silently match nothing
        state = obj.__dict__
        if self._pending in state:
            return state[self._pending]
        stored = getattr(obj, self.stored_attr)
        if not stored:
            return ""
        cached = state.get(self._cache)
        if cached is not None and cached[0] == stored:
            return cached[1]
        plain = self.open(stored, obj.id)  # type: ignore[attr-defined]
        state[self._cache] = (stored, plain)
        return plain

    def __set__(self, obj: object, value: str | None) -> None:
        value = value or ""
        identity = sa.inspect(obj).identity
        if identity is None:  # not inserted yet: sealed after the flush gives it an id
            obj.__dict__[self._pending] = value
            if getattr(obj, self.stored_attr) is None:
                setattr(obj, self.stored_attr, "")
            return
        if value == self.__get__(obj):
            return  # unchanged: no new ciphertext, no UPDATE
        sealed = self.seal(value, identity[0])
        setattr(obj, self.stored_attr, sealed)
        obj.__dict__[self._cache] = (sealed, value)


def sealed_fields() -> dict[type, list[SealedText]]:
    """Every model attribute stored encrypted, by model (for rotation and the docs test)."""
    return _SEALED_FIELDS


_listening = False


def _listen_once() -> None:
    global _listening
    if not _listening:
        sa.event.listen(Session, "after_flush", _seal_inserted_rows)
        _listening = True


def _seal_inserted_rows(session: Session, _flush_context: object) -> None:
    """Seal the values of rows this flush inserted, now that they have ids."""
    for obj in list(session.new):
        values: dict[str, str] = {}
        for field in _SEALED_FIELDS.get(type(obj), ()):
            if field._pending not in obj.__dict__:
                continue
            plain = obj.__dict__.pop(field._pending)
            sealed = field.seal(plain, obj.id)  # type: ignore[attr-defined]
            obj.__dict__[field._cache] = (sealed, plain)
            set_committed_value(obj, field.stored_attr, sealed)
            if sealed:
                values[field.column] = sealed
        if values:
            table = obj.__table__  # type: ignore[attr-defined]
            session.connection().execute(
                sa.update(table).where(table.c.id == obj.id).values(values)  # type: ignore[attr-defined]
            )


def reseal_stored_fields(batch: int = 500) -> int:
    """Re-encrypt every sealed model column whose key is not the primary one.

    Works on plain rows in batches (no ORM objects), so it suits a large list. Returns
    how many values were re-encrypted; the caller commits.
    """
    from campaign.extensions import db

    count = 0
    for owner, fields in _SEALED_FIELDS.items():
        table = owner.__table__  # type: ignore[attr-defined]
        for field in fields:
            column = table.c[field.column]
            last_id = 0
            while True:
                rows = db.session.execute(
                    sa.select(table.c.id, column)
                    .where(table.c.id > last_id, column != "")
                    .order_by(table.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                last_id = rows[-1][0]
                changes = [
                    {"row_id": row_id, "value": field.seal(field.open(stored, row_id), row_id)}
                    for row_id, stored in rows
                    if needs_rotation(stored)
                ]
                if changes:
                    db.session.execute(
                        sa.update(table)
                        .where(table.c.id == sa.bindparam("row_id"))
                        .values({field.column: sa.bindparam("value")}),
                        changes,
                    )
                count += len(changes)
    return count
