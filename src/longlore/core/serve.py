"""A minimal OpenAI-compatible HTTP server over any :class:`~longlore.core.backends.TextModel`.

Enough of the API for longlore's own clients and for tools that speak OpenAI: ``GET /v1/models``,
``POST /v1/chat/completions``, ``POST /v1/completions`` (with ``echo`` + ``logprobs`` when the
model is a local :class:`HFTextModel`). Tests start it on 127.0.0.1 in a thread; ``longlore serve``
runs it in the foreground. Not a production server: one forward at a time, no streaming.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from longlore.core.backends import GenerationRequest
from longlore.core.errors import LongloreError


def _handler(text_model: Any, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def _authorised(self) -> bool:
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._error(401, "invalid API key")
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": text_model.model_id, "object": "model"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if not self._authorised():
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") == "/v1/chat/completions":
                    self._send(200, self._chat(body))
                elif self.path.rstrip("/") == "/v1/completions":
                    self._send(200, self._completions(body))
                else:
                    self._error(404, f"no route {self.path}")
            except (LongloreError, KeyError, ValueError, TypeError) as err:
                self._error(400, str(err))

        @staticmethod
        def _request(body: dict[str, Any], prompt: Any, chat: bool) -> GenerationRequest:
            stop = body.get("stop") or ()
            return GenerationRequest(
                prompt=prompt,
                chat=chat,
                max_new_tokens=int(body.get("max_tokens") or 256),
                stop=(stop,) if isinstance(stop, str) else tuple(stop),
                temperature=float(body.get("temperature") or 0.0),
                n=int(body.get("n") or 1),
                seed=int(body.get("seed") or 0),
            )

        @staticmethod
        def _envelope(kind: str, choices: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
            return {
                "id": f"{kind}-{uuid.uuid4().hex[:12]}",
                "object": kind,
                "created": int(time.time()),
                "model": text_model.model_id,
                "choices": choices,
                "usage": usage,
            }

        @staticmethod
        def _complete(request: GenerationRequest) -> tuple[list[tuple[str, str | None]], dict[str, int]]:
            """``[(text, finish_reason)]`` and ``usage``; a model that cannot tell why it stopped
            gets ``finish_reason: null`` and empty usage rather than a guess."""
            detailed = getattr(text_model, "generate_detailed", None)
            if detailed is None:
                return [(t, None) for t in text_model.generate([request])[0]], {}
            completions = detailed([request])[0]
            prompt = completions[0].prompt_tokens if completions else 0
            produced = sum(c.completion_tokens for c in completions)
            usage = {"prompt_tokens": prompt, "completion_tokens": produced, "total_tokens": prompt + produced}
            return [(c.text, c.finish_reason) for c in completions], usage

        def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
            messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
            choices, usage = self._complete(self._request(body, messages, chat=True))
            return self._envelope(
                "chat.completion",
                [
                    {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": reason}
                    for i, (t, reason) in enumerate(choices)
                ],
                usage,
            )

        def _completions(self, body: dict[str, Any]) -> dict[str, Any]:
            prompt = body["prompt"]
            if not isinstance(prompt, str):
                raise ValueError("this server takes one string prompt per request")
            if body.get("echo"):
                scorer = getattr(text_model, "prompt_token_logprobs", None)
                if scorer is None or not body.get("logprobs"):
                    raise ValueError("echo needs logprobs and a local transformers model behind the server")
                logprobs = scorer(prompt, top=max(1, int(body["logprobs"])))
                n_prompt = len(logprobs["tokens"])
                return self._envelope(
                    "text_completion",
                    [{"index": 0, "text": prompt, "logprobs": logprobs, "finish_reason": "length"}],
                    {"prompt_tokens": n_prompt, "completion_tokens": 0, "total_tokens": n_prompt},
                )
            choices, usage = self._complete(self._request(body, prompt, chat=False))
            return self._envelope(
                "text_completion",
                [
                    {"index": i, "text": t, "logprobs": None, "finish_reason": reason}
                    for i, (t, reason) in enumerate(choices)
                ],
                usage,
            )

    return Handler


def serve_openai(
    text_model: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    background: bool = True,
    on_ready: Callable[[str], None] | None = None,
) -> tuple[ThreadingHTTPServer, str]:
    """Start the server; returns ``(server, base_url)`` (``.../v1``). ``port=0`` picks a free port.

    With ``background=True`` it runs in a daemon thread (stop it with ``server.shutdown()``);
    otherwise the call blocks until interrupted. ``on_ready(base_url)`` runs once the port is bound.
    """
    server = ThreadingHTTPServer((host, port), _handler(text_model, api_key))
    base_url = f"http://{host}:{server.server_address[1]}/v1"
    if on_ready is not None:
        on_ready(base_url)
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    else:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.shutdown()
    return server, base_url


def launch_server(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    extra_args: Sequence[str] = (),
    log_path: str | Path | None = None,
    timeout: float = 300.0,
) -> tuple[subprocess.Popen, str]:
    """Start ``longlore serve --model MODEL`` in a subprocess and wait until it listens.

    Returns ``(process, base_url)``; stop it with ``process.terminate()`` (or ``kill()``). Its
    output goes to ``log_path`` (a temporary file by default). Used by tests and benchmarks that
    need real server processes on 127.0.0.1.
    """
    log = Path(log_path) if log_path is not None else Path(tempfile.mkstemp(prefix="longlore-serve-", suffix=".log")[1])
    command = [sys.executable, "-m", "longlore.cli", "serve", "--model", model, "--host", host, "--port", str(port)]
    with log.open("wb") as handle:
        process = subprocess.Popen([*command, *extra_args], stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"serving .* at (http://\S+/v1)", log.read_text(errors="replace"))
        if found:
            return process, found.group(1)
        if process.poll() is not None:
            raise LongloreError(f"longlore serve {model} exited with code {process.returncode}; see {log}")
        time.sleep(0.1)
    process.kill()
    raise LongloreError(f"longlore serve {model} did not start listening within {timeout:.0f} s; see {log}")
