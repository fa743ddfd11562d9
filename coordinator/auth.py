"""API keys: who a request speaks for, and which workspace it may touch."""

from __future__ import annotations

import re

from coordinator.errors import Forbidden, InvalidField, ReadOnlyKey, Unauthorized
from coordinator.events import SLUG
from coordinator.models import Principal, digest_of
from coordinator.store import Store

WORKSPACE_ID = re.compile(r"ws_[A-Za-z0-9_-]{12}")


async def authenticate(authorization: str, store: Store) -> Principal:
    """The principal of a request's ``Authorization: Bearer ek_...`` header."""
    scheme, _, api_key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        raise Unauthorized("send your API key as 'Authorization: Bearer ek_...'")
    # Only the digest is ever looked up or kept, so the lookup leaks no timing of the key.
    who = await store.principal(digest_of(api_key.strip()))
    if who is None:
        raise Unauthorized("unknown API key")
    return who


def check_writer(who: Principal) -> None:
    """Every write route asks: a read-only key (a wall screen's board) may only read."""
    if who.read_only:
        raise ReadOnlyKey("this API key is read-only: it reads listings and events, writes nothing")


def check_workspace(who: Principal, ref: str | None) -> None:
    """A key names one workspace; naming another, existing or not, is the same 403."""
    if ref is None:
        return
    if not (SLUG.fullmatch(ref) or WORKSPACE_ID.fullmatch(ref)):
        raise InvalidField(f"{ref!r} is neither a workspace slug nor a workspace id")
    if not who.owns(ref):
        raise Forbidden("this API key belongs to another workspace")
