"""A recording stand-in for vLLM: a real HTTP server that answers OpenAI-compatible calls and records
the method, path, query, headers (every value of every name) and JSON body of every request.

It runs in its own subprocess (uvicorn, so it has its own GIL and never slows the server under test)
and serves many concurrent requests (tested with 1,000 in flight). Endpoints, all answered with small
canned bodies shaped like vLLM's:

* ``GET /v1/models`` — the configured model ids;
* ``POST /v1/chat/completions`` and ``POST /v1/completions`` — streaming (SSE) and not; the reply
  echoes the first user message (or prompt), so a test can tell replies apart;
* ``POST /v1/embeddings`` — one small vector per input;
* ``POST /v1/messages`` (streaming and not) and ``POST /v1/messages/count_tokens`` — Anthropic shapes;
* ``POST /rerank`` (where OGX's vLLM adapter calls it), ``/v1/rerank`` and ``/v2/rerank`` — Jina shape;
* ``GET /health`` — 200.

Usage::

    from support.upstream import RecordingUpstream

    with RecordingUpstream() as upstream:            # starts, waits until it answers
        provider_config = {"base_url": upstream.openai_base_url}
        ...
        for request in upstream.requests(path="/v1/chat/completions"):
            assert request.header("x-gateway-inference-fairness-id") == "acme"
        upstream.clear()

Its own control routes live under ``/_upstream/`` and are never recorded. Run it by hand with
``python tests/support/upstream.py --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_MODELS = ("test-chat", "test-embed", "test-rerank")
CONTROL_PREFIX = "/_upstream/"
_EMBEDDING_DIMENSION = 8


@dataclass(frozen=True)
class RecordedRequest:
    """One request the upstream received.

    :param method: HTTP method, upper-case.
    :param path: URL path without the query string.
    :param query: the raw query string ("" when none).
    :param headers: every header as received, ``(name lower-cased, value)``, in arrival order.
    :param body: the JSON body, or None when there was none or it was not JSON.
    """

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: Any

    def header_values(self, name: str) -> list[str]:
        """Every value received for ``name`` (case-insensitive), so a duplicated header shows."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def header(self, name: str) -> str | None:
        """The value of ``name``, None when absent; raises AssertionError when it arrived twice."""
        values = self.header_values(name)
        assert len(values) <= 1, f"header {name} arrived {len(values)} times"
        return values[0] if values else None

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream")) if isinstance(self.body, dict) else False


class RecordingUpstream:
    """The recording server in a subprocess. ``start()``/``stop()`` or use it as a context manager.

    :param models: the model ids ``/v1/models`` lists (OGX classifies ids containing ``embed`` as
        embedding models and ``rerank`` as rerank models).
    :param delay_s: seconds every answer waits before it starts, so that concurrent requests are
        really in flight together.
    :param host: the address to listen on.
    """

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, delay_s: float = 0.0, host: str = "127.0.0.1"):
        self.models = tuple(models)
        self.delay_s = delay_s
        self.host = host
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._control = httpx.Client(timeout=30)

    @property
    def base_url(self) -> str:
        """``http://host:port`` — where OGX's vLLM adapter finds ``/health`` and ``/rerank``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://host:port/v1`` — the ``base_url`` to give OGX's vLLM provider."""
        return f"{self.base_url}/v1"

    def start(self, timeout_s: float = 30) -> RecordingUpstream:
        command = [
            sys.executable, os.path.abspath(__file__), "--host", self.host, "--port", str(self.port),
            "--delay", str(self.delay_s), "--models", ",".join(self.models),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"recording upstream exited during start-up:\n{error}")
            try:
                if self._control.get(f"{self.base_url}{CONTROL_PREFIX}ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"recording upstream did not answer within {timeout_s}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self._control.close()

    def requests(self, *, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """What was recorded so far, in arrival order; optionally only one path and/or method."""
        response = self._control.get(f"{self.base_url}{CONTROL_PREFIX}requests")
        response.raise_for_status()
        recorded = [
            RecordedRequest(r["method"], r["path"], r["query"], tuple(tuple(h) for h in r["headers"]), r["body"])
            for r in response.json()
        ]
        return [
            r for r in recorded
            if (path is None or r.path == path) and (method is None or r.method == method.upper())
        ]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._control.post(f"{self.base_url}{CONTROL_PREFIX}clear").raise_for_status()

    def __enter__(self) -> RecordingUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the server (runs in the subprocess) ------------------------------------------------------------


class _UpstreamApp:
    """A plain ASGI app: no framework, so the stand-in is never the bottleneck of a benchmark."""

    def __init__(self, models: Iterable[str], delay_s: float):
        self.models = list(models)
        self.delay_s = delay_s
        self.recorded: list[dict[str, Any]] = []
        self.counter = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if path.startswith(CONTROL_PREFIX):
            return await self._control(path, send)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.recorded.append({
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body,
        })
        self.counter += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = body if isinstance(body, dict) else {}
        route = (method, path)
        if route == ("GET", "/health"):
            return await _send_json(send, 200, {})
        if route == ("GET", "/v1/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "upstream"} for m in self.models]
            return await _send_json(send, 200, {"object": "list", "data": data})
        if route == ("POST", "/v1/chat/completions"):
            return await self._chat(send, body)
        if route == ("POST", "/v1/completions"):
            return await self._completion(send, body)
        if route == ("POST", "/v1/embeddings"):
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
            data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * _EMBEDDING_DIMENSION}
                    for i in range(count)]
            usage = {"prompt_tokens": count, "total_tokens": count}
            payload = {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
            return await _send_json(send, 200, payload)
        if route == ("POST", "/v1/messages"):
            return await self._messages(send, body)
        if route == ("POST", "/v1/messages/count_tokens"):
            return await _send_json(send, 200, {"input_tokens": 3})
        if method == "POST" and path in ("/rerank", "/v1/rerank", "/v2/rerank"):
            documents = body.get("documents") or []
            results = [{"index": i, "relevance_score": 1.0 / (i + 1), "document": {"text": str(d)}}
                       for i, d in enumerate(documents)][: body.get("top_n") or None]
            return await _send_json(send, 200, {"id": f"rerank-{self.counter}", "model": body.get("model"),
                                                "results": results, "usage": {"total_tokens": len(documents)}})
        return await _send_json(send, 404, {"error": {"message": f"no route {method} {path}", "code": 404}})

    async def _control(self, path: str, send: Any) -> None:
        if path == f"{CONTROL_PREFIX}ready":
            return await _send_json(send, 200, {"ready": True})
        if path == f"{CONTROL_PREFIX}requests":
            return await _send_json(send, 200, self.recorded)
        if path == f"{CONTROL_PREFIX}clear":
            self.recorded = []
            return await _send_json(send, 200, {"cleared": True})
        return await _send_json(send, 404, {"error": f"unknown control route {path}"})

    async def _chat(self, send: Any, body: dict[str, Any]) -> None:
        reply = f"echo: {_first_user_text(body.get('messages'))}"
        model, ident, created = body.get("model"), f"chatcmpl-{self.counter}", int(time.time())
        if not body.get("stream"):
            return await _send_json(send, 200, {
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        await _send_sse(send, [
            (None, chunk({"role": "assistant", "content": ""}, None)),
            (None, chunk({"content": reply}, None)),
            (None, chunk({}, "stop")),
        ])

    async def _completion(self, send: Any, body: dict[str, Any]) -> None:
        prompt = body.get("prompt")
        reply = f"echo: {prompt[0] if isinstance(prompt, list) and prompt else prompt}"
        model, ident, created = body.get("model"), f"cmpl-{self.counter}", int(time.time())

        def completion(text: str, finish: str | None) -> dict[str, Any]:
            return {"id": ident, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}

        if not body.get("stream"):
            result = completion(reply, "stop")
            result["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            return await _send_json(send, 200, result)
        await _send_sse(send, [(None, completion(reply, None)), (None, completion("", "stop"))])

    async def _messages(self, send: Any, body: dict[str, Any]) -> None:
        reply = f"echo: {_first_user_text(body.get('messages'))}"
        message = {"id": f"msg_{self.counter}", "type": "message", "role": "assistant", "model": body.get("model"),
                   "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 1, "output_tokens": 1}}
        if not body.get("stream"):
            return await _send_json(send, 200, message)
        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}
        await _send_sse(send, [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": reply}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"}),
        ], done_marker=False)


def _first_user_text(messages: Any) -> str:
    for message in messages or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


async def _send_json(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _send_sse(send: Any, events: list[tuple[str | None, Any]], *, done_marker: bool = True) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
    for event, payload in events:
        prefix = f"event: {event}\n" if event else ""
        await send({"type": "http.response.body", "body": f"{prefix}data: {json.dumps(payload)}\n\n".encode(),
                    "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n" if done_marker else b""})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A recording, OpenAI-compatible stand-in for vLLM.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer waits before it starts")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids to list")
    args = parser.parse_args(argv)
    import uvicorn

    app = _UpstreamApp([m for m in args.models.split(",") if m], args.delay)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, backlog=4096,
                timeout_keep_alive=30)


if __name__ == "__main__":
    main()
