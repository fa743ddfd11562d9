"""The domain values the store returns and the API answers with."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


def session_id_for(workspace: str, conversation_id: str) -> str:
    """A pure function of (workspace, conversation): a resumed conversation keeps its id,
    so it finds its reservations its own, whatever agent it runs in."""
    digest = hashlib.sha256(f"{workspace}\0{conversation_id}".encode()).hexdigest()
    return f"sess_{digest[:24]}"


def subagent_id_for(workspace: str, conversation_id: str, agent_id: str) -> str:
    """The session of a subagent (an event with ``agent_id``): a pure function of
    (workspace, conversation, agent id), never the id of a conversation's own session:
    what it hashes starts with a NUL, which no workspace slug does."""
    digest = hashlib.sha256(f"\0{workspace}\0{conversation_id}\0{agent_id}".encode()).hexdigest()
    return f"sess_{digest[:24]}"


def digest_of(api_key: str) -> str:
    """What is stored of an API key, and looked up: its SHA-256."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id_of(digest: str) -> str:
    """The public name of an API key: the head of its digest (what `keys list` shows);
    lib.lua's refuse_other_key takes the same head of the caller's digest."""
    return digest[:16]


def from_ms(epoch_ms: int) -> datetime:
    """Epoch milliseconds as a UTC time to the second (encoded as ``...T..:..:..Z``)."""
    return datetime.fromtimestamp(epoch_ms // 1000, UTC)


class Principal(msgspec.Struct, frozen=True):
    """Who an API key speaks for: one person in one workspace. A read-only key (a wall
    screen's board) reads the listings and the event stream, and may write nothing."""

    workspace: str
    workspace_id: str
    user_name: str
    digest: str
    read_only: bool = False

    def owns(self, ref: str) -> bool:
        return ref in (self.workspace, self.workspace_id)

    @property
    def key_id(self) -> str:
        return key_id_of(self.digest)


class Workspace(msgspec.Struct, frozen=True):
    slug: str
    id: str
    name: str
    created_at: datetime


class Identity(msgspec.Struct, frozen=True):
    """Who an API key speaks for (``GET /whoami``): the team board subscribes to this
    workspace."""

    workspace: str
    workspace_id: str
    workspace_name: str
    user_name: str


class KeyInfo(msgspec.Struct, frozen=True):
    """An API key as listed: its digest's head names it, the key itself is never kept."""

    key_id: str
    workspace: str
    user_name: str
    created_at: datetime
    read_only: bool = False


class Revoked(msgspec.Struct, frozen=True):
    """A revoked key, and what revoking it ended."""

    key: KeyInfo
    sessions_ended: int
    files_released: int


class Holder(msgspec.Struct, frozen=True):
    """Who holds a file; a subagent names its parent session and its type."""

    session_id: str
    user_name: str | None
    agent_type: str | None
    current_task: str | None
    parent_session_id: str | None = None
    subagent_type: str | None = None


class HeldFile(msgspec.Struct, frozen=True):
    """A file the caller wanted is reserved by someone else: through ``via`` (the
    directory or glob they claimed, or the file of theirs a claimed pattern overlaps), or
    held for them as the next in line for it (``next_in_line``); the whole file, or the
    ``symbol`` of it (of ``symbol_kind``, when its claimer told) the caller's claim
    overlaps."""

    file_path: str
    holder: Holder
    remaining_ms: int
    via: str | None = None
    next_in_line: bool = False
    symbol: str | None = None
    symbol_kind: str | None = None


class Decision(msgspec.Struct, frozen=True):
    text: str
    user_name: str
    created_at: datetime
    session_id: str | None = None


class TeammateLine(msgspec.Struct, frozen=True):
    user_name: str
    agent_type: str | None
    current_task: str | None
    subagent_of: str | None = None  # a subagent: its parent session
    subagent_type: str | None = None


class LockLine(msgspec.Struct, frozen=True):
    file_path: str
    user_name: str | None
    symbol: str | None = None  # None: the whole file


class Briefing(msgspec.Struct, frozen=True):
    """The newest few of everything the caller's team is doing, with totals.

    ``locks`` are the newest files others hold (up to the briefing's scan), ``folders``
    the directories the caller holds files in, and ``focus`` the directory its agent works
    in, as a key (None: the project's root): what lies near them is listed first.
    """

    now: datetime
    agents: list[TeammateLine]
    agents_total: int
    locks: list[LockLine]
    locks_total: int
    decisions: list[Decision]
    folders: list[str] = []
    focus: str | None = None


class News(msgspec.Struct, frozen=True):
    """What changed for a session since it last heard: files it touched that someone
    else reserved since, and decisions made since."""

    taken: list[HeldFile]
    decisions: list[Decision]


class OverCap(msgspec.Struct, frozen=True):
    """A claim would take the session (``scope`` 'session') or the sessions of its API key
    (``scope`` 'key') past the most files they may hold."""

    scope: str
    cap: int
    held: int


class Note(msgspec.Struct, frozen=True):
    """What a session is told at its next event: someone waits for a file it holds
    (``kind`` 'waiting'), or a file it waited for is now held for it ('free')."""

    kind: str
    path: str
    by: str | None = None
    agent: str | None = None
    note: str | None = None
    via: str | None = None
    position: int | None = None
    until_ms: int | None = None


class HookOutcome(msgspec.Struct, frozen=True):
    """What one event's script did. ``duplicate``: the event had come before (the same
    id within the duplicate window); this is the answer it got then, and nothing changed."""

    created: bool
    conflict: HeldFile | None = None
    over_cap: OverCap | None = None
    briefing: Briefing | None = None
    news: News | None = None
    notes: list[Note] = []
    duplicate: bool = False


class Reserved(msgspec.Struct, frozen=True):
    """What ``reserve`` claimed (files, directories and globs), and until when."""

    reserved: list[str]
    expires_at: datetime


class Released(msgspec.Struct, frozen=True):
    released: list[str]


class Waiter(msgspec.Struct, frozen=True):
    session_id: str
    user_name: str | None
    agent_type: str | None
    note: str | None
    requested_at: datetime


class Requested(msgspec.Struct, frozen=True):
    """``request_file``'s answer: the place in the file's queue, and who holds it."""

    file_path: str
    position: int
    holder: Holder
    remaining_s: float
    via: str | None = None
    next_in_line: bool = False


class FileRequest(msgspec.Struct, frozen=True):
    """An open request: a file, who holds it (or whom it is held for, next in line), and
    who waits for it, first come first."""

    file_path: str
    holder: Holder | None
    via: str | None
    next_in_line: bool
    waiters: list[Waiter]


class Ended(msgspec.Struct, frozen=True):
    """What ending a session did: whether it was live, the files released, and whether
    it had ended already (a retry: ``released`` is then what the first end released)."""

    live: bool
    released: int
    before: bool


class Session(msgspec.Struct, frozen=True):
    id: str
    user_name: str | None
    agent_type: str | None
    current_task: str | None
    current_file: str | None
    branch: str | None
    conversation_id: str | None
    last_heartbeat: datetime | None
    reserved_files: list[str]  # every file it holds, whole or some of its symbols
    # A subagent's session: its parent session, the agent's id for it, and its type.
    parent_session_id: str | None = None
    agent_id: str | None = None
    subagent_type: str | None = None
    # The files it holds only some symbols of: path -> names (symbol_claims.py).
    reserved_symbols: dict[str, list[str]] = msgspec.field(default_factory=dict)


S = TypeVar("S", bound=Session)


def under_parents(sessions: list[S]) -> list[S]:
    """The sessions in their order, each subagent moved right after its parent session
    when that is listed too (listings show subagents under their parent)."""
    listed = {s.id for s in sessions}
    children: dict[str, list[S]] = {}
    for s in sessions:
        if s.parent_session_id in listed:
            children.setdefault(s.parent_session_id or "", []).append(s)
    ordered: list[S] = []
    for s in sessions:
        if s.parent_session_id not in listed:
            ordered += [s, *children.get(s.id, [])]
    return ordered


class Reservation(msgspec.Struct, frozen=True):
    file_path: str
    session_id: str
    conversation_id: str | None
    user_name: str | None
    current_task: str | None
    expires_at: datetime
    # Held by a subagent: its parent session and its type.
    parent_session_id: str | None = None
    subagent_type: str | None = None
    symbol: str | None = None  # a symbol of the file (symbol_claims.py); None: the whole file


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a listing: its rows, how many are live in all, and the cursor of the
    next page (None: this was the last)."""

    items: list[T]
    total: int
    next_cursor: str | None


# -- `coordinator status`: the listings' rows, with times relative to Redis's clock ---------


class LiveSession(Session, frozen=True, kw_only=True):
    """A session as the listing gives it, and for how long it has been idle."""

    idle_s: float


class LiveReservation(Reservation, frozen=True, kw_only=True):
    """A reservation as the listing gives it, its holder's agent, and the time it has left."""

    agent_type: str | None
    expires_in_s: float


class RecentDecision(Decision, frozen=True, kw_only=True):
    """A decision as the listing gives it, and how long ago it was made."""

    age_s: float


class WorkspaceStatus(msgspec.Struct, frozen=True):
    """One workspace at one instant (``now_ms``, Redis's clock): the first rows of each
    listing, and how many there are in all."""

    slug: str
    id: str
    name: str
    now_ms: int
    sessions: list[LiveSession]
    sessions_total: int
    reservations: list[LiveReservation]
    reservations_total: int
    decisions: list[RecentDecision]


class RedisMemory(msgspec.Struct, frozen=True):
    """What Redis tells of its memory (``INFO memory``); on a cluster, of its worst primary."""

    policy: str | None  # its maxmemory-policy; None when it does not tell
    full: bool  # over its maxmemory: under noeviction it refuses every write
