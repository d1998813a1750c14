"""The HTTP API against a running uvicorn server on 127.0.0.1, with a real HTTP client."""

from __future__ import annotations

import httpx
import pytest

from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.data import leave_last_out
from longlore.recgpt.serve import create_app, start_in_thread
from longlore.recgpt.trainer import Retriever, train_retriever


@pytest.fixture(scope="module")
def served(toy_data, hash_embedder, tmp_path_factory):
    split = leave_last_out(toy_data)
    config = RecGPTConfig(epochs=2, batch_size=64, n_negatives=16, dim=16)
    retriever, _ = train_retriever(toy_data, split, config, embedder=hash_embedder)
    folder = tmp_path_factory.mktemp("run") / "retriever"
    retriever.save(folder)
    reloaded = Retriever.load(folder, embedder=hash_embedder)
    mined = {
        "1": {"tags": [{"tag": "comedy movies", "interest": "fun"}, {"tag": "sci-fi movies", "interest": "space"}]}
    }
    top = reloaded.scores("1", [x.item_id for x in split.train["1"]], ["comedy movies"])[0].argmax().item()
    explanations = {"1": {reloaded.features.item_ids[top]: "a light comedy for a fun night"}}
    server, url = start_in_thread(create_app(reloaded, toy_data, split, mined, explanations))
    yield url, split, retriever, reloaded
    server.should_exit = True


def test_saved_retriever_reloads_to_identical_scores(served, toy_data):
    _, split, original, reloaded = served
    history = [x.item_id for x in split.train["2"]]
    assert original.scores("2", history)[0].tolist() == pytest.approx(
        reloaded.scores("2", history)[0].tolist(), abs=1e-6
    )


def test_recommendations_over_http(served, toy_data):
    url, split, _, _ = served
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").json()["status"] == "ok"
        body = client.get("/users/1/recommendations", params={"k": 5}).json()
        assert body["user_id"] == "1" and len(body["items"]) == 5 and body["tags"] == ["comedy movies", "sci-fi movies"]
        seen = {x.item_id for x in split.train["1"]} | {split.valid["1"].item_id}
        assert not seen & {it["item_id"] for it in body["items"]}  # nothing already watched
        assert all(it["tag"] in body["tags"] for it in body["items"])
        scores = [it["score"] for it in body["items"]]
        assert scores == sorted(scores, reverse=True)
        assert any(it["explanation"] for it in body["items"])
        plain = client.get("/users/2/recommendations").json()  # no tags mined: collaborative scores only
        assert len(plain["items"]) == 10 and all(it["tag"] is None for it in plain["items"])


def test_unknown_user_and_bad_k_get_clear_http_errors(served):
    url = served[0]
    with httpx.Client(base_url=url, timeout=30) as client:
        missing = client.get("/users/999999/recommendations")
        assert missing.status_code == 404 and "unknown user id '999999'" in missing.json()["detail"]
        assert client.get("/users/1/recommendations", params={"k": 0}).status_code == 422
        assert client.get("/users/1/recommendations", params={"k": "ten"}).status_code == 422
