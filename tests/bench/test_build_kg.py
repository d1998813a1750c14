"""build-kg: inputs, the three negative stages, quotas, verification, and the official format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from longlore.bench.build.config import KGBuildConfig
from longlore.bench.build.kg import (
    allocate,
    build_kg_benchmark,
    embedding_filter,
    index_kg,
    mmr_pick,
    parse_judge,
    parse_picks,
    recall_candidates,
)
from longlore.bench.build.kg_sources import (
    Triple,
    eckg_official_reader,
    eckg_official_templates,
    eckg_official_triples,
    parse_templates,
    read_templates,
    read_triples,
)
from longlore.bench.build.queue import read_queue
from longlore.bench.data import load_benchmark
from longlore.core.errors import LongloreError

# ---------------------------------------------------------------- inputs


def test_read_triples_tsv_headerless_and_with_header(tmp_path):
    plain = tmp_path / "kg.tsv"
    plain.write_text("a\tr\tb\nc\tr\td\n")
    assert read_triples(plain) == [Triple("a", "r", "b"), Triple("c", "r", "d")]
    typed = tmp_path / "typed.tsv"
    typed.write_text("head\trelation\ttail\tlabel\ttail_type\na\tr\tb\tfalse\tcolour\na\tr\tc\t1\tcolour\n")
    got = read_triples(typed)
    assert got[0] == Triple("a", "r", "b", label=False, tail_type="colour")
    assert got[1].label is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\tr\n", "kg.tsv:1: expected 3 tab-separated columns, found 2"),
        ("head\trelation\ttail\tlabel\na\tr\tb\tmaybe\n", "kg.tsv:2: label 'maybe' is not true/false"),
    ],
)
def test_read_triples_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "kg.tsv"
    path.write_text(text)
    with pytest.raises(LongloreError, match=message):
        read_triples(path)


def test_read_triples_jsonl(tmp_path):
    path = tmp_path / "kg.jsonl"
    path.write_text('{"head": "a", "relation": "r", "tail": "b", "label": "no"}\n{"head": "a", "relation": "r"}\n')
    with pytest.raises(LongloreError, match=r"kg.jsonl:2: missing field\(s\) \['tail'\]"):
        read_triples(path)


def test_templates_validate_and_fill():
    t = parse_templates(
        {
            "language": "en",
            "default_template": "{head} {relation} ___",
            "relations": {"kind": {"template": "{head} ({head_type}) is a kind of ___ ({tail_type})", "is_a": True}},
        },
        "t.yaml",
    )
    assert t.sentence(Triple("apple", "kind", "fruit", head_type="food", tail_type="class")) == (
        "apple (food) is a kind of ___ (class)"
    )
    assert t.sentence(Triple("apple", "kind", "fruit")) == "apple is a kind of ___"  # empty types vanish
    assert t.sentence(Triple("x", "part_of", "y")) == "x part of ___"
    assert t.for_relation("kind").is_a and not t.for_relation("other").is_a
    with pytest.raises(LongloreError, match="blank ___ exactly once"):
        parse_templates({"language": "en", "relations": {"r": "{head} is"}}, "t.yaml")
    with pytest.raises(LongloreError, match=r"unknown placeholder\(s\) \['tail'\]"):
        parse_templates({"language": "en", "relations": {"r": "{head} ___ {tail}"}}, "t.yaml")


def test_shipped_templates_cover_their_sources():
    umls = read_templates("umls")
    assert umls.relations["isa"].is_a and umls.language == "en"
    movies = read_templates("movielens-freebase")
    assert [r for r, t in movies.relations.items() if t.is_a] == ["genre"]


# ---------------------------------------------------------------- stage 1, quotas


def test_recall_is_false_labelled_plus_relation_pool_minus_true_tails_and_head():
    kg = [
        Triple("s", "r", "gold"),
        Triple("s", "r", "also_true"),
        Triple("s", "r", "neg1", label=False),
        Triple("s", "r", "also_true", label=False),  # contradicting label: the true one wins
        Triple("t", "r", "pool1"),
        Triple("t", "r", "s"),  # the head itself never becomes an option
        Triple("u", "other", "elsewhere"),
    ]
    index = index_kg(kg)
    assert recall_candidates("s", "r", index, "labelled") == ["neg1"]
    assert recall_candidates("s", "r", index, "labelled+relation") == ["neg1", "pool1"]


def test_allocate_share_even_split_and_redistribution():
    available = {"isa": 100, "b": 100, "c": 2}
    quota = allocate(available, {"isa": True, "b": False, "c": False}, {}, 10, 0.4)
    assert quota == {"isa": 4, "b": 4, "c": 2}  # c is full at 2, its leftover goes to b
    # No is-a relation can fill its share: the rest goes to the other group.
    assert allocate({"isa": 1, "b": 50}, {"isa": True, "b": False}, {}, 10, 0.5) == {"isa": 1, "b": 9}
    # A fixed quota is honoured first.
    assert allocate({"isa": 50, "b": 50}, {"isa": True, "b": False}, {"b": 7}, 10, 0.5) == {"b": 7, "isa": 3}


# ---------------------------------------------------------------- stages 2 and 3


def _unit(*xs):
    v = np.array(xs, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_embedding_filter_drops_near_synonyms_and_keeps_most_similar():
    answer = _unit(1, 0, 0)
    cos = {"syn": 0.95, "edge": 0.80, "near": 0.79, "mid": 0.5, "far": 0.1, "farther": 0.0}
    cands = list(cos)
    vecs = np.stack([_unit(c, np.sqrt(1 - c * c), 0) for c in cos.values()])
    kept, dropped, skipped = embedding_filter(answer, vecs, cands, threshold=0.80, keep=3, min_after=2)
    assert [c for c, _ in dropped] == ["syn", "edge"]  # >= threshold is dropped
    assert kept == ["near", "mid", "far"] and not skipped
    kept, _, skipped = embedding_filter(answer, vecs, cands, threshold=0.80, keep=3, min_after=5)
    assert skipped and kept[:2] == ["syn", "edge"] and len(kept) == 6  # too few survivors: no filter


def test_mmr_picks_confusing_but_mutually_different_negatives():
    answer = _unit(1, 0, 0)
    a = _unit(0.9, 0.43, 0)  # closest to the answer
    a_twin = _unit(0.89, 0.45, 0.05)  # almost the same as a
    b = _unit(0.7, 0, 0.71)  # a bit less close, different direction
    far = _unit(0, 1, 0)
    order = mmr_pick(answer, np.stack([a, a_twin, b, far]), k=3, lam=0.5)
    assert order[0] == 0 and order[1] == 2  # the twin is passed over for b
    assert mmr_pick(answer, np.stack([a, a_twin, b, far]), k=2, lam=1.0) == [0, 1]  # pure similarity


def test_parse_picks_and_judge():
    cands = ["拖地", "旅行", "搓泥", "阅读"]
    assert parse_picks("负例：拖地，旅行，不存在\n理由：……", cands) == ["拖地", "旅行"]
    assert parse_picks("Negatives: '旅行', 搓泥, 旅行, 阅读", cands) == ["旅行", "搓泥", "阅读"]
    assert parse_picks("no idea", cands) == []
    opts = ["red", "green", "blue", "black"]
    assert parse_judge("Answerable: yes\nCorrect options: green", opts, "green")["verdict"] == "pass"
    assert parse_judge("Answerable: yes\nCorrect options: green, blue", opts, "green")["verdict"] == "fail"
    assert parse_judge("Answerable: no\nCorrect options: green", opts, "green")["verdict"] == "fail"
    assert parse_judge("可回答：是\n正确选项：green", opts, "green")["verdict"] == "pass"
    assert parse_judge("green", opts, "green")["verdict"] == "unparsed"


# ---------------------------------------------------------------- end to end


class FakeEmbedder:
    """Deterministic vectors: colours near each other, a planted synonym of 'red'."""

    name = "fake"

    def embed(self, texts, *, is_query=False):
        rng = np.random.default_rng(0)
        base = {t: rng.normal(size=8) for t in sorted(set(texts))}
        out = []
        for t in texts:
            v = base["red"] + 0.05 * base[t] if t == "crimson" and "red" in base else base[t]
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


class ScriptedLLM:
    """A TextModel whose replies are computed from the prompt (records what it was asked)."""

    model_id = "scripted"

    def __init__(self, reply):
        self.reply, self.prompts = reply, []

    def generate(self, requests):
        self.prompts += [r.prompt for r in requests]
        return [[self.reply(r.prompt)] for r in requests]


COLOURS = ["red", "crimson", "green", "blue", "black", "white", "pink", "grey", "brown", "olive", "teal", "navy"]


def _kg(tmp_path):
    rows = ["head\trelation\ttail\tlabel\thead_type\ttail_type"]
    for i in range(8):
        rows.append(f"item{i}\tcolour\t{COLOURS[i % 3 * 2]}\ttrue\tthing\tcolour")  # red / green / black
        rows.append(f"item{i}\tkind\t{'tool' if i % 2 else 'toy'}\ttrue\tthing\tclass")
    for j, cls in enumerate(["food", "drink", "plant", "animal", "car", "book", "game", "song", "film", "dish"]):
        rows.append(f"other{j}\tkind\t{cls}\ttrue\tthing\tclass")
    rows += [f"other{j}\tcolour\t{c}\ttrue\tthing\tcolour" for j, c in enumerate(COLOURS)]
    rows.append("item0\tcolour\tolive\tfalse\tthing\tcolour")
    (tmp_path / "kg.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "t.yaml").write_text(
        "language: en\nrelations:\n"
        "  colour: '{head} ({head_type}) has the colour ___ ({tail_type})'\n"
        "  kind: {template: '{head} is a kind of ___', is_a: true}\n"
    )


def test_build_kg_end_to_end_official_format(tmp_path, bench_data):
    _kg(tmp_path)
    out = tmp_path / "out"
    config = KGBuildConfig(
        triples=str(tmp_path / "kg.tsv"), templates=str(tmp_path / "t.yaml"), out=str(out), n_questions=10
    )

    def pick(prompt):  # picks the first three candidates listed, in reverse
        cands = eval(prompt.split("#Candidates#\n")[1])  # the prompt shows a Python list literal
        return "Negatives: " + ", ".join(reversed(cands[:3]))

    picker = ScriptedLLM(pick)

    def check(prompt):  # right about odd items; for the others it also calls a wrong option correct
        proposed = prompt.split("Proposed answer: ")[1].strip()
        options = eval(prompt.split("*选项*：")[1].split("\n")[0])
        extra = "" if any(f"item{i} " in prompt for i in (1, 3, 5, 7)) else ", " + (set(options) - {proposed}).pop()
        return f"Answerable: yes\nCorrect options: {proposed}{extra}"

    judge = ScriptedLLM(check)
    report = build_kg_benchmark(config, picker=picker, judge=judge, embedder=FakeEmbedder())

    stages = [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines()]
    assert report["counts"]["questions"] == len(stages) == 10  # 8 colour + 8 kind pairs available
    assert report["counts"]["is_a_questions"] == round(10 * 0.46)
    for s in stages:
        assert s["answer"] not in s["stage1_recall"]
        assert s["stage3_negatives"] == list(reversed(s["stage2_kept"][:3])) and s["stage3_by"] == "llm"
        assert sorted(s["options"]) == sorted([*s["stage3_negatives"], s["answer"]])
        if s["answer"] == "red":  # the planted synonym is dropped by stage 2
            assert [c for c, _ in s["stage2_dropped"]] == ["crimson"]
            assert "crimson" not in s["options"]
    # The judge passes exactly the questions about odd items.
    verdicts = {s["sentence"]: s["judge"]["verdict"] for s in stages}
    odd = {k for k in verdicts if any(k.startswith(f"item{i} ") for i in (1, 3, 5, 7))}
    assert 0 < len(odd) < len(verdicts)
    assert {k for k, v in verdicts.items() if v == "pass"} == odd
    items = load_benchmark("eckgbench", "main", root=out)  # the existing loader reads the output
    assert len(items) == report["counts"]["benchmark_items"] == sum(v == "pass" for v in verdicts.values())
    for it in items:
        assert it.options[it.gold_index] == it.answers[0]
        assert it.concept == (["dim_2"] if it.metadata["relation"] == "kind" else ["dim_1"])
    queue = read_queue(out / "review_queue.jsonl")
    assert len(queue) == 10 and all(q.checks["judge"]["verdict"] in ("pass", "fail") for q in queue)
    # Options are shuffled by a per-question seed: a rebuild gives the same file.
    first = (out / "eckgbench" / "ECKGBench.jsonl").read_text()
    build_kg_benchmark(config, picker=picker, judge=judge, embedder=FakeEmbedder())
    assert (out / "eckgbench" / "ECKGBench.jsonl").read_text() == first


def test_build_kg_without_llm_uses_mmr_and_keeps_every_item(tmp_path):
    _kg(tmp_path)
    config = KGBuildConfig(
        triples=str(tmp_path / "kg.tsv"), templates=str(tmp_path / "t.yaml"), out=str(tmp_path / "o"), n_questions=6
    )
    report = build_kg_benchmark(config, embedder=FakeEmbedder())
    assert report["counts"]["negatives_by"] == {"mmr": 6}
    assert report["counts"]["benchmark_items"] == 6 and report["counts"]["judge"] == {"not run": 6}


def test_official_stage1_data_rebuilds_the_official_sentences(bench_data):
    import ast

    triples = eckg_official_triples(bench_data)
    templates = eckg_official_templates(triples)
    # Plain files, or gzip-compressed package data once the data layer ships them (eckg_file).
    read = eckg_official_reader(bench_data)[1]
    original = [ast.literal_eval(line) for line in read("question_original.jsonl").split("\n") if line.strip()]
    true = [t for t in triples if t.label]
    assert len(true) == len(original) == 1004
    for t, q in zip(true, original):
        assert templates.instruction + templates.sentence(t) == q["question"].split("\n*选项*：")[0]
        assert t.tail == q["ground_truth"]
    # The shipped zh templates (the notebook's predicate rules) produce every official sentence shape.
    shipped = read_templates("eckgbench-zh")
    shapes = {tuple(r.template.split("）", 1)[1].split("___（{tail_type}）")) for r in shipped.relations.values()}
    official = {tuple(t.relation.split("|")[1:]) for t in true}
    for predicate, suffix in official:  # "的连衣裙适用于": the notebook's "subject 的 item-category" form
        assert any(
            suffix == s and (predicate == p or (predicate.startswith("的") and predicate.endswith(p)))
            for p, s in shapes
        ), (predicate, suffix)
    assert (
        shipped.sentence(Triple("婴儿", "人群对应动作", "学习", head_type="人群", tail_type="动作"))
        == (original[0]["question"].split("*句子*：")[1].split("\n")[0])
    )
    # The official stage-1 pools come back as recall with recall="labelled".
    index = index_kg(triples)
    pool = recall_candidates(true[0].head, true[0].relation, index, "labelled")
    assert "听歌" in pool and true[0].tail not in pool
