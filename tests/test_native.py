"""The agents' own payloads and answers, on fakeredis and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from coordinator.models import session_id_for
from coordinator.routes import DECIDE, HOOK, RESERVATIONS, SESSIONS, of_workspace
from tests.helpers import Team, bearer, send_hook

pytestmark = pytest.mark.anyio
PATCH = """*** Begin Patch
*** Add File: src/new.ts
+export const x = 1;
*** Update File: src/auth/login.ts
@@
-old
+new
*** Update File: src/old_name.ts
*** Move to: src/new_name.ts
*** Delete File: src/gone.ts
*** End Patch
"""


def claude(event: str, session: str = "claude-1", **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": f"/home/a/.claude/projects/x/{session}.jsonl",
        "cwd": "/Users/a/work/repo",
        "hook_event_name": event,
        "permission_mode": "acceptEdits",
        **fields,
    }


def claude_edit(event: str, path: str, session: str = "claude-1") -> dict[str, Any]:
    tool_input = {"file_path": path, "old_string": "a", "new_string": "b"}
    return claude(event, session, tool_name="Edit", tool_input=tool_input, tool_use_id="toolu_1")


def cursor(event: str, conversation: str = "cursor-1", **fields: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation,
        "generation_id": "gen-1",
        "hook_event_name": event,
        "workspace_roots": ["/p:/repo"],
        "user_email": "b@example.com",
        "cursor_version": "2.1.0",
        "transcript_path": None,
        **fields,
    }


def codex(event: str, session: str = "codex-1", **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": "/home/c/.codex/sessions/x.jsonl",
        "cwd": "/srv/c/repo",
        "hook_event_name": event,
        "model": "gpt-5.5",
        "permission_mode": "never",
        "turn_id": "turn-1",
        **fields,
    }


async def reserved(client: httpx.AsyncClient, api_key: str) -> dict[str, str]:
    listed = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(api_key))
    return {r["file_path"]: r["conversation_id"] for r in listed.json()}


async def test_claude_code_gets_its_own_answers(client: httpx.AsyncClient, team: Team) -> None:
    await send_hook(client, team.dev_b, cursor("sessionStart"))
    await send_hook(client, team.dev_b, cursor("beforeSubmitPrompt", prompt="Build JWT auth flow"))
    await send_hook(
        client,
        team.dev_b,
        cursor(
            "preToolUse",
            tool_name="Write",
            tool_input={"file_path": "P:/repo/src/auth/login.ts", "content": "x"},
        ),
    )

    started = await send_hook(client, team.dev_a, claude("SessionStart", source="startup"))
    context = started["hookSpecificOutput"]["additionalContext"]
    assert started["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "  - Developer B (Cursor): Build JWT auth flow" in context
    assert "  - src/auth/login.ts (Developer B)" in context

    free = await send_hook(
        client, team.dev_a, claude_edit("PreToolUse", "/Users/a/work/repo/src/a.ts")
    )
    assert free == {}  # no decision: Claude Code's own permission rules apply
    denied = await send_hook(
        client, team.dev_a, claude_edit("PreToolUse", "/Users/a/work/repo/src/auth/login.ts")
    )
    assert denied == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "File src/auth/login.ts is reserved by Developer B — "
            "'Build JWT auth flow' (10 min remaining)",
        }
    }
    late = claude_edit("PostToolUse", "/Users/a/work/repo/src/auth/login.ts")
    warned = (await send_hook(client, team.dev_a, late))["hookSpecificOutput"]
    assert warned["hookEventName"] == "PostToolUse"
    assert warned["additionalContext"].startswith(
        "Warning: File src/auth/login.ts is reserved by Developer B"
    )
    after = await send_hook(
        client, team.dev_a, claude_edit("PostToolUse", "/Users/a/work/repo/src/a.ts")
    )
    assert after == {}
    notebook = claude(
        "PreToolUse",
        tool_name="NotebookEdit",
        tool_input={"notebook_path": "/Users/a/work/repo/nb.ipynb"},
    )
    assert await send_hook(client, team.dev_a, notebook) == {}
    assert (await reserved(client, team.dev_a))["nb.ipynb"] == "claude-1"
    read = claude("PreToolUse", tool_name="Read", tool_input={"file_path": "/x/secret.ts"})
    assert await send_hook(client, team.dev_a, read) == {}
    assert "/x/secret.ts" not in await reserved(client, team.dev_a)
    ended = await send_hook(client, team.dev_a, claude("SessionEnd", reason="prompt_input_exit"))
    assert ended == {}
    assert set(await reserved(client, team.dev_a)) == {"src/auth/login.ts"}


async def test_cursor_gets_its_own_answers(client: httpx.AsyncClient, team: Team) -> None:
    started = await send_hook(client, team.dev_b, cursor("sessionStart"))
    assert started["additional_context"].startswith("Team briefing:")
    assert await send_hook(client, team.dev_b, cursor("beforeSubmitPrompt", prompt="Fix it")) == {
        "continue": True
    }
    write = cursor(
        "preToolUse",
        tool_name="Write",
        cwd="P:/repo",
        tool_input={"file_path": "P:/repo/src/a.ts", "content": "all of it"},
    )
    assert await send_hook(client, team.dev_b, write) == {"permission": "allow"}
    shell = cursor("preToolUse", tool_name="Shell", tool_input={"command": "ls -la build"})
    assert await send_hook(client, team.dev_b, shell) == {"permission": "allow"}
    wrote = cursor("postToolUse", tool_name="Write", tool_input={"file_path": "P:/repo/src/a.ts"})
    assert await send_hook(client, team.dev_b, wrote) == {}
    edited = cursor("afterFileEdit", file_path="P:/repo/src/b.ts", edits=[{"old_string": "x"}])
    assert await send_hook(client, team.dev_b, edited) == {}
    assert await reserved(client, team.dev_b) == {"src/a.ts": "cursor-1", "src/b.ts": "cursor-1"}

    other = cursor(
        "preToolUse",
        "cursor-2",
        tool_name="StrReplace",
        tool_input={"file_path": "P:\\repo\\src\\a.ts"},
    )
    denied = await send_hook(client, team.dev_a, other)
    message = "File src/a.ts is reserved by Developer B — 'Fix it' (10 min remaining)"
    assert denied == {"permission": "deny", "user_message": message, "agent_message": message}
    delete = cursor(
        "preToolUse", "cursor-2", tool_name="Delete", tool_input={"file_path": "P:/repo/src/b.ts"}
    )
    assert (await send_hook(client, team.dev_a, delete))["permission"] == "deny"
    assert await send_hook(client, team.dev_b, cursor("sessionEnd", reason="completed")) == {}
    assert await reserved(client, team.dev_b) == {}


async def test_codex_patches_are_claimed_all_or_nothing(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send_hook(
        client, team.dev_b, claude_edit("PreToolUse", "/Users/a/work/repo/src/gone.ts", "b")
    )
    patch = codex(
        "PreToolUse", tool_name="apply_patch", tool_input={"command": PATCH}, tool_use_id="call_1"
    )
    denied = await send_hook(client, team.dev_a, patch)
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert (
        "File src/gone.ts is reserved by Developer B"
        in (denied["hookSpecificOutput"]["permissionDecisionReason"])
    )
    assert set(await reserved(client, team.dev_a)) == {"src/gone.ts"}  # claimed none

    await send_hook(client, team.dev_b, claude("SessionEnd", "b"))
    assert (await send_hook(client, team.dev_a, patch))["hookSpecificOutput"]  # the same call
    patch["tool_use_id"] = "call_2"  # the model's next try is a new call
    assert await send_hook(client, team.dev_a, patch) == {}
    applied = {**patch, "hook_event_name": "PostToolUse", "tool_response": "Success"}
    assert await send_hook(client, team.dev_a, applied) == {}
    held = await reserved(client, team.dev_a)
    expected = {
        "src/new.ts",
        "src/auth/login.ts",
        "src/old_name.ts",
        "src/new_name.ts",
        "src/gone.ts",
    }
    assert held == dict.fromkeys(expected, "codex-1")
    # Codex's SessionEnd carries neither turn_id nor model: ?agent=codex names it.
    end = {"session_id": "codex-1", "cwd": "/srv/c/repo", "hook_event_name": "SessionEnd"}
    assert await send_hook(client, team.dev_a, end, agent="codex") == {}
    assert await reserved(client, team.dev_a) == {}


async def test_a_conversation_never_conflicts_with_itself_whatever_its_agent(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send_hook(
        client, team.dev_a, claude_edit("PreToolUse", "/Users/a/work/repo/a.ts", "same")
    )
    again = claude_edit("PreToolUse", "/Users/a/work/repo/a.ts", "same")
    assert await send_hook(client, team.dev_a, again, agent="codex") == {}


async def test_prompts_hear_what_changed_since_they_last_heard(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send_hook(client, team.dev_a, claude("SessionStart"))
    quiet = await send_hook(client, team.dev_a, claude("UserPromptSubmit", prompt="Refactor login"))
    assert quiet == {}
    await send_hook(
        client,
        team.dev_b,
        codex(
            "PreToolUse",
            "b",
            tool_name="apply_patch",
            tool_input={"command": "*** Begin Patch\n*** Update File: src/x.ts\n*** End Patch"},
        ),
    )
    denied = await send_hook(
        client, team.dev_a, claude_edit("PreToolUse", "/Users/a/work/repo/src/x.ts")
    )
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"
    # Told by the deny already: nothing new yet.
    assert await send_hook(client, team.dev_a, claude("UserPromptSubmit", prompt="go on")) == {}

    await send_hook(client, team.dev_b, codex("SessionEnd", "b"))
    await send_hook(
        client,
        team.dev_b,
        cursor("preToolUse", "c", tool_name="Write", tool_input={"file_path": "/p:/repo/src/x.ts"}),
    )
    decided = await client.post(
        DECIDE, headers=bearer(team.dev_b), json={"text": "Use JWT for auth"}
    )
    assert decided.status_code == 201
    news = await send_hook(client, team.dev_a, claude("UserPromptSubmit", prompt="and now?"))
    assert news == {
        "hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": "Team update since your last prompt:\n"
            "  - File src/x.ts is reserved by Developer B (10 min remaining)\n"
            "  - New decision: Use JWT for auth (Developer B)",
        }
    }
    assert await send_hook(client, team.dev_a, claude("UserPromptSubmit", prompt="again")) == {}


async def test_claude_and_codex_are_never_told_allow(client: httpx.AsyncClient, team: Team) -> None:
    bodies = [
        claude("SessionStart"),
        claude_edit("PreToolUse", "/Users/a/work/repo/z.ts"),
        claude_edit("PostToolUse", "/Users/a/work/repo/z.ts"),
        claude("Stop"),
        codex("SessionStart"),
        codex("UserPromptSubmit", prompt="x"),
        codex(
            "PreToolUse",
            tool_name="apply_patch",
            tool_input={"command": "*** Begin Patch\n*** Add File: q.ts\n*** End Patch"},
        ),
        codex("PreToolUse", tool_name="shell", tool_input={"command": ["bash", "-lc", "ls"]}),
    ]
    for body in bodies:
        answer = await send_hook(client, team.dev_a, body)
        assert "allow" not in str(answer) and "ask" not in str(answer).lower().split('"')


async def test_the_session_key_is_the_agents_conversation_id(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send_hook(client, team.dev_a, cursor("sessionStart", "conv-9", session_id="conv-9"))
    await send_hook(client, team.dev_a, claude("SessionStart", "sess-claude"))
    listed = await client.get(of_workspace(SESSIONS, "acme"), headers=bearer(team.dev_a))
    ids = {s["id"]: (s["conversation_id"], s["agent_type"]) for s in listed.json()}
    assert ids == {
        session_id_for("acme", "conv-9"): ("conv-9", "cursor"),
        session_id_for("acme", "sess-claude"): ("sess-claude", "claude-code"),
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"hook_event_name": "PreToolUse", "cwd": "/r"}, "invalid_field"),
        ({"hook_event_name": "Notification", "session_id": "s"}, "unknown_event"),
        (
            {
                "hook_event_name": "PreToolUse",
                "session_id": "s",
                "model": "gpt-5.5",
                "tool_name": "apply_patch",
                "tool_input": {"command": ["not", "a", "patch"]},
            },
            "invalid_field",
        ),
    ],
)
async def test_bad_native_payloads_get_clear_errors(
    client: httpx.AsyncClient, team: Team, body: dict[str, Any], code: str
) -> None:
    response = await client.post(HOOK, headers=bearer(team.dev_a), json=body)
    assert response.status_code in (400, 422)
    assert response.json()["error"] == code


async def test_an_unknown_agent_in_the_url_is_refused(
    client: httpx.AsyncClient, team: Team
) -> None:
    response = await client.post(
        f"{HOOK}?agent=vim", headers=bearer(team.dev_a), json=claude("SessionStart")
    )
    assert (response.status_code, response.json()["error"]) == (422, "invalid_field")


async def test_too_many_files_in_one_patch_is_refused(
    client: httpx.AsyncClient, team: Team
) -> None:
    lines = "".join(f"*** Add File: f{i}.ts\n" for i in range(101))
    patch = codex(
        "PreToolUse",
        tool_name="apply_patch",
        tool_input={"command": f"*** Begin Patch\n{lines}*** End Patch"},
    )
    response = await client.post(HOOK, headers=bearer(team.dev_a), json=patch)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_field")
