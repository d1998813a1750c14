"""The retrieval mechanisms the paper names, each against an independent computation.

Fails if L_cate were L_tag, if the accidental-hit mask were off, if tag -> category picked the
farthest genre, if b were chosen on the users it is scored on, or if a small catalogue crashed
evaluation. Also: the prompts take the domain from the data (a book catalogue here).
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch

from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.data import leave_last_out, load_dataset
from longlore.recgpt.model import ThreeTower
from longlore.recgpt.trainer import Features, batch_losses


def _np_softmax_nll(q, c, tau, positives):
    """-log(sum_{j in P} exp(s_j) / sum_j exp(s_j)) with s = q.c/tau, in numpy."""
    s = q @ c.T / tau
    s = s - s.max()
    return -np.log(np.exp(s[positives]).sum() / np.exp(s).sum())


def test_batch_losses_mask_accidental_hits_and_use_the_category_for_l_cate(toy_data):
    torch.manual_seed(0)
    f = Features.build(toy_data)
    model = ThreeTower(
        len(f.user_ids), len(f.item_ids), len(f.user_vocab), f.item_genres, f.item_attrs, len(f.attr_vocab), 8, 16
    )
    items = torch.tensor([0, 1])
    negatives = torch.tensor([1, 5, 0, 7])  # item 1 is row 1's positive and row 0's negative; 0 likewise
    users, hists = torch.tensor([0, 1]), torch.full((2, 3), len(f.item_ids))
    tag_texts = torch.randn(2, 8)
    genre = int(f.item_genres[0].nonzero()[0])
    cats = torch.tensor([genre, -1])
    tau = 0.2
    l_col, l_tag, l_cate = batch_losses(
        model, f, users, items, hists, tag_texts, cats, torch.tensor([True, True]), negatives, tau
    )
    with torch.no_grad():
        cand_ids = torch.cat([items, negatives]).tolist()
        c = model.item(torch.tensor(cand_ids)).numpy()
        h_u = model.user(users, f.user_feats[users], hists).numpy()
        h_t = model.tag(tag_texts).numpy()

    def col(q, i):  # sampled softmax over the candidates, other copies of the row's own item removed
        keep = [j for j, item in enumerate(cand_ids) if j == i or item != cand_ids[i]]
        return _np_softmax_nll(q, c[keep], tau, [keep.index(i)])

    expected_col = np.mean([col(h_u[0], 0), col(h_u[1], 1)])
    assert l_col.item() == pytest.approx(expected_col, rel=1e-4)
    unmasked = np.mean([_np_softmax_nll(h_u[i], c, tau, [i]) for i in (0, 1)])
    assert abs(unmasked - expected_col) > 1e-3  # the mask matters on this batch
    assert l_tag.item() == pytest.approx(np.mean([col(h_t[0], 0), col(h_t[1], 1)]), rel=1e-4)
    # L_cate: row 0's tag has a category; every candidate of that genre is a positive (row 1 has none)
    same = [j for j, item in enumerate(cand_ids) if f.item_genres[item, genre] > 0]
    assert len(same) >= 2
    assert l_cate.item() == pytest.approx(_np_softmax_nll(h_t[0], c, tau, same), rel=1e-4)
    assert abs(l_cate.item() - l_tag.item()) > 1e-3


def test_tag_category_is_the_nearest_genre_centroid():
    from longlore.recgpt.pipeline import tag_categories

    # items 0,1 are genre A (vectors near e0), items 2,3 genre B (near e1); tag vectors are given
    item_vectors = torch.tensor([[1.0, 0.1], [0.9, -0.1], [0.1, 1.0], [-0.1, 0.9]])
    item_genres = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    tag_vecs = {"near a": torch.tensor([0.95, 0.2]), "near b": torch.tensor([0.3, 0.9])}
    stub = types.SimpleNamespace(
        features=types.SimpleNamespace(genres=["A", "B"], item_genres=item_genres),
        item_vectors=item_vectors,
        tag_vectors=lambda tags: torch.stack([tag_vecs[t] for t in tags]),
    )
    assert tag_categories(stub, ["near a", "near b", "near b"]) == ["A", "B", "B"]
    assert tag_categories(stub, []) == []


def test_b_is_chosen_on_other_users_validation_items(toy_data, hash_embedder):
    from longlore.recgpt.pipeline import crossfit_fusion, user_fold
    from longlore.recgpt.trainer import train_retriever

    split = leave_last_out(toy_data)
    retriever, _ = train_retriever(
        toy_data, split, RecGPTConfig(epochs=1, batch_size=64, n_negatives=8, dim=8), embedder=hash_embedder
    )
    users = sorted(split.test, key=int)
    calls = []
    real = retriever.scores

    def spy(user, history, tags=None, beta=None, merge=None):
        calls.append((user, tuple(history)))
        return real(user, history, tags, beta, merge)

    retriever.scores = spy
    out = crossfit_fusion(toy_data, split, users, {"r": retriever}, {}, [1.0, 0.5], folds=2, seed=0)
    # selection never sees a test item: every history it scored is a user's training log
    train_logs = {u: tuple(x.item_id for x in split.train[u]) for u in users}
    assert all(history == train_logs[u] for u, history in calls)
    assert set(out["choice"]) == {0, 1} and all(c["beta"] in (1.0, 0.5) for c in out["choice"].values())
    # the choice of fold f is the arg-max over the *other* fold's validation recall
    for f, c in out["choice"].items():
        table = {key: v[f"fold{f}_others"] for key, v in out["selection"].items()}
        assert table[f"r_b{c['beta']:g}"] == max(table.values())
    calls.clear()
    out["scorer"](users[0])
    assert calls == [(users[0], train_logs[users[0]] + (split.valid[users[0]].item_id,))]  # test: train + valid
    assert len({user_fold(u, 2) for u in users}) == 2


def test_evaluate_on_a_catalogue_smaller_than_k(tmp_path):
    from longlore.recgpt.evaluate import evaluate_scorer

    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "interactions.jsonl").write_text(
        "".join(
            json.dumps({"user_id": u, "item_id": str(i), "timestamp": t}) + "\n"
            for u, seq in {"a": [1, 2, 3, 4], "b": [2, 3, 5, 1]}.items()
            for t, i in enumerate(seq)
        )
    )
    data = load_dataset(folder)
    split = leave_last_out(data)
    users = sorted(split.test)
    seen = {u: {data.item_index[x.item_id] for x in split.train[u]} for u in users}
    m = evaluate_scorer(
        data,
        lambda u: torch.arange(data.n_items, dtype=torch.float),
        users,
        {u: split.test[u].item_id for u in users},
        seen,
        set(),
        k_top=20,
        per_user=True,
    )
    assert m["users"] == 2 and m["recall@20"] == 1.0  # 5 items: every list is the whole unseen catalogue
    assert m["per_user"]["hit@20"] == [1.0, 1.0]


def test_prompts_and_tags_speak_of_the_datasets_domain(tmp_path):
    from longlore.recgpt.data import descriptor_tags, write_jsonl_folder
    from longlore.recgpt.mining import run_interest_and_tags

    folder = tmp_path / "books"
    folder.mkdir()
    genres = ["Mystery", "Poetry", "History", "Fantasy"]
    (folder / "items.jsonl").write_text(
        "".join(
            json.dumps({"item_id": str(i), "title": f"Volume {i}", "genres": [genres[i % 4]]}) + "\n" for i in range(40)
        )
    )
    (folder / "interactions.jsonl").write_text(
        "".join(
            json.dumps({"user_id": str(u), "item_id": str((u * 7 + k) % 40), "rating": 5, "timestamp": 1e9 + k * 86400})
            + "\n"
            for u in range(3)
            for k in range(8)
        )
    )
    (folder / "dataset.json").write_text('{"domain": "book"}')
    data = load_dataset(folder)
    assert (data.domain, data.domain_plural) == ("book", "books")
    assert descriptor_tags(data.items["1"], data.domain_plural)[0][0] == "poetry books"

    class Recorder:
        model_id = "recorder"

        def __init__(self):
            self.requests = []

        def format_chat(self, prompt, system=None):
            return prompt

        def generate(self, requests):
            self.requests += list(requests)
            return [["not json"] for _ in requests]

    recorder = Recorder()
    split = leave_last_out(data)
    run_interest_and_tags(recorder, data, split.train, ["0", "1"], RecGPTConfig(max_retries=0))
    text = " ".join(str(r.prompt) + r.response_prefix for r in recorder.requests)
    assert "book" in text and "movie" not in text.lower() and "film" not in text.lower()
    assert all(json.loads(r.json_schema)["type"] == "array" for r in recorder.requests)  # structured by default
    write_jsonl_folder(data, tmp_path / "copy")
    assert load_dataset(tmp_path / "copy").domain == "book"
    (folder / "dataset.json").write_text('{"domain": 3}')
    from longlore.core.errors import LongloreError

    with pytest.raises(LongloreError, match="dataset.json: field 'domain' must be a non-empty string"):
        load_dataset(folder)


def test_retriever_training_resumes_to_the_unbroken_result(toy_data, hash_embedder, tmp_path):
    from longlore.recgpt.trainer import train_retriever

    split = leave_last_out(toy_data)
    config = RecGPTConfig(epochs=2, batch_size=64, n_negatives=8, dim=8)
    unbroken, whole = train_retriever(toy_data, split, config, embedder=hash_embedder)
    _, first = train_retriever(toy_data, split, config, embedder=hash_embedder, out_dir=tmp_path, stop_after=3)
    assert not first["finished"] and first["steps"] == 3 and whole["steps"] > 4  # stopped inside epoch 1
    resumed, second = train_retriever(toy_data, split, config, embedder=hash_embedder, out_dir=tmp_path)
    assert second["finished"] and second["history"] == whole["history"]
    for (name, a), b in zip(unbroken.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
