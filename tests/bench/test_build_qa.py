"""build-qa: parsing, rules, retrieval fact check, difficulty filter, and the official output."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest

from longlore.bench.build.config import QABuildConfig
from longlore.bench.build.qa import build_qa_benchmark, parse_qa, parse_yes_no, read_corpus, rule_checks
from longlore.bench.build.retrieval import RRF_K, HybridRetriever, is_chinese, tokenize
from longlore.bench.data import load_file
from longlore.core.errors import LongloreError

CONFIG = QABuildConfig(corpus="ecom-world")


def test_parse_qa_both_languages():
    assert parse_qa("Question: Which country is Lumo from?\nAnswer: Japan.", "en") == (
        "Which country is Lumo from?",
        "Japan",
    )
    assert parse_qa("问题：鲁莫品牌来自哪个国家？\n答案：日本。\n多余", "zh") == ("鲁莫品牌来自哪个国家？", "日本")
    assert parse_qa("Lumo is from Japan", "en") is None
    assert parse_qa("Question: ?\nAnswer:", "en") is None


@pytest.mark.parametrize(
    ("question", "answer", "language", "failed"),
    [
        ("Which country does Lumo come from?", "Japan", "en", set()),
        ("Which country does Lumo come from?", "a country far away in the east of Asia", "en", {"answer_short"}),
        ("Lumo comes from Japan", "Japan", "en", {"is_question", "answer_not_in_question"}),
        ("What is the latest Lumo phone?", "X2", "en", {"not_time_sensitive"}),
        ("What is the best Lumo phone?", "X2", "en", {"objective"}),
        ("Which colours does Lumo sell?", "black or white", "en", {"single_answer"}),
        ("鲁莫品牌来自哪个国家？", "日本", "zh", set()),
        ("鲁莫目前主打什么功能？", "降噪", "zh", {"not_time_sensitive"}),
        ("鲁莫耳机有哪些颜色？", "黑色、白色", "zh", {"single_answer"}),
        ("鲁莫最好的耳机是哪款？", "X2", "zh", {"objective"}),
        ("鲁莫的耳机来自哪个国家？", "来自遥远东方的一个岛国日本并且历史悠久的国家", "zh", {"answer_short"}),
    ],
)
def test_rules(question, answer, language, failed):
    checks = rule_checks(question, answer, language, CONFIG)
    assert {rule for rule, ok in checks.items() if not ok} == failed


def test_parse_yes_no():
    assert parse_yes_no("Yes, it is objective.") is True
    assert parse_yes_no("no") is False
    assert parse_yes_no("是。") is True and parse_yes_no("不是") is False and parse_yes_no("否") is False
    assert parse_yes_no("maybe") is None


def test_tokenize_and_language():
    assert tokenize("Lumo's 20000mAh Power-bank") == ["lumo's", "20000mah", "power", "bank"]
    assert tokenize("耳机ok") == ["ok", "耳", "机", "耳机"]
    assert is_chinese("鲁莫无线降噪耳机") and not is_chinese("Lumo wireless headphones")


class OneHotEmbedder:
    """Each text -> a fixed vector chosen by the test (for known dense rankings)."""

    name = "onehot"

    def __init__(self, table):
        self.table = table

    def embed(self, texts, *, is_query=False):
        return np.stack([np.asarray(self.table[t], dtype=float) for t in texts])


def test_hybrid_retrieval_fuses_bm25_and_dense_ranks():
    docs = ["red apple pie", "green apple", "blue car"]
    table = {"red apple pie": [0, 0, 1], "green apple": [0, 1, 0], "blue car": [1, 0, 0], "apple red": [0.9, 0, 0.1]}
    hits = HybridRetriever(docs, OneHotEmbedder(table)).search("apple red", k=3)
    # BM25: doc0 (both words) > doc1 (apple); doc2 has no term. Dense: doc2 (0.9) > doc0 (0.1) > doc1.
    # RRF: doc0 1/61 + 1/62 > doc1 1/62 + 1/63 > doc2 1/61 (one list only).
    assert [(h["index"], h["bm25_rank"], h["dense_rank"]) for h in hits] == [(0, 1, 2), (1, 2, 3), (2, None, 1)]
    assert hits[0]["score"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2), abs=1e-6)
    assert hits[2]["score"] == pytest.approx(1 / (RRF_K + 1), abs=1e-6)


def test_read_corpus_files_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("First passage.\n\nSecond one.\n\n\n第三段是中文。\n")
    got = read_corpus(str(tmp_path / "a.txt"))
    assert [(p["id"], p["language"]) for p in got] == [("a-1", "en"), ("a-2", "en"), ("a-3", "zh")]
    (tmp_path / "b.jsonl").write_text('{"id": "x", "text": "hello"}\n{"text": ""}\n')
    with pytest.raises(LongloreError, match=r"b.jsonl:2: missing or empty field 'text'"):
        read_corpus(str(tmp_path / "b.jsonl"))
    world = read_corpus("ecom-world")
    from longlore.core.text import EcomWorld

    assert {p["language"] for p in world} == {"en", "zh"} and len(world) == 2 * len(EcomWorld.generate(0).products)


class Scripted:
    model_id = "scripted"

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def generate(self, requests):
        self.calls += len(requests)
        return [[self.fn(r)] for r in requests]


class HashEmbedder:
    name = "hash"

    def embed(self, texts, *, is_query=False):
        rows = []
        for t in texts:
            v = np.zeros(4096)
            for tok in tokenize(t):
                v[zlib.crc32(tok.encode()) % 4096] += 1
            rows.append(v / max(np.linalg.norm(v), 1e-9))
        return np.stack(rows)


def _write(passage_text: str) -> str:
    """A generator that behaves differently by the product's price digit (a fixed per-passage mix)."""
    brand, country = re.search(r"from (\w+), a brand from ([\w ]+?)\.", passage_text).groups()
    digit = int(re.search(r"costs (\d+)", passage_text).group(1)) % 5
    if digit == 0:
        return "I cannot write a question."  # unparsed
    if digit == 1:
        return f"Question: What is the latest product of {brand}?\nAnswer: {country}"  # time-sensitive
    if digit == 2:
        return f"Question: Which country does the brand {brand} come from?\nAnswer: Atlantis"  # unsupported
    return f"Question: Which country does the brand {brand} come from?\nAnswer: {country}"


def test_build_qa_end_to_end(tmp_path, bench_data):
    def generator(request):
        return _write(request.prompt[-1]["content"].split("Passage: ")[1])

    validator = Scripted(lambda r: "no" if "Japan" in r.prompt else "yes")
    # The panel knows the answer when the brand's name starts with a vowel.
    panel_member = Scripted(
        lambda r: (re.search(r"brand (\w+) come", r.prompt).group(1)[0] in "AEIOU" and "Japan") or "unknown"
    )
    config = QABuildConfig(corpus="ecom-world:en", out=str(tmp_path), concepts="BC", max_passages=30, n_examples=2)
    report = build_qa_benchmark(
        config, generator=Scripted(generator), validator=validator, panel=[panel_member], embedder=HashEmbedder()
    )
    stages = [json.loads(line) for line in (tmp_path / "stages.jsonl").read_text().splitlines()]
    world = {p["id"]: p["text"] for p in read_corpus("ecom-world:en")}
    expect = {"generated": 0, "rule_valid": 0, "llm_valid": 0, "fact_checked": 0}
    seen = set()
    for s in stages:
        digit = int(re.search(r"costs (\d+)", world[s["passage"]]).group(1)) % 5
        duplicate = s["question"] in seen  # the same brand asked about twice
        seen.add(s["question"])
        expect["generated"] += digit != 0
        expect["rule_valid"] += digit not in (0, 1) and not duplicate
        ok = digit not in (0, 1) and not duplicate and "Japan" not in s["question"] + s["answer"]
        expect["llm_valid"] += ok
        expect["fact_checked"] += ok and digit != 2
    counts = report["stage_counts"]
    assert {k: counts[k] for k in expect} == expect and expect["fact_checked"] > 2
    assert counts["requests"] == 30 and report["rule_failures"].get("not_time_sensitive", 0) > 0
    assert report["rule_failures"].get("unique_question", 0) > 0
    kept = [s for s in stages if s["stage"] == "kept"]
    easy = [s for s in stages if s["stage"] == "too_easy"]
    assert len(kept) == counts["difficulty_kept"] == counts["fact_checked"] - len(easy)
    for s in easy:  # dropped only when the panel answered right
        assert s["panel"][0]["letter"] == "A"
    # The existing loader reads the output.
    items = [it for it, _ in load_file(tmp_path / "chineseecomqa" / "ChineseEcomQA.jsonl", "chineseecomqa", "all")]
    assert len(items) == len(kept)
    for it, s in zip(items, kept):
        assert it.answers == [s["answer"]] and it.concept == ["BC"]
        assert s["answer"] in it.metadata["evidence"]
        assert it.system_prompt.count("***query***") == min(2, counts["fact_checked"] - 1)
        assert s["question"] not in it.system_prompt  # an item is never its own example
