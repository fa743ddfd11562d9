"""The real Claude Code and Codex CLIs, offline, against scripted model servers.

The CLIs come from the npm registry (pinned) into a cache folder kept between runs;
their model API is replaced by a small server on loopback that answers with the tool
calls a test scripts, and logs every request, so a test can see what the model was
told (hook context and deny reasons travel inside the agent's next request).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.328"
CODEX = "@openai/codex@0.169.0"
VERSIONS = {"claude": "2.1.328", "codex": "0.169.0"}


def agents_dir() -> Path:
    """A folder whose node_modules/.bin holds the pinned CLIs, installed once and kept."""
    folder = Path(
        os.environ.get("COORDINATOR_AGENTS_DIR") or Path.home() / ".cache/coordinator/agents"
    )
    if _installed(folder):
        return folder
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-agent tests: install node and npm")
        pytest.skip("npm is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time
        if not _installed(folder):
            subprocess.run(
                [
                    "npm",
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    CLAUDE_CODE,
                    CODEX,
                ],
                cwd=folder,
                check=True,
                stdin=subprocess.DEVNULL,
                timeout=1200,
            )
    if not _installed(folder):
        pytest.fail(f"the pinned agent CLIs did not install into {folder}")
    return folder


def _installed(folder: Path) -> bool:
    for name, version in VERSIONS.items():
        binary = folder / "node_modules" / ".bin" / name
        if not binary.exists():
            return False
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
        if version not in done.stdout:
            return False
    return True


@dataclass
class Step:
    """One scripted model turn: a tool call, or (tool None) a final text."""

    tool: str | None
    arguments: Any = None


class Gate:
    """A point of a conversation (its number of tool results) where the scripted model
    waits until a test opens it; ``arrived`` is set once the conversation got there."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.open = threading.Event()

    def wait(self) -> None:
        self.arrived.set()
        self.open.wait(timeout=120)


@dataclass
class Branch:
    """The script of one conversation among several on one server (a subagent's), told
    apart by its ``marker`` in the conversation's user messages; ``gates`` by the number
    of tool results they wait at."""

    marker: str
    script: list[Step]
    gates: dict[int, Gate] = field(default_factory=dict)


@dataclass
class ModelServer:
    """A scripted model API on loopback; subclasses speak Anthropic's or OpenAI's protocol.

    ``hold`` is cleared to make the server keep the agent waiting after its first tool
    call (so a real agent holds its files while a test does something else); ``reached``
    is set when it starts waiting.
    """

    script: list[Step]
    requests: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)
    # Subagents' conversations, each with a script of its own; the rest follow ``script``.
    branches: list[Branch] = field(default_factory=list)
    hold_at: int = 1

    def __post_init__(self) -> None:
        self.hold.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                server.requests.append({"path": self.path, "body": body})
                server.answer(self, body)

            def do_GET(self) -> None:
                self._json({"data": [], "object": "list"})

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _json(self, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.hold.set()
        self.http.shutdown()
        self.http.server_close()

    def told(self) -> str:
        """Everything the agent sent its model, as one text to search."""
        return "\n".join(json.dumps(r["body"]) for r in self.requests)

    def next_step(self, results: int, users: str = "") -> Step:
        """The step after ``results`` tool results of the conversation whose user messages
        are ``users``, waiting while held."""
        script = self.script
        for branch in self.branches:
            if branch.marker in users:
                script = branch.script
                gate = branch.gates.get(results)
                if gate is not None:
                    gate.wait()
                break
        else:
            if results >= self.hold_at and not self.hold.is_set():
                self.reached.set()
                self.hold.wait(timeout=120)
        return script[results] if results < len(script) else Step(None, "Done.")

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        raise NotImplementedError

    @staticmethod
    def stream(handler: BaseHTTPRequestHandler, events: list[tuple[str, dict[str, Any]]]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for name, data in events:
            event = json.dumps({"type": name, **data})
            handler.wfile.write(f"event: {name}\ndata: {event}\n\n".encode())
        handler.wfile.flush()
        handler.close_connection = True


class AnthropicServer(ModelServer):
    """``POST /v1/messages``, streamed as server-sent events, as Claude Code expects."""

    ids = itertools.count(1)

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if not body.get("tools"):  # a side request (a title, a check): a short text
            self.reply_text(handler, body, "ok")
            return
        results = sum(
            1
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        )
        messages = body.get("messages", [])
        step = self.next_step(results, json.dumps(messages[:1]))
        if step.tool is None:
            self.reply_text(handler, body, str(step.arguments))
            return
        block = {"type": "tool_use", "id": f"toolu_{next(self.ids):04d}", "name": step.tool}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(step.arguments)}
        self.stream(handler, self.events(body, {**block, "input": {}}, delta, "tool_use"))

    def reply_text(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], text: str) -> None:
        if body.get("stream"):
            delta = {"type": "text_delta", "text": text}
            self.stream(handler, self.events(body, {"type": "text", "text": ""}, delta, "end_turn"))
            return
        message = {**self.message(body), "content": [{"type": "text", "text": text}]}
        data = json.dumps({**message, "stop_reason": "end_turn"}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def events(
        self, body: dict[str, Any], block: dict[str, Any], delta: dict[str, Any], stop: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """One message of one content block, as the stream's events."""
        stopped = {"stop_reason": stop, "stop_sequence": None}
        return [
            ("message_start", {"message": self.message(body)}),
            ("content_block_start", {"index": 0, "content_block": block}),
            ("content_block_delta", {"index": 0, "delta": delta}),
            ("content_block_stop", {"index": 0}),
            ("message_delta", {"delta": stopped, "usage": {"output_tokens": 5}}),
            ("message_stop", {}),
        ]

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"msg_{next(self.ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        }


# What Codex sends back after a tool call, a function call or a tool search.
RESULT_ITEMS = ("custom_tool_call_output", "function_call_output", "tool_search_output")


class OpenAIServer(ModelServer):
    """``POST /v1/responses``, streamed, as Codex expects; apply_patch is a custom tool (its
    step's arguments the patch text), any other a function (its arguments a dict)."""

    ids = itertools.count(1)

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        items = body.get("input", [])
        results = sum(
            1 for item in items if isinstance(item, dict) and item.get("type") in RESULT_ITEMS
        )
        users = json.dumps([i for i in items if isinstance(i, dict) and i.get("role") == "user"])
        step = self.next_step(results, users) if body.get("tools") else Step(None, "ok")
        n = next(self.ids)
        if step.tool is None:
            item: dict[str, Any] = {
                "type": "message",
                "id": f"msg_{n}",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": str(step.arguments), "annotations": []}
                ],
            }
        elif step.tool == "tool_search":  # loads a deferred namespace (MCP, multi_agent_v1)
            item = {
                "type": "tool_search_call",
                "id": f"ts_{n}",
                "call_id": f"call_{n}",
                "execution": "client",
                "status": "completed",
                "arguments": step.arguments,
            }
        elif "/" in step.tool:  # a namespaced function: multi_agent_v1/spawn_agent
            namespace, name = step.tool.split("/")
            item = {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": f"call_{n}",
                "namespace": namespace,
                "name": name,
                "arguments": json.dumps(step.arguments),
                "status": "completed",
            }
        elif isinstance(step.arguments, dict):  # a function tool (exec_command…): JSON arguments
            item = {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": f"call_{n}",
                "name": step.tool,
                "arguments": json.dumps(step.arguments),
                "status": "completed",
            }
        else:
            item = {
                "type": "custom_tool_call",
                "id": f"ctc_{n}",
                "call_id": f"call_{n}",
                "name": step.tool,
                "input": step.arguments,
                "status": "completed",
            }
        response = {
            "id": f"resp_{n}",
            "object": "response",
            "status": "in_progress",
            "model": body.get("model", "gpt"),
            "output": [],
        }
        usage = {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        }
        done = {**response, "status": "completed", "output": [item], "usage": usage}
        self.stream(
            handler,
            [
                ("response.created", {"response": response}),
                ("response.output_item.added", {"output_index": 0, "item": item}),
                ("response.output_item.done", {"output_index": 0, "item": item}),
                ("response.completed", {"response": done}),
            ],
        )


@contextmanager
def model_server(kind: type[ModelServer], script: list[Step]) -> Iterator[ModelServer]:
    server = kind(script)
    try:
        yield server
    finally:
        server.close()


def run_agent(
    command: list[str], project: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """An agent CLI in ``project``, with no standard input and a time limit."""
    return subprocess.run(
        command,
        cwd=project,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        env=env,
    )


def run_claude(
    agents: Path, project: Path, home: Path, prompt: str, model: ModelServer, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``claude -p`` in ``project``, offline, as REAL_AGENTS.md says."""
    home.mkdir(parents=True, exist_ok=True)
    claude = str(agents / "node_modules/.bin/claude")
    offline = {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": model.url,
        "ANTHROPIC_API_KEY": "sk-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    command = [claude, "-p", prompt, "--permission-mode", "acceptEdits"]
    return run_agent(command, project, {**env, **offline})


def codex_home(folder: Path, model: ModelServer) -> Path:
    """A CODEX_HOME whose config sends the model API to ``model``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(
        'model = "gpt-5.5"\nmodel_provider = "fake"\napproval_policy = "never"\n'
        'sandbox_mode = "workspace-write"\n[model_providers.fake]\nname = "fake"\n'
        f'base_url = "{model.url}/v1"\nwire_api = "responses"\nenv_key = "FAKE_OPENAI_KEY"\n'
    )
    return folder


def run_codex(
    agents: Path, project: Path, home: Path, prompt: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``codex exec`` in ``project`` with ``CODEX_HOME=home``, offline."""
    codex = str(agents / "node_modules/.bin/codex")
    flags = ["--skip-git-repo-check", "--trust", "--dangerously-bypass-hook-trust"]
    offline = {"CODEX_HOME": str(home), "FAKE_OPENAI_KEY": "sk-test", "HOME": str(home.parent)}
    return run_agent([codex, "exec", *flags, prompt], project, {**env, **offline})


# -- how the tests set up an agent's machine ---------------------------------------------

COORDINATOR = f"{sys.executable} -m coordinator"


def install(agent: str, env: dict[str, str], url: str, *where: str) -> str:
    """``coordinator install`` as a user runs it (``--user`` unless ``where`` says
    otherwise, e.g. ``--project DIR``), in ``env``; what it printed."""
    command = [sys.executable, "-m", "coordinator", "install", agent, *(where or ["--user"])]
    command += ["--url", url, "--bridge-command", COORDINATOR]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return done.stdout


def checkout(folder: Path) -> Path:
    """An empty git repository at ``folder``."""
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def agent_envs(claude_key: str, codex_key: str) -> tuple[dict[str, str], dict[str, str]]:
    """The environments Claude Code and Codex run in: each with its user's key, none of
    this machine's other COORDINATOR_ settings, Claude Code's MCP tools sent up front."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    claude = {**base, "COORDINATOR_API_KEY": claude_key, "ENABLE_TOOL_SEARCH": "false"}
    return claude, {**base, "COORDINATOR_API_KEY": codex_key}
