from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coordinator.models import Briefing, Decision, HeldFile, Holder, LockLine, TeammateLine
from coordinator.render import briefing_text, deny_message, minutes_left

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_briefing_has_the_documented_shape() -> None:
    briefing = Briefing(
        now=NOW,
        agents=[TeammateLine("Developer B", "cursor", "Build JWT auth flow")],
        agents_total=1,
        locks=[LockLine("src/auth/login.ts", "Developer B")],
        locks_total=1,
        decisions=[Decision("Use JWT for auth", "Developer B", NOW - timedelta(minutes=5))],
    )
    assert briefing_text(briefing) == (
        "Team briefing:\n"
        "\n"
        "Active agents:\n"
        "  - Developer B (Cursor): Build JWT auth flow\n"
        "\n"
        "Locked files:\n"
        "  - src/auth/login.ts (Developer B)\n"
        "\n"
        "Recent decisions:\n"
        "  - Use JWT for auth (Developer B, 5 min ago)"
    )


def test_empty_sections_say_none_and_long_ones_say_how_many_more() -> None:
    agents = [TeammateLine(f"Dev {i}", "codex", None) for i in range(20)]
    briefing = Briefing(NOW, agents, 23, [], 0, [])
    text = briefing_text(briefing)
    assert "  - Dev 0 (Codex)\n" in text
    assert "  … and 3 more" in text
    assert "Locked files:\n  (none)" in text
    assert text.endswith("Recent decisions:\n  (none)")


def test_deny_message_names_holder_task_and_minutes() -> None:
    holder = Holder("sess_x", "Developer B", "cursor", "Build JWT auth flow")
    conflict = HeldFile("src/auth/login.ts", holder, remaining_ms=5 * 60_000 + 1)
    assert deny_message(conflict) == (
        "File src/auth/login.ts is reserved by Developer B — 'Build JWT auth flow' "
        "(6 min remaining)"
    )
    no_task = HeldFile("a.ts", Holder("sess_x", "Developer B", None, None), 0)
    assert deny_message(no_task) == "File a.ts is reserved by Developer B (1 min remaining)"


def test_minutes_left_rounds_up_and_never_says_zero() -> None:
    assert [minutes_left(ms) for ms in (1, 60_000, 60_001, 0)] == [1, 1, 2, 1]
