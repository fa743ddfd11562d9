"""Claims made on purpose, over HTTP: reserve files, directories and globs, release them,
request a file someone else holds (and join its queue), and list the open requests.

The companion's ``reserve``, ``release`` and ``request_file`` tools call these routes;
the board reads the requests. A conversation is named as the hooks name it (its
``conversation_id``: Claude Code's or Codex's session id, Cursor's conversation id), so
a claim made here is the same session's as its edits.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from coordinator.agents import normalise_agent
from coordinator.asgi import check_workspace, check_writer, json_response, principal, read_body
from coordinator.config import Settings
from coordinator.errors import (
    AlreadyReserved,
    Conflict,
    InvalidField,
    InvalidJson,
    NothingToRequest,
    NotHolder,
)
from coordinator.events import MAX_FILES, MAX_TASK, check_slug, first_line, key_paths
from coordinator.globs import claim_key, is_pattern
from coordinator.models import Principal, Reserved, session_id_for
from coordinator.paths import fold_case
from coordinator.render import ADVICE, deny_message, minutes_left, over_cap_message
from coordinator.store import Store

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Path = Annotated[str, msgspec.Meta(max_length=1024)]
MAX_MINUTES = 240
MAX_NOTE = 300


class _Claimant(msgspec.Struct, kw_only=True):
    conversation_id: Id
    workspace_slug: str | None = None
    agent_type: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    cwd: Path | None = None
    workspace_roots: Annotated[list[Path], msgspec.Meta(max_length=64)] | None = None


B = TypeVar("B", bound=_Claimant)


class ReserveBody(_Claimant, kw_only=True):
    paths: Annotated[list[Path], msgspec.Meta(min_length=1)]
    task: Annotated[str, msgspec.Meta(max_length=MAX_TASK)] | None = None
    minutes: Annotated[float, msgspec.Meta(ge=1, le=MAX_MINUTES)] | None = None


class ReleaseBody(_Claimant, kw_only=True):
    paths: list[Path] | None = None


class RequestBody(_Claimant, kw_only=True):
    path: Path
    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE)] | None = None


class Claims:
    """The routes of claims made on purpose, on one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def reserve(self, request: Request) -> Response:
        who, body = await self._claimant(request, ReserveBody)
        if len(body.paths) > MAX_FILES:
            raise InvalidField(f"reserve at most {MAX_FILES} paths at once, not {len(body.paths)}")
        sid = session_id_for(who.workspace, body.conversation_id)
        roots = await self._roots(who, sid, body)
        # One claim per lock: two spellings of one path are one claim.
        keyed = (claim_key(path, roots, body.cwd) for path in body.paths)
        claims = list({fold_case(key): (key, spec) for key, spec in keyed}.values())
        fields = self._fields(who, body)
        if body.task:
            fields["current_task"] = first_line(body.task) or ""
        outcome = await self.store.reserve(
            who, sid, body.conversation_id, fields, claims, body.minutes
        )
        if isinstance(outcome, Reserved):
            return json_response(outcome)
        if outcome.conflict is not None:
            raise AlreadyReserved(f"Nothing reserved: {deny_message(outcome.conflict)}. {ADVICE}")
        assert outcome.over_cap is not None
        if outcome.over_cap.scope == "patterns":
            raise Conflict(
                f"Nothing reserved: the team holds {outcome.over_cap.held} directory/glob "
                f"claims, and COORDINATOR_MAX_PATTERNS = {outcome.over_cap.cap} is the most. "
                f"Reserve files, or release a directory or glob claim."
            )
        raise Conflict(over_cap_message(outcome.over_cap))

    async def release(self, request: Request) -> Response:
        who, body = await self._claimant(request, ReleaseBody)
        sid = session_id_for(who.workspace, body.conversation_id)
        paths: list[str] = []
        if body.paths:
            roots = await self._roots(who, sid, body)
            paths = [claim_key(p, roots, body.cwd)[0] for p in body.paths]
        released = await self.store.release(who, sid, paths)
        if isinstance(released, str):
            raise NotHolder(
                f"Nothing released: you do not hold {released} (reserve names exactly what "
                f"you claimed: a file, a directory with its trailing slash, or a glob)"
            )
        return json_response(released)

    async def request_file(self, request: Request) -> Response:
        who, body = await self._claimant(request, RequestBody)
        if is_pattern(body.path):
            raise InvalidField(f"request_file takes one file, not {body.path!r}")
        sid = session_id_for(who.workspace, body.conversation_id)
        roots = await self._roots(who, sid, body)
        (path,) = key_paths([body.path], roots, body.cwd)
        fields = self._fields(who, body)
        note = " ".join((body.note or "").split())
        answer = await self.store.request_file(who, sid, body.conversation_id, fields, path, note)
        if not isinstance(answer, tuple):
            return json_response(answer)
        status, number = answer
        match status:
            case "yours":
                raise NothingToRequest(f"You hold {path} already: nothing to request")
            case "next":
                left = minutes_left(number)
                raise NothingToRequest(
                    f"{path} is held for you (next in line) for {left} more min: edit it now"
                )
            case "free":
                raise NothingToRequest(
                    f"Nobody holds {path}: nothing to request; edit it, or reserve it first"
                )
        raise Conflict(
            f"Not queued: {number} is the most "
            + ("waiters a file may have" if status == "queue_full" else "files requested at once")
        )

    async def requests(self, request: Request) -> Response:
        who = await principal(request.scope, self.store)
        check_workspace(who, request.path_params["ref"])
        return json_response(await self.store.requests(who))

    async def _claimant(self, request: Request, kind: type[B]) -> tuple[Principal, B]:
        who = await principal(request.scope, self.store)
        check_writer(who)
        raw = await read_body(request.scope, request.receive, self.settings.max_body_bytes)
        try:
            body = msgspec.json.decode(raw, type=kind)
        except msgspec.ValidationError as exc:
            raise InvalidField(str(exc)) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise InvalidJson(f"the body is not valid JSON: {exc}") from None
        check_workspace(who, check_slug(body.workspace_slug))
        return who, body

    async def _roots(self, who: Principal, sid: str, body: _Claimant) -> tuple[str, ...]:
        """Where the body's relative paths are keyed from: the roots it names, else those
        its conversation's start named, else its cwd (as the hook route keys them)."""
        if body.workspace_roots:
            return tuple(body.workspace_roots)
        remembered = await self.store.roots(who, sid)
        if remembered:
            return remembered
        return (body.cwd,) if body.cwd else ()

    @staticmethod
    def _fields(who: Principal, body: _Claimant) -> dict[str, str]:
        fields = {"user_name": who.user_name, "key_id": who.key_id}
        agent = normalise_agent(body.agent_type)
        if agent:
            fields["agent_type"] = agent
        if body.cwd:
            fields["cwd"] = body.cwd
        return fields
