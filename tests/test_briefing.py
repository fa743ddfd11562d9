"""The briefing at scale: 100 agents, 1,000 reservations and 200 decisions fit in 2 KB,
what concerns the agent first; on fakeredis and on a real Redis, through the hook route."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from coordinator.admin import Admin
from coordinator.briefing import BUDGET, MAX_LINE, Nearness, focus_of, lock_lines
from coordinator.models import (
    Briefing,
    Decision,
    LockLine,
    Note,
    Principal,
    TeammateLine,
    digest_of,
    session_id_for,
)
from coordinator.render import briefing_text
from coordinator.routes import REQUEST
from coordinator.store import Store
from tests.helpers import Team, bearer, hook

pytestmark = pytest.mark.anyio

TASK = "Refactor the billing service's invoice pipeline for the new tax rules"
DECISION = "Every module calls the payment gateway through src/gateway/client.ts, never directly"


async def person(store: Store, admin: Admin, name: str) -> Principal:
    key, _ = await admin.create_key("acme", name)
    who = await store.principal(digest_of(key))
    assert who is not None
    return who


async def holds(store: Store, who: Principal, conversation: str, paths: list[str]) -> None:
    sid = session_id_for("acme", conversation)
    fields = {"user_name": who.user_name, "agent_type": "claude-code", "current_task": TASK}
    outcome = await store.touch(who, sid, conversation, fields, paths)
    assert outcome.conflict is None and outcome.over_cap is None


async def test_a_big_team_fits_in_two_kilobytes_and_what_is_near_comes_first(
    client: httpx.AsyncClient, store: Store, admin: Admin, team: Team
) -> None:
    people = [await person(store, admin, f"Developer {n}") for n in range(10)]
    # Developer A's agent holds a file in src/billing/ and works in src/payments/.
    await hook(client, team.dev_a, event="preToolUse", conversation_id="conv-a",
               cwd="/repo", file_path="/repo/src/billing/invoice.ts")  # fmt: skip
    # 99 other agents hold ten files each, in a module of their own...
    for n in range(85):
        await holds(
            store, people[n % 10], f"conv-{n}", [f"src/module{n}/f{j}.ts" for j in range(10)]
        )
    # ...and two of them also hold files near A's: in its directory, and under its cwd.
    # They are not the newest: 140 files are claimed after them.
    await holds(store, people[3], "conv-3", [f"src/billing/tax{j}.ts" for j in range(4)])
    await holds(store, people[5], "conv-5", [f"src/payments/api/p{j}.ts" for j in range(3)])
    for n in range(85, 99):
        await holds(
            store, people[n % 10], f"conv-{n}", [f"src/module{n}/f{j}.ts" for j in range(10)]
        )
    for n in range(200):
        await store.add_decision(people[n % 10], f"{DECISION} ({n})", None)

    started = await hook(client, team.dev_a, event="sessionStart", conversation_id="conv-a",
                         cwd="/repo/src/payments", workspace_roots=["/repo"])  # fmt: skip
    text = started["additional_context"]
    assert len(text.encode()) <= BUDGET == 2048, len(text.encode())
    header, agents, locks, decisions = text.split("\n\n")
    assert header == "Team briefing:"

    lines = locks.splitlines()
    assert lines[0] == "Locked files:"
    # First the files in A's own directory, then those under where it works, then the rest
    # grouped by holder and directory, newest first.
    assert lines[1:3] == [
        "  - src/billing/ (4 files) — Developer 3",
        "  - src/payments/api/ (3 files) — Developer 5",
    ]
    pattern = r"  - src/module(\d+)/ \((\d+) files\) — Developer (\d)"
    groups = [re.fullmatch(pattern, line) for line in lines[3:-1]]
    assert all(groups) and len(groups) >= 5
    modules = [(int(g[1]), int(g[2]), int(g[3])) for g in groups if g]
    assert modules[0] == (98, 10, 8)  # the newest
    assert all(n % 10 == holder for n, _, holder in modules)
    # Every file is counted: those shown, and the rest in "and N more". A's own is left out.
    shown = 4 + 3 + sum(files for _, files, _ in modules)
    assert lines[-1] == f"  … and {997 - shown} more"

    agent_lines = agents.splitlines()
    assert agent_lines[0] == "Active agents:"
    assert re.fullmatch(rf"  - Developer \d \(Claude Code\): {TASK}", agent_lines[1])
    assert re.fullmatch(r"  … and (\d+) more", agent_lines[-1])
    assert 99 == len(agent_lines) - 2 + int(agent_lines[-1].split()[2])

    decision_lines = decisions.splitlines()
    assert decision_lines[0] == "Recent decisions:"
    assert decision_lines[1] == f"  - {DECISION} (199) (Developer 9, just now)"
    assert len(decision_lines) >= 4  # the decisions are not the first thing cut


async def test_a_small_team_gets_one_line_a_file_its_neighbours_first(
    client: httpx.AsyncClient, store: Store, admin: Admin, team: Team
) -> None:
    b = await person(store, admin, "Developer B2")
    await hook(client, team.dev_a, event="preToolUse", conversation_id="conv-a",
               cwd="/repo", file_path="/repo/app/auth/login.ts")  # fmt: skip
    # The oldest, and the smallest path: last both by age and by name.
    await holds(store, b, "conv-b", ["app/auth/jwt.ts"])
    await holds(store, b, "conv-b", ["README.md", "docs/auth.md"])
    started = await hook(client, team.dev_a, event="sessionStart", conversation_id="conv-a")
    locks = started["additional_context"].split("\n\n")[2].splitlines()
    # The file beside A's comes first, whatever its age; each on a line of its own.
    assert locks[:2] == ["Locked files:", "  - app/auth/jwt.ts (Developer B2)"]
    assert sorted(locks[2:]) == ["  - README.md (Developer B2)", "  - docs/auth.md (Developer B2)"]


# -- the shape, from a Briefing -----------------------------------------------------------

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_the_longest_texts_still_fit_and_each_section_says_how_many_more() -> None:
    """500-character decisions and tasks of four-byte characters: cut, never over budget."""
    agents = [TeammateLine(f"Dev {i}", "codex", "🚀" * 500) for i in range(20)]
    locks = [LockLine(f"src/{'é' * 300}/{i}.ts", f"Dev {i % 7}") for i in range(200)]
    decisions = [Decision("ü" * 500, "Dev 1", NOW) for _ in range(5)]
    text = briefing_text(Briefing(NOW, agents, 99, locks, 1000, decisions))
    assert len(text.encode()) <= BUDGET
    sections = text.split("\n\n")
    assert [s.splitlines()[0] for s in sections] == [
        "Team briefing:", "Active agents:", "Locked files:", "Recent decisions:"
    ]  # fmt: skip
    for section in sections[1:]:
        lines = section.splitlines()
        assert all(len(line) <= MAX_LINE + 4 for line in lines)
    agents_more = sections[1].splitlines()[-1]
    assert re.fullmatch(r"  … and \d+ more", agents_more)


def test_groups_of_one_file_keep_the_path_and_count_every_file() -> None:
    locks = [LockLine(f"src/m{i // 3}/f{i}.ts", "B") for i in range(30)]
    locks.append(LockLine("lone/file.ts", "C"))
    locks.append(LockLine("top.ts", None))
    lines, counts = lock_lines(Briefing(NOW, [], 0, locks, 40, []))
    assert lines[:2] == ["src/m0/ (3 files) — B", "src/m1/ (3 files) — B"]
    assert lines[-2:] == ["lone/file.ts (C)", "top.ts (unknown)"]
    assert sum(counts) == 32 and len(lines) == 12


def test_near_means_the_same_directory_then_below_it_or_the_working_one() -> None:
    near = Nearness(["src/API", ""], "web/app")
    assert near.rank("src/api/x.ts") == 0  # case-insensitive, as locks are
    assert near.rank("root.ts") == 0  # beside a file the agent holds at the root
    assert near.rank("src/api/v2/x.ts") == 1
    assert near.rank("web/app/page.tsx") == 1
    assert near.rank("web/app/ui/button.tsx") == 1
    assert near.rank("web/application.ts") == 2  # a prefix of the name is not a directory
    assert near.rank("src/x.ts") == 2  # the root holds everything: it makes nothing near


def test_the_working_directory_is_taken_from_the_roots() -> None:
    assert focus_of("/repo/src/payments", ["/repo"]) == "src/payments"
    assert focus_of("/repo", ["/repo"]) is None  # the whole project
    assert focus_of("/repo/src", []) is None
    assert focus_of(None, ["/repo"]) is None
    assert focus_of("C:\\repo\\web", ["C:\\repo"]) == "web"


def test_a_directory_or_glob_claim_is_a_line_of_its_own() -> None:
    locks = [LockLine(f"src/api/f{i}.ts", "B") for i in range(3)]
    locks += [LockLine("src/api/", "B"), LockLine("src/api/**/*.test.ts", "B")]
    lines, counts = lock_lines(Briefing(NOW, [], 0, locks, 30, [], ["src/api"]))
    assert lines == ["src/api/ (3 files) — B", "src/api/ (B)", "src/api/**/*.test.ts (B)"]
    assert counts == [3, 1, 1]


def test_what_the_agent_is_told_comes_first_whole_and_within_budget() -> None:
    """Who waits for its files leads the briefing; the team's sections give way to it."""
    waiting = "is waiting for src/billing/tax0.ts — 'need the tables'. When you are done with it"
    notes = [
        Note("waiting", f"src/billing/tax{i}.ts", "Developer C", "codex", "need the tables")
        for i in range(3)
    ]
    agents = [TeammateLine(f"Dev {i}", "codex", "x" * 80) for i in range(20)]
    locks = [LockLine(f"src/m{i // 10}/f{i}.ts", f"Dev {i % 7}") for i in range(200)]
    decisions = [Decision("d" * 120, "Dev 1", NOW) for _ in range(5)]
    text = briefing_text(Briefing(NOW, agents, 99, locks, 1000, decisions), notes)
    assert len(text.encode()) <= BUDGET
    header, told, *sections = text.split("\n\n")
    assert header == "Team briefing:"
    assert told.splitlines()[0] == "For you:"
    assert len(told.splitlines()) == 4 and waiting in told.splitlines()[1]
    assert told.splitlines()[1].endswith('release(["src/billing/tax0.ts"]) so it passes to them '
                                         "(or end your session).")  # fmt: skip
    assert [s.splitlines()[0] for s in sections] == [
        "Active agents:", "Locked files:", "Recent decisions:"
    ]  # fmt: skip
    # Without notes, no such section: the seed's format.
    assert "For you" not in briefing_text(Briefing(NOW, agents, 99, locks, 1000, decisions))


async def test_a_start_is_told_first_who_waits_for_its_files(
    client: httpx.AsyncClient, team: Team
) -> None:
    edit = {"event": "preToolUse", "conversation_id": "conv-a", "cwd": "/repo",
            "file_path": "/repo/src/app.py"}  # fmt: skip
    await hook(client, team.dev_a, **edit)
    asked = await client.post(
        REQUEST, headers=bearer(team.dev_b),
        json={"conversation_id": "conv-b", "path": "src/app.py", "note": "one line"},
    )  # fmt: skip
    assert asked.status_code == 200, asked.text
    started = await hook(client, team.dev_a, event="sessionStart", conversation_id="conv-a")
    text = started["additional_context"]
    assert text.startswith(
        "Team briefing:\n\nFor you:\n  - Developer B is waiting for src/app.py — 'one line'. "
        'When you are done with it, call release(["src/app.py"]) so it passes to them '
        "(or end your session).\n\nActive agents:\n"
    ), text
