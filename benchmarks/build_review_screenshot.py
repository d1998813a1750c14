"""The screenshot of the review UI in docs/bench-build.md: a UMLS build-kg queue in headless Chromium.

Run:  .venv/bin/python benchmarks/build_review_screenshot.py [--queue runs/.../review_queue.jsonl] \\
          --out docs/img/bench-review.png

Without ``--queue`` it builds a 12-question UMLS queue first (MiniLM filter, no LLM). The queue is
copied to a temporary folder, so the screenshot's decisions touch nothing else.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-review.png"))
    args = parser.parse_args()
    import uvicorn
    from playwright.sync_api import sync_playwright

    from longlore.bench.build.review_app import create_app

    tmp = Path(tempfile.mkdtemp())
    if args.queue is None:
        from longlore.bench.build.config import KGBuildConfig
        from longlore.bench.build.kg import build_kg_benchmark

        build_kg_benchmark(KGBuildConfig(triples="umls", out=str(tmp / "build"), n_questions=12))
        args.queue = tmp / "build" / "review_queue.jsonl"
    queue = tmp / "review_queue.jsonl"
    shutil.copy(args.queue, queue)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(queue), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/?reviewer=alice")
        page.wait_for_selector("body[data-ready='1']")
        page.keyboard.press("a")
        page.wait_for_function("document.querySelector('#progress').textContent.startsWith('1 /')")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
