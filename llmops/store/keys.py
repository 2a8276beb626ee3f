"""Virtual keys of ``llmops serve`` (table ``api_keys``).

A key looks like ``llx_1a2b3c4d_<43 random characters>``: 256 random bits after a short
public prefix. Only the prefix and a SHA-256 of the whole key are stored (a slow password
hash adds nothing to a key that cannot be guessed); the key itself is shown once, by
:func:`create_key`. :func:`match` finds the key a request presents by its prefix and
compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.errors import ConfigError
from llmops.store.tables import API_KEYS

KEY_START = "llx_"
PREFIX_CHARS = len(KEY_START) + 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")  # "key-NAME" names its budget
_k = API_KEYS.c


@dataclass(frozen=True)
class VirtualKey:
    """A key as stored: its name, public prefix and limits (never the key)."""

    id: str
    name: str
    prefix: str
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None
    models: tuple[str, ...] | None  # None: any model
    rpm: int | None
    tpm: int | None
    budget_usd_month: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def create_key(
    engine: Engine,
    name: str,
    now: datetime,
    *,
    models: Sequence[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    budget_usd_month: float | None = None,
) -> tuple[VirtualKey, str]:
    """Store a new key; returns it and the key itself (shown once, never stored)."""
    if not _NAME.match(name):
        raise ConfigError(
            f"key name {name!r}: 1 to 96 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    secret = f"{KEY_START}{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
    key = VirtualKey(
        id=str(uuid.uuid4()),
        name=name,
        prefix=secret[:PREFIX_CHARS],
        secret_sha256=_digest(secret),
        created_at=now,
        revoked_at=None,
        models=tuple(models) if models else None,
        rpm=rpm,
        tpm=tpm,
        budget_usd_month=budget_usd_month,
    )
    values = {**key.__dict__, "models": list(key.models) if key.models else None}
    with engine.begin() as connection:
        taken = connection.execute(sa.select(_k.id).where(_k.name == name)).first()
        if taken is not None:
            raise ConfigError(f"a key named {name!r} exists (revoke it, or pick another name)")
        connection.execute(sa.insert(API_KEYS).values(values))
    return key, secret


def list_keys(engine: Engine) -> list[VirtualKey]:
    """Every key, active and revoked, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(API_KEYS).order_by(_k.created_at, _k.name))
        return [_key(row) for row in rows.mappings()]


def revoke_key(engine: Engine, name: str, now: datetime) -> VirtualKey:
    """Revoke the key ``name``: servers refuse it within their key cache's lifetime."""
    with engine.begin() as connection:
        row = connection.execute(sa.select(API_KEYS).where(_k.name == name)).mappings().first()
        if row is None:
            raise ConfigError(f"no key named {name!r} (see `llmops keys list`)")
        if row["revoked_at"] is not None:
            raise ConfigError(f"key {name!r} was revoked on {row['revoked_at']:%Y-%m-%d}")
        connection.execute(sa.update(API_KEYS).where(_k.id == row["id"]).values(revoked_at=now))
        return _key({**row, "revoked_at": now})


def match(keys: Sequence[VirtualKey], presented: str) -> VirtualKey | None:
    """The active key ``presented`` is, if any (hashes compared in constant time)."""
    if not presented.startswith(KEY_START):
        return None
    digest = _digest(presented)
    found = None
    for key in keys:
        same = hmac.compare_digest(key.secret_sha256, digest)
        if same and key.prefix == presented[:PREFIX_CHARS] and key.active:
            found = key
    return found


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: sa.RowMapping | dict[str, object]) -> VirtualKey:
    models = row["models"]
    return VirtualKey(
        id=str(row["id"]),
        name=str(row["name"]),
        prefix=str(row["prefix"]),
        secret_sha256=str(row["secret_sha256"]),
        created_at=row["created_at"],  # type: ignore[arg-type]
        revoked_at=row["revoked_at"],  # type: ignore[arg-type]
        models=tuple(models) if isinstance(models, list) and models else None,
        rpm=row["rpm"],  # type: ignore[arg-type]
        tpm=row["tpm"],  # type: ignore[arg-type]
        budget_usd_month=row["budget_usd_month"],  # type: ignore[arg-type]
    )
