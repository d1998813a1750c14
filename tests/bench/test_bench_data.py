"""Loaders on the real files: every record loads, counts match the papers, nothing is lost."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

from longlore.bench.data import (
    CONCEPTMATH_SPLITS,
    benchmark_file,
    eckg_options,
    load_benchmark,
    load_eckg_resources,
    load_file,
    to_official,
)
from longlore.core.errors import LongloreError
from longlore.core.io import read_text

# The papers: ConceptMath (arXiv 2402.14660), ChineseEcomQA (2502.20196), ECKGBench (2503.15990).
CONCEPTMATH_ROWS = {"element_en": 786, "element_zh": 1075, "middle_en": 1042, "middle_zh": 1108}
ECOMQA_COUNTS = {
    "IC": 286,
    "IDC": 111,
    "CC": 194,
    "BC": 170,
    "AC": 200,
    "SC": 200,
    "ITC": 90,
    "RVC": 71,
    "RLC": 305,
    "PC": 173,
}


def _same(items: list, raw: list[dict]) -> bool:
    # Compared as JSON text: six ConceptMath golds are NaN, and NaN != NaN as floats.
    return [json.dumps(to_official(it), sort_keys=True, ensure_ascii=False) for it in items] == [
        json.dumps(r, sort_keys=True, ensure_ascii=False) for r in raw
    ]


def _raw(path: Path, python_literal: bool = False) -> list[dict]:
    lines = [ln for ln in read_text(path).split("\n") if ln.strip()]
    return [ast.literal_eval(ln) if python_literal else json.loads(ln) for ln in lines]


@pytest.mark.parametrize("split", CONCEPTMATH_SPLITS)
def test_conceptmath_loads_losslessly(bench_data: Path, split: str) -> None:
    items = load_benchmark("conceptmath", split, bench_data)
    raw = _raw(benchmark_file(bench_data, "conceptmath", split))
    assert len(items) == CONCEPTMATH_ROWS[split] == len(raw)
    assert _same(items, raw)  # round trip, answer types included
    assert all(len(it.concept) == 3 for it in items)
    assert len({it.id for it in items}) == len(items)
    assert {it.language for it in items} == {split[-2:]}


def test_conceptmath_nan_golds_are_kept(bench_data: Path) -> None:
    # element_en ships six items whose answer is NaN; they load (gold "nan") and stay unscorable.
    nan_items = [it for it in load_benchmark("conceptmath", "element_en", bench_data) if it.answers == ["nan"]]
    assert len(nan_items) == 6


def test_conceptmath_has_214_leaf_concepts(bench_data: Path) -> None:
    leaves = {(s, tuple(it.concept)) for s in CONCEPTMATH_SPLITS for it in load_benchmark("conceptmath", s, bench_data)}
    assert len(leaves) == 214


def test_chineseecomqa_counts_and_round_trip(bench_data: Path) -> None:
    items = load_benchmark("chineseecomqa", "all", bench_data)
    assert len(items) == 1800
    assert Counter(it.concept[0] for it in items) == ECOMQA_COUNTS
    raw = _raw(benchmark_file(bench_data, "chineseecomqa", "all"))
    assert _same(items, raw)
    # The few-shot examples travel in the system prompt.
    assert Counter(it.concept[0] for it in items if not it.system_prompt) == {"RLC": 100}
    assert sum("示例" in (it.system_prompt or "") for it in items) == 1589


@pytest.mark.parametrize(
    "split,total,dims",
    [
        ("main", 816, {"dim_1": 440, "dim_2": 376}),
        ("large", 2703, {"dim_1": 1250, "dim_2": 1453}),
    ],
)
def test_eckgbench_counts_options_and_round_trip(bench_data: Path, split: str, total: int, dims: dict) -> None:
    items = load_benchmark("eckgbench", split, bench_data)
    assert len(items) == total
    assert Counter(it.concept[0] for it in items) == dims
    assert all(len(it.options or []) == 4 for it in items)
    assert all(it.options[it.gold_index] == it.answers[0] for it in items)  # type: ignore[index]
    assert _same(items, _raw(benchmark_file(bench_data, "eckgbench", split)))


def test_eckgbench_original_and_resources(bench_data: Path) -> None:
    items = load_benchmark("eckgbench", "original", bench_data)
    assert len(items) == 1004
    assert _same(items, _raw(benchmark_file(bench_data, "eckgbench", "original"), python_literal=True))
    res = load_eckg_resources(bench_data)
    assert len(res["candidate_pools"]) == len(res["pool_answers"]) == 1004
    labels = Counter(row["category"] for row in res["entities"])
    assert labels == {"neg": 16744, "pos": 946}


def test_eckg_options_text_is_the_literal_in_the_question() -> None:
    text, options = eckg_options("句子：___\n*选项*：['甲', '乙', '丙', '丁']")
    assert text == "['甲', '乙', '丙', '丁']" and options == ["甲", "乙", "丙", "丁"]
    with pytest.raises(LongloreError, match="options"):
        eckg_options("no options here")


def test_wrong_format_names_the_expected_format(bench_data: Path, tmp_path: Path) -> None:
    # An ECKGBench file handed to the ConceptMath loader.
    with pytest.raises(LongloreError, match=r"ECKGBench.jsonl(.gz)?:1: missing field.*ConceptMath JSONL"):
        load_file(benchmark_file(bench_data, "eckgbench", "main"), "conceptmath", "element_en")
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(LongloreError, match=r"data.csv:1: looks like CSV/TSV .*expected ChineseEcomQA JSONL"):
        load_file(csv_file, "chineseecomqa", "all")
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(LongloreError, match=r"expected a JSON object, got list .*expected ECKGBench JSONL"):
        load_file(not_object, "eckgbench", "main")
    bad_gold = tmp_path / "gold.jsonl"
    bad_gold.write_text(
        json.dumps({"id": 1, "question": "*选项*：['a', 'b']", "gt": "c", "dim": "dim_1"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(LongloreError, match=r"gold.jsonl:1: gold answer 'c' is not one of the options"):
        load_file(bad_gold, "eckgbench", "main")


def test_explicit_data_root_that_holds_no_benchmark_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LONGLORE_BENCH_DATA", raising=False)
    with pytest.raises(LongloreError, match=r"nowhere \(from --data\).*omit it to use the data shipped"):
        load_benchmark("conceptmath", "element_en", tmp_path / "nowhere")
    monkeypatch.setenv("LONGLORE_BENCH_DATA", str(tmp_path))
    with pytest.raises(LongloreError, match=r"from \$LONGLORE_BENCH_DATA"):
        load_benchmark("conceptmath", "element_en")
