"""Writes through the shell, end to end through the hook route: each agent's shell tool
claims the files its command clearly writes, and is denied those another holds; a
read-only or unclear command claims nothing and is never denied. fakeredis and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import Team, send_hook
from tests.test_native import claude, claude_edit, codex, cursor, reserved

pytestmark = pytest.mark.anyio
HELD = "/Users/a/work/repo/src/auth/login.py"  # Claude Code's cwd is /Users/a/work/repo
DENIED = "File src/auth/login.py is reserved by Developer A"


def codex_shell(command: object, event: str = "PreToolUse", **fields: Any) -> dict[str, Any]:
    return codex(event, tool_name="Bash", tool_input={"command": command}, tool_use_id="call_1",
                 **fields)  # fmt: skip


def claude_shell(command: str, event: str = "PreToolUse") -> dict[str, Any]:
    return claude(event, tool_name="Bash", tool_input={"command": command},
                  tool_use_id="toolu_9")  # fmt: skip


def cursor_shell(command: str, event: str = "preToolUse") -> dict[str, Any]:
    return cursor(event, tool_name="Shell", cwd="/p:/repo", tool_input={"command": command})


def reason(answer: dict[str, Any]) -> str:
    return str(answer["hookSpecificOutput"]["permissionDecisionReason"])


async def hold(client: httpx.AsyncClient, team: Team) -> None:
    await send_hook(client, team.dev_a, claude("UserPromptSubmit", prompt="Fix login"))
    assert await send_hook(client, team.dev_a, claude_edit("PreToolUse", HELD)) == {}


@pytest.mark.parametrize(
    "command",
    [
        "sed -i s/a/b/ src/auth/login.py",
        "echo hi > src/auth/login.py",
        "echo hi >> src/auth/login.py",
        "ls | tee -a src/auth/login.py",
        "cp /tmp/x.py src/auth/login.py",
        "cp a.py b.py src/auth/",
        "mv src/auth/login.py src/auth/old.py",
        "mv new.py src/auth/login.py",
        "rm -f src/auth/login.py",
        "git checkout -- src/auth/login.py",
        "git restore src/auth/login.py",
        "cd src/auth && sed -i '' s/a/b/ login.py",
        "bash -lc 'truncate -s 0 src/auth/login.py'",
    ],
)
async def test_a_codex_shell_write_to_a_held_file_is_denied(
    client: httpx.AsyncClient, team: Team, command: str
) -> None:
    await hold(client, team)
    if command == "cp a.py b.py src/auth/":  # names src/auth/a.py and b.py: hold one of them
        await send_hook(client, team.dev_a, claude_edit("PreToolUse", HELD.replace("login", "b")))
    answer = await send_hook(client, team.dev_b, codex_shell(command))
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "is reserved by Developer A — 'Fix login'" in reason(answer)
    assert all(owner == "claude-1" for owner in (await reserved(client, team.dev_a)).values())


@pytest.mark.parametrize(
    "command",
    [
        "cat src/auth/login.py",
        "grep -n token src/auth/login.py > /tmp/hits.txt",
        "sed -n 1,20p src/auth/login.py",
        "git diff src/auth/login.py",
        "python - <<EOF\nopen('src/auth/login.py', 'w').write('x')\nEOF",  # not detectable
        "python -c \"open('src/auth/login.py','w')\"",
        "make fmt",
        "./scripts/rewrite.sh src/auth/login.py",
        "rm src/auth/*.py",
        "echo x > $TARGET",
        "echo x > ../../../outside.py",
        "if then (",
    ],
)
async def test_reads_and_what_cannot_be_read_are_never_denied(
    client: httpx.AsyncClient, team: Team, command: str
) -> None:
    await hold(client, team)
    assert await send_hook(client, team.dev_b, codex_shell(command)) == {}
    assert await send_hook(client, team.dev_b, codex_shell(command, "PostToolUse")) == {}
    assert set(await reserved(client, team.dev_a)) == {"src/auth/login.py"}


async def test_each_agent_shell_claims_its_writes(client: httpx.AsyncClient, team: Team) -> None:
    assert await send_hook(client, team.dev_a, claude_shell("echo x > src/a.py")) == {}
    assert await send_hook(client, team.dev_b, codex_shell("sed -i s/x/y/ src/b.py")) == {}
    shell = cursor_shell("cd src && cp ../src/b.py c.py")
    assert await send_hook(client, team.dev_b, shell) == {"permission": "allow"}
    assert await reserved(client, team.dev_a) == {
        "src/a.py": "claude-1",
        "src/b.py": "codex-1",
        "src/c.py": "cursor-1",
    }
    denied = await send_hook(client, team.dev_b, cursor_shell("rm src/a.py"))
    assert denied["permission"] == "deny"
    assert denied["agent_message"].startswith("File src/a.py is reserved by Developer A")
    to_claude = await send_hook(client, team.dev_a, claude_shell("git mv src/c.py src/d.py"))
    assert "File src/c.py is reserved by Developer B" in reason(to_claude)
    # PostToolUse of a shell that wrote a held file warns, and takes nothing.
    late = await send_hook(client, team.dev_a, claude_shell("touch src/b.py", "PostToolUse"))
    assert late["hookSpecificOutput"]["additionalContext"].startswith("Warning: File src/b.py")
    assert (await reserved(client, team.dev_a))["src/b.py"] == "codex-1"


async def test_a_claude_shell_is_keyed_from_the_roots_its_start_named(
    client: httpx.AsyncClient, team: Team
) -> None:
    start = claude("SessionStart", source="startup", workspace_roots=["/Users/a/work/repo"])
    await send_hook(client, team.dev_a, start)
    sub = claude_shell("sed -i s/a/b/ login.py && echo x > ../../README.md")
    sub["cwd"] = "/Users/a/work/repo/src/auth"
    assert await send_hook(client, team.dev_a, sub) == {}
    assert set(await reserved(client, team.dev_a)) == {"src/auth/login.py", "README.md"}


async def test_a_cut_or_odd_command_is_answered_never_refused(
    client: httpx.AsyncClient, team: Team
) -> None:
    await hold(client, team)
    for command in ["rm " + " ".join(f"f{i}.py" for i in range(150)), ["bash", "-lc", 3], ""]:
        assert await send_hook(client, team.dev_b, codex_shell(command)) == {}
    held = await reserved(client, team.dev_b)
    assert len([path for path, owner in held.items() if owner == "codex-1"]) == 100
