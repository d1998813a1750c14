"""``GET /users/{id}/recommendations?k=``: recommendations with the tag that retrieved each item
and its explanation, served by FastAPI + uvicorn from a run folder written by the CLI.

A run folder holds ``retriever/`` (the trained towers), ``mined.json`` (per user: interests and
tags from the LLM stages) and optionally ``explanations.json`` (user -> item -> reason).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query

from longlore.core.errors import LongloreError
from longlore.core.io import read_json
from longlore.recgpt.data import Dataset, Split
from longlore.recgpt.pipeline import recommend
from longlore.recgpt.trainer import Retriever


def create_app(
    retriever: Retriever,
    data: Dataset,
    split: Split,
    mined: dict[str, Any],
    explanations: dict[str, dict[str, str]] | None = None,
) -> FastAPI:
    """The HTTP API over an in-memory retriever; ``mined`` maps user id -> {"tags": [...], ...}."""
    app = FastAPI(title="longlore RecGPT", version="1")
    explanations = explanations or {}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "users": data.n_users, "items": data.n_items, "users_with_tags": len(mined)}

    @app.get("/users/{user_id}/recommendations")
    def recommendations(user_id: str, k: int = Query(10, ge=1, le=200)) -> dict[str, Any]:
        try:
            tags = [t["tag"] if isinstance(t, dict) else t for t in mined.get(user_id, {}).get("tags", [])]
            items = recommend(retriever, data, split, user_id, k, tags, explanations.get(user_id))
        except LongloreError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        return {"user_id": user_id, "k": k, "tags": tags, "items": items}

    return app


def load_run(run_dir: Path) -> tuple[Retriever, dict, dict]:
    """Read a run folder (see the module docstring); a missing part is a one-line error."""
    retriever = Retriever.load(run_dir / "retriever")
    mined = read_json(run_dir / "mined.json") if (run_dir / "mined.json").exists() else {}
    explanations = read_json(run_dir / "explanations.json") if (run_dir / "explanations.json").exists() else {}
    return retriever, mined, explanations


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    """Run uvicorn in a daemon thread (for tests and benchmarks); returns (server, base_url)."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise LongloreError(f"the RecGPT server did not start on {host}:{port}")
        time.sleep(0.05)
    return server, f"http://{host}:{port}"
