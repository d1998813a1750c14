"""ConceptMath scorer: hand-checked verdicts for every rule of the official match_utils.py.

Each expected verdict was worked out by hand from the official rules (module docstring of
longlore.bench.conceptmath); the last cases are responses from the authors' own Llama-3-70B
inference files with the verdict their evaluator recorded.
"""

from __future__ import annotations

import pytest

from longlore.bench.conceptmath import cut_after_prefix, extract_numbers, replace_number_words, score_response

LEAF = ["c0", "c1", "leaf"]


def ok(answer: str, response: str, concept: list[str] | str = LEAF, mode: str = "official") -> bool:
    return score_response(answer, response, concept, mode=mode)["correct"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "answer,response,expected",
    [
        # fractions and their decimal forms
        ("1/2", "The answer is 1/2.", True),
        ("1/2", "The answer is 0.5", True),
        ("1/3", "The answer is 0.34", True),  # |1/3-0.34| <= (1/3)/20
        ("1/3", "The answer is 0.36", False),
        # mixed fractions become improper fractions
        ("11/4", "The answer is 2 3/4.", True),
        ("2.75", "It takes 2 3/4 hours.", True),
        ("2.5", "It takes 2 3/4 hours.", False),
        # percentages are divided by 100: a gold written as a percent number does not match "25%"
        ("0.25", "The answer is 25%.", True),
        ("25", "The answer is 25%.", False),
        # LaTeX spans go through sympy
        ("1/2", "The answer is $\\frac{1}{2}$", True),
        ("2\\sqrt{5}", "so PA = $2\\sqrt{5}$", True),
        ("2\\sqrt{5}", "PA is about 4.47", True),
        ("5", "we get $a=5$", True),  # '=' inside a span: right-hand side kept
        # pi is 3.14
        ("6.28", "The circumference is 2π", True),
        ("31.4", "The area is 10π square units", True),
        # thousands separators
        ("17710", "The final answer is 17,710.", True),
        # no number at all
        ("3", "I do not know.", False),
        # a float gold as str(float)
        ("3.0", "The answer is 3", True),
        # an unparseable gold (the six NaN answers of element_en) never matches
        ("nan", "The answer is nan", False),
    ],
)
def test_number_forms(answer: str, response: str, expected: bool) -> None:
    assert ok(answer, response) is expected


@pytest.mark.parametrize(
    "answer,response,expected",
    [
        ("10", "The answer is 10.5", True),  # gold < 20: |a-b| <= a/20 = 0.5
        ("10", "The answer is 10.6", False),
        ("19", "The answer is 19.95", True),
        ("19", "The answer is 20", False),  # 1 > 19/20
        ("100", "The answer is 101", True),  # gold >= 20: |a-b| <= 1
        ("100", "The answer is 101.5", False),
        ("0", "The answer is 0.001", False),  # gold 0: exact
        ("-100", "The answer is -104", True),  # negative golds are < 20: always |a|/20 (= 5)
        ("-100", "The answer is -106", False),
    ],
)
def test_tolerance_edges(answer: str, response: str, expected: bool) -> None:
    assert ok(answer, response) is expected


def test_multi_answer_needs_every_gold_value() -> None:
    assert ok("[1, 5, 25]", "The factors of 25 are 1, 5, 25.")
    assert ok("1，5，25", "factors: 25, 5 and 1")  # Chinese commas, any order
    assert not ok("[1, 5, 25]", "The factors are 1 and 5.")
    assert ok("[3, 8, 7]", "Final Answer: The final answer is 3, 8, and 7.")


def test_estimation_rule_fires_on_the_concept_name_only() -> None:
    estimation = ["Calculate", "Estimation", "Estimation and rounding"]
    # 20% tolerance when the concept name is exactly "Estimation and rounding" ...
    assert ok("100", "The answer is 115", concept="Estimation and rounding")
    assert not ok("100", "The answer is 125", concept="Estimation and rounding")
    # ... but the official main.py passes the full path, so there it never fires (kept) ...
    assert not ok("100", "The answer is 115", concept=estimation)
    # ... and the strict mode applies it on the leaf concept.
    assert ok("100", "The answer is 115", concept=estimation, mode="strict")
    assert not ok("100", "The answer is 115", concept=LEAF, mode="strict")


def test_answer_prefixes_english_and_chinese() -> None:
    # The text after the prefix is all that is searched: 7 appears only before it.
    assert not ok("7", "3+4=7，因此答案是8")
    assert ok("8", "3+4=7，因此答案是8")
    assert ok("8", "我们先算出总数，所以8个")
    assert ok("2.4", "平均速度=2d/(5d/6)=2.4千米/小时。\n因此，答案是2.4千米/小时。")
    assert cut_after_prefix("结果为 12 个") == "12 个"
    # Several occurrences of one prefix: keep the text after the last and go on with the others.
    assert cut_after_prefix("answer is 4 answer is 6 所以 9") == "9"
    assert ok("5", "the answer is 3. Wait, the answer is 5")
    assert not ok("3", "the answer is 3. Wait, the answer is 5")
    # Prefixes are tried in order and the first single hit stops the search.
    assert cut_after_prefix("答案是12，所以结果是3") == "12，所以结果是3"


def test_number_words_and_the_official_fourth_eleven_quirk() -> None:
    assert ok("3", "There are three apples.")
    assert ok("100", "one hundred")
    assert not ok("3", "Three apples.")  # lower case only
    assert replace_number_words("twenty one") == "20 1"
    # The official pattern fuses "fourth" and "eleven"; neither is replaced on its own ...
    assert replace_number_words("the fourth and eleven") == "the fourth and eleven"
    assert not ok("4", "It is the fourth one.")
    assert not ok("11", "eleven")
    # ... the strict mode fixes the pattern.
    assert ok("4", "It is the fourth one.", mode="strict")
    assert ok("11", "eleven", mode="strict")


def test_extraction_regex_details() -> None:
    assert extract_numbers("-3 and +6.02 and 5 3/4 and 2*pi and 12%") == ["-3", "+6.02", "5 3/4", "2*pi", "12%"]
    # A $...$ span holding x, y or z is not a LaTeX number: its digits are read one by one.
    assert extract_numbers("$3x+1$") == ["3", "+1"]


@pytest.mark.parametrize(
    "answer,response,expected",
    [
        # From the authors' Llama-3-70B-Instruct element_en inference file (recorded verdict).
        (
            "17710",
            "We have that $1,265 \\times 14 = \\boxed{17,710}.$\nFinal Answer: The final answer is 17,710.",
            True,
        ),
        ("28000000", "The answer to 7,000 times 4,000 is 28,000,000.", True),
        ("[1, 5, 25]", "The factors of 25 are: 1, 5, 25.", True),
        (
            "149.6",
            "Divide by 5 to get 748 / 5 = 149.6.\nFinal Answer: The final answer is 149.6. I hope it is correct.",
            True,
        ),
        # any extracted number may match
        ("12", "11, 11, 11, 12, 15, 20, 30\n\nSince there are 7 numbers, the median is:\n\n15", True),
        # LaTeX after the prefix but outside $...$: only the digits 1 and 8 are read.
        (
            "1/8",
            "The length of the minor arc is $\\frac{45}{360}\\cdot2\\pi r=\\frac{1}{8}\\cdot2\\pi r$.\n"
            "Final Answer: The final answer is \\frac{1}{8}. I hope it is correct.",
            False,
        ),
        (
            "6",
            "So there will be 6 x 5 = 30 lines. But each line is counted twice. So there will be 30 / 2 = 15 "
            "lines. The answer is 15.",
            False,
        ),
        (
            "3",
            'So, the answer is "none" - you wouldn\'t need to combine any cake slices to make an obtuse angle!',
            False,
        ),
    ],
)
def test_agrees_with_recorded_official_verdicts(answer: str, response: str, expected: bool) -> None:
    assert ok(answer, response) is expected


def test_a_recorded_verdict_the_published_rules_do_not_give() -> None:
    # The authors' files flag this response (gold 4.3) iscorrect: true, yet list it in their
    # *_wrong.json; no number in it lies within 4.3/20 = 0.215 of 4.3 (4.05 is 0.25 away), so the
    # published match_utils.py says False, as the file it was sorted into does. See docs/bench.md.
    response = (
        "8 + 6 + 3 + 3 + 1 + 7 + 8 + 4 + 1 + 1 + 5 + 2 + 5 + 2 + 8 + 1 + 3 + 5 + 6 + 7 = 81\n\n"
        "There are 20 rolls, so we divide the sum by 20:\n\n81 ÷ 20 = 4.05\n\nSo, the mean score is 4.05."
    )
    assert not ok("4.3", response)


def test_bad_mode_is_rejected() -> None:
    from longlore.core.errors import LongloreError

    with pytest.raises(LongloreError, match="official or strict"):
        score_response("1", "1", LEAF, mode="loose")  # type: ignore[arg-type]
