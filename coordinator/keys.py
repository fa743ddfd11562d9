"""Every Redis key the service uses, and nothing else builds one.

All keys of a workspace share one hash tag, ``{slug}``, so each script touches a
single slot (Redis Cluster keeps working). The two global keys are only ever read
or written with single-key commands.

=============================  ======  =====================  ==========================
key                            type    TTL                    written by
=============================  ======  =====================  ==========================
coord:apikey:<sha256>          hash    none                   ``keys create`` / revoke
coord:wsid:<ws_id>             string  none                   ``workspaces create``
coord:{ws}:workspace           hash    none                   ``workspaces create``
coord:{ws}:apikeys             hash    none                   ``keys create`` / revoke
coord:{ws}:session:<sid>       hash    session TTL            every hook event
coord:{ws}:files:<sid>         set     reservation TTL        claims, every event
coord:{ws}:holder:<sid>        hash    reservation TTL        claims, every event
coord:{ws}:told:<sid>          hash    reservation TTL        claims, denies, prompts
coord:{ws}:roots:<sid>         hash    longer of the two TTLs Claude Code starts (bridge)
coord:{ws}:subagents:<sid>     set     longer of the two TTLs its subagents' events
coord:{ws}:lock:<folded path>  string  reservation TTL        claims (value = sid)
coord:{ws}:lock:<fp>␀<symbol>  string  reservation TTL        symbol claims (value = sid)
coord:{ws}:lock:<fp>␀          hash    its newest claim's TTL symbol claims (name → kind)
coord:{ws}:ended:<sid>         string  session TTL            session ends (files released)
coord:{ws}:once:<sid>:<event>  string  duplicate window       events with an id (answer)
coord:{ws}:sessions            zset    its newest member      every hook event
coord:{ws}:locks               zset    its newest member      claims, renewals
coord:{ws}:keyfiles:<key_id>   zset    its newest member      claims, renewals, revoke
coord:{ws}:decisions           list    none (capped at 200)   ``POST /decisions``
coord:{ws}:patterns            hash    reservation TTL        directory/glob claims
coord:{ws}:requests            hash    longer of the two TTLs ``request_file``, hand-offs
coord:{ws}:notes:<sid>         list    reservation TTL        requests, hand-offs
coord:{ws}:rate:<key_id>       hash    until full again       every request of that key
coord:{ws}:events              pubsub  (a channel, no key)    every state change
=============================  ======  =====================  ==========================

``apikey`` holds ``workspace``, ``workspace_id``, ``user_name``, ``created_ms`` and, for a
read-only key, ``read_only`` = ``1``; ``wsid`` holds the slug of a workspace id, and
``workspace`` its ``id``, ``slug``, ``name`` and ``created_ms``; ``apikeys`` maps each digest
to its user name (scripts check it, so a revoked key stops working at once). ``session`` holds
the fields of a live session: ``id``, ``conversation_id``, ``user_name``, ``key_id``,
``agent_type``, ``current_task``, ``current_file``, ``branch``, ``cwd``, ``started_ms``,
``last_seen_ms``, ``heard_ms`` (its last briefing or news) and ``renewed_ms`` (the last renewal
of its locks); ``files`` the paths it holds; ``holder`` (``user_name``, ``agent_type``,
``current_task``, ``conversation_id``, ``key_id``) is the part of it a reservation needs after
its session went idle (reservations outlive sessions); a ``lock`` holds its holder's session
id. ``ended`` notes that a session ended and how many files that released, so that a retried
end answers as the first did. ``told`` maps each file the session claimed or was denied to the
holder it last heard of, so a prompt can tell it what changed since. ``sessions`` and ``locks``
score members by their expiry in epoch milliseconds, so listings read the live ones without
scanning the keyspace; ``keyfiles`` does the same for the files the sessions of one API key
hold (``COORDINATOR_MAX_FILES_PER_KEY``; revoking the key finds its sessions' files through
it). Each index expires with its newest member, and the scripts trim a bounded batch of expired
members as they go, so an idle workspace keeps nothing but its record, its keys and its
decisions. ``patterns`` maps each directory or glob claimed (folded, as its lock) to its matcher
(claims.lua: the Lua patterns, literal head and tail ``globs.py`` made of it); the claim
itself is an ordinary ``lock`` (value = sid) in the holder's ``files``, so it renews, lists
and releases as a file does. ``requests`` maps each requested file (folded) to its queue,
JSON: the path as asked and the waiters, first come first. A lock whose value is
``<sid> next`` is a file held for the first in line for the hand-off grace; ``notes`` is a
session's mailbox (JSON lines: who waits for its files, which file became its), emptied
at its next event that can carry context.
``rate`` is a key's token bucket (``tokens``, ``at_ms``); it expires once it would
be full again, so idle keys cost nothing.
Sessions and holder cards record the ``key_id`` (the digest's head) of the key that started
them, their owner: no other key may act for them, and revoking a key ends them.
A subagent (an event with ``agent_id``) is a session of its own, its id a pure function of
(workspace, conversation, agent id) (``models.subagent_id_for``); its hash adds ``parent``
(its parent session's id), ``agent_id`` and ``subagent_type``, and so does its holder card.
``subagents`` lists the subagents of a session, so that its end ends them too. A parent's
hash may hold ``subagent_tasks``: the tasks (a JSON list) its Agent tool announced, each taken
by the next subagent that starts.
``coordinator status`` finds the workspaces by SCAN over the ``workspace`` records (never
KEYS; on a cluster, every primary); ``keys revoke <key id>`` finds the key by SCAN over the
``apikey`` records whose digest starts with that id.
``roots`` holds the project roots (``roots``, a JSON list) that a Claude Code
conversation's start named, and its owner's ``key_id``: the paths of its events that
name no root (its http hooks) are keyed from them, even once its session went idle.
A ``lock`` is named by its path with ASCII letters lower-cased (``paths.fold_case``; the
scripts' ``lock_of``), so ``src/File.ts`` and ``src/file.ts`` are one lock, while ``files``,
``locks`` and ``told`` keep each path as its agent wrote it, for the listings.
A claim (``symbol_claims.py``) is a whole file or one symbol of it: ``files``, ``locks``,
``keyfiles`` and ``told`` hold claims, a symbol's as its path, a NUL and its name (no path
holds a NUL; ␀ here), and its lock is the file's lock name, the NUL and the name (not folded:
``Run`` and ``run`` are two symbols). The file's lock name and a NUL alone (``<fp>␀``)
name the hash of the file's symbols claimed by anyone (name → kind: function, method,
class...), which a whole-file claim reads to find them; it expires with the newest symbol
claim written or renewed, and an entry whose lock lapsed is dropped when next read.
Every script is called with the same keys first, in one order (``script_keys``, the
workspace's and, for a script of one session, the session's), and the same key prefixes
(``prefixes``), which ``lib.lua`` unpacks once by name.
``once`` holds the reply an event with an id (a ``tool_use_id`` or Cursor's
``generation_id``; events.duplicate_id) got, as JSON, for ``COORDINATOR_DUPLICATE_WINDOW``:
the same event again (Cursor running Claude Code's hooks as well as its own sends each event
twice) gets that reply and changes nothing. ``<event>`` is a digest of the event's id.
``events`` is a pub/sub channel, not a key: the scripts publish each state change on it
(``GET /workspaces/{id}/events``); it carries the workspace's hash tag so a script may
name it on Redis Cluster.
"""

from __future__ import annotations

import functools

from coordinator import symbol_claims
from coordinator.paths import fold_case

PREFIX = "coord"


def api_key(digest: str) -> str:
    return f"{PREFIX}:apikey:{digest}"


def workspace_id(ws_id: str) -> str:
    return f"{PREFIX}:wsid:{ws_id}"


def _scoped(slug: str, rest: str) -> str:
    return f"{PREFIX}:{{{slug}}}:{rest}"


def workspace(slug: str) -> str:
    return _scoped(slug, "workspace")


def workspace_pattern() -> str:
    """A SCAN ``MATCH`` pattern for every workspace record (filter with ``slug_of_workspace``)."""
    return _scoped("*", "workspace")


def slug_of_workspace(key: str) -> str | None:
    """The slug of a workspace record's key, or None for any other key that matches
    ``workspace_pattern()``: a lock on a path ending in ``}:workspace`` does too."""
    head, tail = f"{PREFIX}:{{", "}:workspace"
    if not (key.startswith(head) and key.endswith(tail)):
        return None
    slug = key[len(head) : -len(tail)]
    return slug if slug and "}" not in slug else None


def workspace_keys(slug: str) -> str:
    return _scoped(slug, "apikeys")


def session(slug: str, sid: str) -> str:
    return _scoped(slug, f"session:{sid}")


def files(slug: str, sid: str) -> str:
    return _scoped(slug, f"files:{sid}")


def holder(slug: str, sid: str) -> str:
    return _scoped(slug, f"holder:{sid}")


def told(slug: str, sid: str) -> str:
    return _scoped(slug, f"told:{sid}")


def ended(slug: str, sid: str) -> str:
    return _scoped(slug, f"ended:{sid}")


def once(slug: str, sid: str, event: str) -> str:
    """The note of one event of a session (``event``: a digest of its id; '' for none)."""
    return _scoped(slug, f"once:{sid}:{event}")


def key_files(slug: str, key_id: str) -> str:
    return _scoped(slug, f"keyfiles:{key_id}")


def roots(slug: str, sid: str) -> str:
    return _scoped(slug, f"roots:{sid}")


def subagents(slug: str, sid: str) -> str:
    return _scoped(slug, f"subagents:{sid}")


def lock(slug: str, path: str) -> str:
    """The lock of a file: one for every spelling of its path that differs only in case."""
    return _scoped(slug, f"lock:{fold_case(path)}")


def claim_lock(slug: str, member: str) -> str:
    """The lock of a claim (``symbol_claims.Claim.member``): a file's, or one symbol's of it."""
    return _scoped(slug, f"lock:{symbol_claims.folded(member)}")


def file_symbols(slug: str, path: str) -> str:
    """The symbols of a file claimed by anyone (lib.lua's ``symbols_of``)."""
    return _scoped(slug, f"lock:{fold_case(path)}{symbol_claims.SYMBOL}")


def sessions_index(slug: str) -> str:
    return _scoped(slug, "sessions")


def locks_index(slug: str) -> str:
    return _scoped(slug, "locks")


def decisions(slug: str) -> str:
    return _scoped(slug, "decisions")


def patterns(slug: str) -> str:
    return _scoped(slug, "patterns")


def requests(slug: str) -> str:
    return _scoped(slug, "requests")


def notes(slug: str, sid: str) -> str:
    return _scoped(slug, f"notes:{sid}")


def rate(slug: str, key_id: str) -> str:
    return _scoped(slug, f"rate:{key_id}")


def events(slug: str) -> str:
    """The workspace's pub/sub channel of live events."""
    return _scoped(slug, "events")


@functools.lru_cache(maxsize=4096)
def _workspace_script_keys(slug: str, key_id: str) -> tuple[str, ...]:
    return (
        workspace_keys(slug),
        rate(slug, key_id),
        sessions_index(slug),
        locks_index(slug),
        decisions(slug),
        events(slug),
        key_files(slug, key_id),
        workspace(slug),
        patterns(slug),
        requests(slug),
    )


def script_keys(slug: str, key_id: str, sid: str | None = None, event: str = "") -> list[str]:
    """The KEYS every script is called with, in ``lib.lua``'s order: the workspace's (the
    rate bucket and files of the key ``key_id``), then, for a script of one session,
    the session's, with the note of its ``event`` (``once``). A script's own keys go after."""
    found = list(_workspace_script_keys(slug, key_id))
    if sid is not None:
        found += (
            session(slug, sid),
            files(slug, sid),
            holder(slug, sid),
            told(slug, sid),
            roots(slug, sid),
            ended(slug, sid),
            notes(slug, sid),
            once(slug, sid, event),
        )
    return found


@functools.lru_cache(maxsize=1024)
def prefixes(slug: str) -> tuple[str, ...]:
    """The key prefixes every script is given, in ``lib.lua``'s order: sessions, files,
    holder cards, told, locks (a lock's key is its prefix and its folded path), the
    subagents of a session and its notes."""
    return (
        session(slug, ""),
        files(slug, ""),
        holder(slug, ""),
        told(slug, ""),
        lock(slug, ""),
        subagents(slug, ""),
        notes(slug, ""),
    )
