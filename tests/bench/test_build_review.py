"""The review queue, its HTTP API and the web UI in a real (headless Chromium) browser."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from longlore.bench.build.queue import (
    ReviewItem,
    ReviewStore,
    accepted,
    agreement,
    cohen_kappa,
    export_accepted,
    load_reviews,
    official_record,
    write_queue,
)
from longlore.bench.data import load_benchmark
from longlore.core.errors import LongloreError

STEM = "选择*选项*中相对来说最合适的一个填入空格处来补全以下*句子*。\n*句子*：{}（品类）可以或者应该___（功能）"


def _items(n: int = 4) -> list[ReviewItem]:
    out = []
    for i in range(1, n + 1):
        options = [f"opt{i}a", f"opt{i}b", f"opt{i}c", f"gold{i}"]
        stem = STEM.format(f"物品{i}")
        record = {"id": i, "question": stem + "\n*选项*：" + str(options), "gt": f"gold{i}", "dim": "dim_1"}
        out.append(
            ReviewItem(
                id=f"kg-{i}",
                benchmark="eckgbench",
                language="zh",
                concept="功能",
                stem=stem,
                options=options,
                answer=f"gold{i}",
                evidence=[{"text": f"(物品{i}, 功能, gold{i})", "source": "KG triple"}],
                checks={"judge": {"verdict": "pass"}},
                record=record,
            )
        )
    return out


@pytest.fixture
def queue(tmp_path) -> Path:
    path = tmp_path / "review_queue.jsonl"
    write_queue(path, _items())
    return path


def test_cohen_kappa_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score

    a = ["accept", "accept", "reject", "edit", "accept", "reject", "accept", "edit"]
    b = ["accept", "reject", "reject", "accept", "accept", "reject", "edit", "edit"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # chance agreement 1: undefined
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def test_decisions_validate_edits_and_reasons(queue):
    store = ReviewStore(queue)
    with pytest.raises(LongloreError, match="needs a reason"):
        store.decide("kg-1", "alice", "reject")
    with pytest.raises(LongloreError, match="is not one of the options"):
        store.decide("kg-1", "alice", "edit", edit={"answer": "nope"})
    with pytest.raises(LongloreError, match="must change"):
        store.decide("kg-1", "alice", "edit", edit={})
    with pytest.raises(LongloreError, match="unknown item id"):
        store.decide("kg-9", "alice", "accept")
    store.decide("kg-1", "alice", "accept")
    store.decide("kg-1", "alice", "reject", reason="two options fit")  # a reviewer may change their mind
    reviews = load_reviews(queue)
    assert reviews["decisions"]["kg-1"]["alice"]["decision"] == "reject"
    assert [e["decision"] for e in reviews["log"]] == ["accept", "reject"]  # the log keeps both


def test_edit_rebuilds_the_official_question():
    item = _items(1)[0]
    record = official_record(item, None)
    assert record == item.record
    from longlore.bench.build.queue import Edit

    edited = official_record(item, Edit(options=["x", "y", "gold1", "z"], answer="y"))
    assert edited["gt"] == "y" and edited["question"].endswith("*选项*：['x', 'y', 'gold1', 'z']")
    assert edited["question"].startswith(item.stem) and edited["dim"] == "dim_1"


def test_export_policies_and_agreement(queue, tmp_path):
    store = ReviewStore(queue)
    store.decide("kg-1", "alice", "accept")
    store.decide("kg-1", "bob", "accept")
    store.decide("kg-2", "alice", "edit", reason="clearer", edit={"answer": "opt2a"})
    store.decide("kg-2", "bob", "reject", reason="ambiguous")
    store.decide("kg-3", "bob", "accept")
    decisions = store.decisions()
    assert accepted(decisions["kg-2"], "consensus")[0] is False
    keep, edit = accepted(decisions["kg-2"], "any")
    assert keep and edit.answer == "opt2a"
    assert accepted(decisions["kg-2"], "reviewer:bob")[0] is False
    result = export_accepted(queue, tmp_path / "out", "consensus")
    assert result["written"]["eckgbench"]["count"] == 2
    items = load_benchmark("eckgbench", "main", root=tmp_path / "out")
    assert [it.answers[0] for it in items] == ["gold1", "gold3"]
    export_accepted(queue, tmp_path / "any", "any")
    items = load_benchmark("eckgbench", "main", root=tmp_path / "any")
    assert [it.answers[0] for it in items] == ["gold1", "opt2a", "gold3"]
    agree = agreement(decisions, "alice", "bob")
    assert agree["n_both"] == 2 and agree["raw_agreement"] == 0.5
    assert agree["kappa_keep"] == pytest.approx(0.0)  # alice keeps both, bob keeps one: po 0.5 = pe 0.5


def _hammer(queue: str, reviewer: str, n: int) -> None:
    store = ReviewStore(queue)
    for i in range(n):
        store.decide(f"kg-{i % 4 + 1}", reviewer, "accept" if i % 2 else "reject", reason=f"{reviewer} {i}")


def test_concurrent_reviewers_lose_nothing(queue):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(queue), name, 25)) for name in ("alice", "bob", "carol")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    reviews = load_reviews(queue)
    assert len(reviews["log"]) == 75
    assert sorted(e["seq"] for e in reviews["log"]) == list(range(75))
    for name in ("alice", "bob", "carol"):
        assert [e["reason"] for e in reviews["log"] if e["reviewer"] == name] == [f"{name} {i}" for i in range(25)]
        assert all(name in reviews["decisions"][f"kg-{i}"] for i in range(1, 5))


def test_http_api(queue, tmp_path):
    from starlette.testclient import TestClient

    from longlore.bench.build.review_app import create_app

    client = TestClient(create_app(queue, tmp_path / "exported"))
    assert "longlore review" in client.get("/").text
    assert [it["id"] for it in client.get("/api/items").json()["items"]] == ["kg-1", "kg-2", "kg-3", "kg-4"]
    ok = client.post("/api/decide", json={"item_id": "kg-1", "reviewer": "alice", "decision": "accept"})
    assert ok.status_code == 200 and ok.json()["decision"]["decision"] == "accept"
    bad = client.post("/api/decide", json={"item_id": "kg-2", "reviewer": "alice", "decision": "reject"})
    assert bad.status_code == 400 and "reason" in bad.json()["error"]
    assert client.get("/api/decisions", params={"reviewer": "alice"}).json()["mine"]["kg-1"]["decision"] == "accept"
    exported = client.post("/api/export", json={}).json()
    assert exported["written"]["eckgbench"]["count"] == 1


# ---------------------------------------------------------------- the browser test

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(queue, tmp_path):
    import uvicorn

    from longlore.bench.build.review_app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(queue, tmp_path / "exported"), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", tmp_path / "exported"
    srv.should_exit = True
    thread.join(10)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian package `chromium`; `make install` adds it)")
def test_review_ui_in_a_real_browser(server, queue):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    url, exported = server
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        alice = browser.new_page()
        bob = browser.new_context().new_page()  # a second browser session on the same queue
        for page, name in ((alice, "alice"), (bob, "bob")):
            page.goto(f"{url}/?reviewer={name}")
            page.wait_for_selector("body[data-ready='1']")
        assert alice.text_content("#item-id") == "kg-1"

        alice.keyboard.press("a")  # accept kg-1
        alice.wait_for_function("document.querySelector('#item-id').textContent === 'kg-2'")
        bob.click("#side div[data-id='kg-4']")
        bob.click("#accept")  # bob accepts kg-4 while alice works

        alice.keyboard.press("e")  # edit kg-2: new answer among the options, and a reason
        alice.fill("#edit-answer", "opt2b")
        alice.fill("#reason", "the KG answer is wrong")
        alice.keyboard.press("Control+Enter")
        alice.wait_for_function("document.querySelector('#item-id').textContent === 'kg-3'")

        alice.keyboard.press("r")  # reject kg-3: r asks for a reason, Enter submits
        alice.keyboard.type("two options fit")
        alice.keyboard.press("Enter")
        alice.wait_for_function("document.querySelector('#progress').textContent.startsWith('3 /')")
        assert "✗" not in alice.text_content("#error")

        alice.click("#export")
        alice.wait_for_function("document.querySelector('#export-result').textContent.includes('items')")
        browser.close()

    reviews = load_reviews(queue)
    assert {k: {r: d["decision"] for r, d in v.items()} for k, v in reviews["decisions"].items()} == {
        "kg-1": {"alice": "accept"},
        "kg-2": {"alice": "edit"},
        "kg-3": {"alice": "reject"},
        "kg-4": {"bob": "accept"},
    }
    assert reviews["decisions"]["kg-3"]["alice"]["reason"] == "two options fit"
    records = [json.loads(line) for line in (exported / "eckgbench" / "ECKGBench.jsonl").read_text().splitlines()]
    assert [(r["id"], r["gt"]) for r in records] == [(1, "gold1"), (2, "opt2b"), (4, "gold4")]
    assert records[1]["question"].endswith("*选项*：['opt2a', 'opt2b', 'opt2c', 'gold2']")
