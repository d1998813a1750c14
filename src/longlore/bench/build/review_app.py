"""``bench review``: a small Starlette app + one plain HTML/JS page over a review queue.

Routes: ``GET /`` the page; ``GET /api/items``; ``GET /api/decisions?reviewer=NAME`` (this
reviewer's decisions, counts, agreement); ``POST /api/decide`` ``{item_id, reviewer, decision,
reason, edit}``; ``POST /api/export`` ``{policy}``. Every decision goes through
:class:`~longlore.bench.build.queue.ReviewStore` (file lock + atomic rewrite), so any number of
browsers can review the same queue. The server binds 127.0.0.1 only.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from longlore.bench.build.queue import ReviewStore, agreement, export_accepted
from longlore.core.errors import LongloreError

HOST = "127.0.0.1"


def create_app(queue: str | Path, export_dir: str | Path | None = None) -> Starlette:
    """The review app for one queue file; Export writes under ``export_dir`` (default
    ``<queue folder>/reviewed``)."""
    store = ReviewStore(queue)
    export_to = Path(export_dir) if export_dir else Path(queue).parent / "reviewed"
    page = resources.files("longlore.bench.build").joinpath("static/review.html").read_text(encoding="utf-8")

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def items(request: Request) -> JSONResponse:
        return JSONResponse({"queue": Path(queue).name, "items": [it.model_dump(mode="json") for it in store.items]})

    async def decisions(request: Request) -> JSONResponse:
        reviewer = request.query_params.get("reviewer", "")
        all_decisions = store.decisions()
        mine = {item_id: d[reviewer] for item_id, d in all_decisions.items() if reviewer in d}
        reviewers: dict[str, int] = {}
        for per_item in all_decisions.values():
            for name in per_item:
                reviewers[name] = reviewers.get(name, 0) + 1
        return JSONResponse({"mine": mine, "reviewers": reviewers, "agreement": agreement(all_decisions)})

    async def decide(request: Request) -> JSONResponse:
        body = await _json(request)
        try:
            entry = store.decide(
                str(body.get("item_id", "")),
                str(body.get("reviewer", "")),
                str(body.get("decision", "")),
                str(body.get("reason", "")),
                body.get("edit"),
            )
        except (LongloreError, ValueError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse({"ok": True, "decision": entry})

    async def export(request: Request) -> JSONResponse:
        body = await _json(request)
        try:
            result = export_accepted(queue, export_to, str(body.get("policy", "consensus")))
        except LongloreError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(result)

    routes = [
        Route("/", index),
        Route("/api/items", items),
        Route("/api/decisions", decisions),
        Route("/api/decide", decide, methods=["POST"]),
        Route("/api/export", export, methods=["POST"]),
    ]
    return Starlette(routes=routes)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def serve(queue: str | Path, port: int = 8765, export_dir: str | Path | None = None) -> None:
    """Run the app on 127.0.0.1:``port`` until interrupted."""
    import uvicorn

    from longlore.core.progress import console

    app = create_app(queue, export_dir)
    console.print(f"reviewing {queue} at http://{HOST}:{port}/?reviewer=YOUR_NAME (Ctrl+C to stop)")
    uvicorn.run(app, host=HOST, port=port, log_level="warning")
