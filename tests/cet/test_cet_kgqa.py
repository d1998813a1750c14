"""The experiment's questions built from UMLS (pykeen) and MovieLens-100k (recbole)."""

from __future__ import annotations

import random

from longlore.cet.kgqa import (
    PROBE_RELATIONS,
    RELATION_TEMPLATES,
    TARGET_RELATIONS,
    build_benchmark,
    kg_questions,
    movie_genre_questions,
    pretty,
    read_kg,
)


def test_toy_kg_questions_have_exactly_one_valid_option():
    triples = [
        ("virus", "causes", "disease"),
        ("virus", "causes", "fever"),
        ("bacterium", "causes", "rash"),
        ("fungus", "causes", "itch"),
        ("plant", "causes", "pollen"),
        ("virus", "isa", "organism"),
    ]
    qs = kg_questions(triples[:1], triples, ("causes",), n=5, rng=random.Random(0))
    assert len(qs) == 1
    q = qs[0]
    assert q.question == "What does virus cause?" and q.gold == "disease" and len(q.options) == 4
    # 'fever' is also a valid tail of (virus, causes): it must never be a distractor; nor 'virus' itself
    assert "fever" not in q.options and "virus" not in q.options
    assert set(q.options) - {"disease"} <= {"rash", "itch", "pollen", "organism", "bacterium", "fungus", "plant"}


def test_benchmark_splits_are_disjoint_and_relations_separate():
    kg = read_kg("umls")
    every = kg["train"] + kg["valid"] + kg["test"]
    valid = {}
    for h, r, t in every:
        valid.setdefault((pretty(h), r), set()).add(pretty(t))
    data = build_benchmark(n_train=60, n_test=40, n_probe=30, seed=0)
    assert {k: len(v) for k, v in data.items()} == {
        "target_train": 60,
        "target_test": 40,
        "probe_isa": 30,
        "probe_movies": 30,
    }
    for name, rels in (
        ("target_train", TARGET_RELATIONS),
        ("target_test", TARGET_RELATIONS),
        ("probe_isa", PROBE_RELATIONS),
    ):
        for q in data[name]:
            matches = [
                (rel, q.question[len(t.split("{h}")[0]) : len(q.question) - len(t.split("{h}")[1])])
                for rel, t in RELATION_TEMPLATES.items()
                if q.question.startswith(t.split("{h}")[0]) and q.question.endswith(t.split("{h}")[1])
            ]
            rel_heads = [(rel, h) for rel, h in matches if (h, rel) in valid]
            assert rel_heads, q
            rel, head = rel_heads[0]
            assert rel in rels
            assert q.gold in valid[(head, rel)]
            assert sum(o in valid[(head, rel)] for o in q.options) == 1  # no distractor is secretly right
    # target test questions come from test-split triples the training questions never saw
    train_items = {(q.question, q.gold) for q in data["target_train"]}
    assert not train_items & {(q.question, q.gold) for q in data["target_test"]}


def test_movie_genre_questions():
    qs = movie_genre_questions(50, random.Random(0))
    assert len(qs) == 50 and all(len(q.options) == 4 and len(set(q.options)) == 4 for q in qs)
    assert all(q.question.startswith("What kind of film is ") and q.gold.endswith(" film") for q in qs)
    assert not any(", The?" in q.question for q in qs)  # 'Usual Suspects, The' is turned around
    again = movie_genre_questions(50, random.Random(0))
    assert again == qs  # deterministic in the seed
