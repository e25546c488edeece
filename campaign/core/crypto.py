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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

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
