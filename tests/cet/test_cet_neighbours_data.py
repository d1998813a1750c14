"""Neighbour finding (known answers on toy embeddings, caching) and the multiple-choice loaders."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from longlore.cet.data import MCQuestion, load_questions, save_questions
from longlore.cet.neighbours import build_neighbours, find_neighbours, neighbour_texts
from longlore.core.errors import LongloreError


def unit(angle_deg: float) -> list[float]:
    a = math.radians(angle_deg)
    return [math.cos(a), math.sin(a)]


def test_find_neighbours_returns_the_true_nearest_neighbours():
    # points on the unit circle: cosine similarity falls with the angle between them
    angles = [0, 10, 25, 90, 100, 180]
    emb = np.array([unit(a) for a in angles]) * np.array([[1], [2], [3], [1], [5], [1]])  # scale must not matter
    table = find_neighbours(emb, k=2, theta=-1.0)
    assert table.index.tolist() == [[1, 2], [0, 2], [1, 0], [4, 2], [3, 2], [4, 3]]
    assert table.sim[0, 0] == pytest.approx(math.cos(math.radians(10)), rel=1e-6)
    assert all(i not in row for i, row in enumerate(table.index.tolist()))  # never itself
    # brute force agrees on a random set
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8))
    table = find_neighbours(x, k=5, theta=-1.0)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    for i in range(40):
        ranked = [j for j in np.argsort(-sims[i]) if j != i][:5]
        assert table.index[i].tolist() == ranked


def test_theta_drops_dissimilar_neighbours_and_k_caps():
    emb = np.array([unit(a) for a in [0, 10, 80, 180]])
    table = find_neighbours(emb, k=3, theta=math.cos(math.radians(15)))
    assert table.index[0].tolist() == [1, -1, -1]
    assert table.index[3].tolist() == [-1, -1, -1]  # nothing within 15 degrees
    assert table.mask.sum() == 2 and table.coverage == pytest.approx(0.5)
    # theta = 1.0 (the released code's default) keeps exact duplicates only
    dup = np.array([unit(0), unit(0), unit(5)])
    assert find_neighbours(dup, k=2, theta=1.0 - 1e-9).index.tolist() == [[1, -1], [0, -1], [-1, -1]]
    # K larger than N - 1 is capped, the rest padded with -1
    assert find_neighbours(emb[:2], k=4, theta=-1).index.tolist() == [[1, -1, -1, -1], [0, -1, -1, -1]]


def test_neighbour_spaces_embed_different_texts():
    qs = [MCQuestion("a", "What does virus cause?", ("disease", "rock"), 0)]
    assert neighbour_texts(qs, "feature") == ["What does virus cause? disease"]
    assert neighbour_texts(qs, "answer") == ["disease"]


def test_build_neighbours_is_cached_and_keyed_by_settings(tmp_path):
    from longlore.core.models import load_encoder

    encoder, tokenizer = load_encoder("tiny-bert")
    qs = [
        MCQuestion(str(i), f"question number {i} about {w}", ("yes", w), 1)
        for i, w in enumerate(["cats", "dogs", "cats and dogs", "rivers", "mountains"])
    ]
    kwargs = dict(encoder_id="tiny-bert", space="feature", max_len=32, cache_dir=tmp_path)
    first = build_neighbours(qs, encoder, tokenizer, k=2, theta=-1.0, **kwargs)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    second = build_neighbours(qs, encoder, tokenizer, k=2, theta=-1.0, **kwargs)
    assert np.array_equal(first.index, second.index)
    build_neighbours(qs, encoder, tokenizer, k=1, theta=-1.0, **kwargs)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # a new K is a new table, never a stale one


# --- loaders ------------------------------------------------------------------------------------


def write_lines(path, records):
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in records) + "\n")
    return path


def csqa(qid="q1", answer="B", labels=("A", "B", "C"), texts=("rock", "bird", "cloud")):
    record = {
        "id": qid,
        "question": {"stem": "What can fly?", "choices": [{"label": lab, "text": t} for lab, t in zip(labels, texts)]},
    }
    if answer is not None:
        record["answerKey"] = answer
    return record


def test_loads_csqa_arc_and_flat_forms(tmp_path):
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            csqa(),
            csqa("arc", answer="3", labels=("1", "2", "3"), texts=("a", "b", "c")),
            {"id": "f1", "question": "2+2?", "options": ["3", "4"], "answer": 1},
            {"id": "f2", "question": "Sky?", "options": ["green", "blue"], "answer": "B"},
            {"id": "f3", "question": "Sun?", "options": ["hot", "cold"], "answer": "hot"},
            "",
        ],
    )
    qs = load_questions(path)
    assert [(q.id, q.label) for q in qs] == [("q1", 1), ("arc", 2), ("f1", 1), ("f2", 1), ("f3", 0)]
    assert qs[0].gold == "bird" and qs[0].question == "What can fly?"
    save_questions(tmp_path / "out.jsonl", qs)
    assert load_questions(tmp_path / "out.jsonl") == qs


@pytest.mark.parametrize(
    "record, message",
    [
        (csqa(answer=None), "mixed.jsonl:2: field 'answerKey' is missing"),
        (csqa(labels=("A", "A", "C")), "duplicate label(s) A"),
        (
            csqa(labels=("A",), texts=("rock",), answer="A"),
            "1 option(s); a multiple-choice question needs at least two",
        ),
        (csqa(answer="D"), "'D' is not a choice label"),
        ({"question": "x?", "options": ["only"], "answer": 0}, "needs at least two"),
        ({"question": "x?", "options": ["a", "b"]}, "field 'answer' is missing"),
        ({"question": "x?", "options": ["a", "b"], "answer": 5}, "out of range"),
        ({"question": "x?", "options": ["a", "a"], "answer": 0}, "duplicate option text"),
        ({"stem": "x?"}, "field 'question' is missing"),
    ],
)
def test_bad_records_raise_one_clear_line(tmp_path, record, message):
    path = write_lines(tmp_path / "mixed.jsonl", [csqa(), record])
    with pytest.raises(LongloreError) as err:
        load_questions(path)
    assert message in str(err.value)
    assert "mixed.jsonl:2" in str(err.value) and "\n" not in str(err.value)


def test_invalid_json_and_missing_file(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [csqa(), "{not json"])
    with pytest.raises(LongloreError, match=r"bad.jsonl:2: invalid JSON"):
        load_questions(path)
    with pytest.raises(LongloreError, match="no such file"):
        load_questions(tmp_path / "missing.jsonl")
