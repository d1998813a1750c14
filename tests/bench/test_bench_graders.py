"""ECKGBench and ChineseEcomQA graders: the echo rule, boundary buckets, judge parsing, ECE."""

from __future__ import annotations

from pathlib import Path

import pytest

from longlore.bench import eckg, ecomqa
from longlore.bench.data import load_benchmark
from longlore.bench.scoring import concept_tree

Q = (
    "选择*选项*中相对来说最合适的一个填入空格处来补全以下*句子*。\n*句子*：BB霜（品类）可以或者应该___（功能）\n"
    "*选项*：['调色', '润色', '隐形', '卸妆']"
)


@pytest.mark.parametrize(
    "response,correct,echo",
    [
        ("润色", True, False),
        ("答案：润色。", True, False),
        ("调色", False, False),
        # Echoing the whole options list contains the answer but is rejected.
        ("['调色', '润色', '隐形', '卸妆']", False, True),
        ("选项是['调色', '润色', '隐形', '卸妆']，选润色", False, True),
        # Only the text before the first blank line counts.
        ("隐形\n\n润色", False, False),
        ("润色\n\n['调色', '润色', '隐形', '卸妆']", True, False),
    ],
)
def test_eckg_substring_and_no_echo_rule(response: str, correct: bool, echo: bool) -> None:
    out = eckg.score_generation(Q, "润色", response)
    assert (out["correct"], out["echo"]) == (correct, echo)


def test_eckg_strict_mode_rejects_listing_several_options() -> None:
    listing = "调色、润色、隐形、卸妆"  # all options, but not as the list literal
    assert eckg.score_generation(Q, "润色", listing)["correct"]  # official rule accepts it
    assert not eckg.score_generation(Q, "润色", listing, strict=True)["correct"]
    assert eckg.score_generation(Q, "润色", "润色", strict=True)["correct"]


def test_eckg_echo_rule_on_real_items(bench_data: Path) -> None:
    for item in load_benchmark("eckgbench", "main", bench_data)[:50]:
        options_text = item.question.rsplit("*选项*：", 1)[1]
        assert eckg.score_generation(item.question, item.answers[0], item.answers[0])["correct"]
        assert not eckg.score_generation(item.question, item.answers[0], options_text)["correct"]


def test_pick_option_raw_and_length_normalised() -> None:
    assert eckg.pick_option([-4.0, -6.0], ["ab", "abcdef"]) == (0, 1)


def test_knowledge_boundary_buckets() -> None:
    verdicts = [[True] * 5, [True, False, False, False, False], [False] * 5, [True] * 4 + [False]]
    assert [eckg.boundary_bucket(v) for v in verdicts] == ["highly_known", "maybe_known", "unknown", "maybe_known"]
    s = eckg.boundary_summary(verdicts)
    assert s["hit_rate"] == pytest.approx((1 + 0.2 + 0 + 0.8) / 4)
    assert (s["any_correct"], s["all_correct"]) == (0.75, 0.25)
    assert (s["highly_known"], s["maybe_known"], s["unknown"]) == (0.25, 0.5, 0.25)


@pytest.mark.parametrize(
    "reply,letter,parsed",
    [
        ("A", "A", True),
        (" B\n", "B", True),
        ("C", "C", True),
        ("答案：A", "A", True),
        ("【错误】", "B", True),
        ("评定为：未尝试", "C", True),
        ("Correct", "C", False),  # no standalone letter: unparsed -> not attempted
        ("", "C", False),
        ("???", "C", False),
    ],
)
def test_robust_judge_reply_parsing(reply: str, letter: str, parsed: bool) -> None:
    assert ecomqa.parse_judge_reply(reply, "robust") == (letter, parsed)


def test_official_judge_parser_is_the_default_with_its_quirk() -> None:
    # Upstream takes the first A|B|C anywhere: the "C" of "Correct" reads as not attempted ...
    assert ecomqa.parse_judge_reply("Correct: A") == ("C", True)
    assert ecomqa.parse_judge_reply("【错误】") == ("C", False)  # no letter: the default C, unparsed
    assert ecomqa.parse_judge_reply("xBy") == ("B", True)
    # ... where the robust parser finds the standalone letter.
    assert ecomqa.parse_judge_reply("Correct: A", "robust") == ("A", True)


def test_paraphrase_judge_prompt_carries_question_gold_and_answer() -> None:
    prompt = ecomqa.judge_prompt("苹果的主营类目？", "手机", "电脑", template="paraphrase")
    assert "问题：苹果的主营类目？" in prompt and "标准答案：手机" in prompt and "模型回答：电脑" in prompt
    assert ecomqa.judge_system("paraphrase") is None


@pytest.mark.parametrize(
    "gold,response,question,letter",
    [
        ("毛针织衫", "毛针织衫", "", "A"),
        ("毛针织衫", "答案：毛针织衫。", "", "A"),
        ("毛针织衫", "**毛针织衫**\n\n这是一种针织衫。", "", "A"),
        ("CD播放机", "cd播放机", "", "A"),
        ("美国", "它的发源地是美国。", "纽崔莱的品牌发源地是哪个国家？", "A"),
        ("毛针织衫", "衬衫", "", "B"),
        ("毛针织衫", "衬衫\n毛针织衫", "", "B"),  # only the first line is the answer
        # Echoing the question: the gold "是" / "5g" is in the question, so containment does not count.
        ("是", "商品Midea/美的 MY-C5930F是高压锅吗？", "商品Midea/美的 MY-C5930F是高压锅吗？***答案***：", "B"),
        ("5g", "5g隨身wifi", "***query***：5g隨身wifi ***属性***：规格", "B"),
        ("5g", "5g", "***query***：5g隨身wifi ***属性***：规格", "A"),
        ("毛针织衫", "", "", "C"),
        ("毛针织衫", "我不知道", "", "C"),
    ],
)
def test_fallback_grade(gold: str, response: str, question: str, letter: str) -> None:
    assert ecomqa.fallback_grade(gold, response, question) == letter


@pytest.mark.parametrize(
    "reply,answer,conf",
    [
        ('{"answer": "美国", "confidence_score": 80}', "美国", 0.8),
        ('好的：\n{"answer": "1998年", "confidence_score": 35}\n', "1998年", 0.35),
        ('"answer": "手机", "confidence_score": 90 (truncated', "手机", 0.9),
        ('{"answer": "手机", "confidence_score": 250}', "手机", None),  # out of range
        ("美国", "美国", None),
    ],
)
def test_parse_confidence(reply: str, answer: str, conf: float | None) -> None:
    got_answer, got_conf = ecomqa.parse_confidence(reply)
    assert got_answer == answer
    assert got_conf == (pytest.approx(conf) if conf is not None else None)


def test_ece_known_value_and_perfect_calibration() -> None:
    # Bin 0.9: accuracy 0.5 vs confidence 0.9; bin 0.1: 0 vs 0.1; each half the items.
    cal = ecomqa.calibration([0.9, 0.9, 0.1, 0.1], [True, False, False, False])
    assert cal["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert [b["n"] for b in cal["bins"]] == [2, 2]
    assert ecomqa.calibration([1.0, 1.0, 0.0], [True, True, False])["ece"] == pytest.approx(0.0)
    assert ecomqa.calibration([], [])["ece"] is None  # stays valid JSON


def test_concept_tree_levels_weakest_first() -> None:
    samples = [
        {"concept": ["a", "x"], "correct": 1.0},
        {"concept": ["a", "y"], "correct": 0.0},
        {"concept": ["b", "z/w"], "correct": 1.0},
    ]
    tree = concept_tree(samples)
    assert list(tree) == ["L0", "L0/L1"]
    assert [(r["concept"], r["acc"]) for r in tree["L0"]] == [("a", 0.5), ("b", 1.0)]
    assert tree["L0/L1"][0]["path"] == ["a", "y"]
    assert tree["L0/L1"][-1]["path"] == ["b", "z/w"]  # a '/' inside a name stays one level
