"""A minimal OpenAI-compatible HTTP server over any :class:`~longlore.core.backends.TextModel`.

Enough of the API for longlore's own clients and for tools that speak OpenAI: ``GET /v1/models``,
``POST /v1/chat/completions``, ``POST /v1/completions`` (with ``echo`` + ``logprobs`` when the
model is a local :class:`HFTextModel`). Tests start it on 127.0.0.1 in a thread; ``longlore serve``
runs it in the foreground. Not a production server: one forward at a time, no streaming.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
                repetition_penalty=float(body.get("repetition_penalty") or 1.0),
            )

        @staticmethod
        def _envelope(kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "id": f"{kind}-{uuid.uuid4().hex[:12]}",
                "object": kind,
                "created": int(time.time()),
                "model": text_model.model_id,
                "choices": choices,
                "usage": {},
            }

        def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
            messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
            texts = text_model.generate([self._request(body, messages, chat=True)])[0]
            return self._envelope(
                "chat.completion",
                [
                    {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)
                ],
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
                return self._envelope(
                    "text_completion", [{"index": 0, "text": prompt, "logprobs": logprobs, "finish_reason": "length"}]
                )
            texts = text_model.generate([self._request(body, prompt, chat=False)])[0]
            return self._envelope(
                "text_completion",
                [{"index": i, "text": t, "logprobs": None, "finish_reason": "stop"} for i, t in enumerate(texts)],
            )

    return Handler


def serve_openai(
    text_model: Any, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, background: bool = True
) -> tuple[ThreadingHTTPServer, str]:
    """Start the server; returns ``(server, base_url)`` (``.../v1``). ``port=0`` picks a free port.

    With ``background=True`` it runs in a daemon thread (stop it with ``server.shutdown()``);
    otherwise the call blocks until interrupted.
    """
    server = ThreadingHTTPServer((host, port), _handler(text_model, api_key))
    base_url = f"http://{host}:{server.server_address[1]}/v1"
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    else:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.shutdown()
    return server, base_url
