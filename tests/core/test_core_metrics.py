import pytest

from longlore.core.metrics import bootstrap_ci, exact_match, normalize_answer, rouge, substring_match, token_f1


def test_normalisation_and_em() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match("the eiffel tower.", ["Eiffel Tower", "x"]) == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_substring_match() -> None:
    assert substring_match("I think it is Paris, France.", ["paris"]) == 1.0
    assert substring_match("Lyon", ["Paris", "Marseille"]) == 0.0
    assert substring_match("anything", [""]) == 0.0  # an empty gold never matches


def test_token_f1_known_value() -> None:
    # pred tokens {big, red, fox}, gold {red, fox, jumps, high}: overlap 2, P=2/3, R=1/2 -> F1=4/7
    assert token_f1("the big red fox", "red fox jumps high") == pytest.approx(4 / 7)
    assert token_f1("x", ["red fox", "x"]) == 1.0


def test_token_f1_chinese_per_character() -> None:
    # pred 北京市 (3 chars), gold 北京 (2): overlap 2 -> P=2/3, R=1 -> F1=0.8
    assert token_f1("北京市", "北京") == pytest.approx(0.8)
    assert token_f1("答案是iPhone15", "iphone15") == pytest.approx(2 * (1 / 4) * 1 / (1 / 4 + 1))


def test_rouge_known_values_and_cjk() -> None:
    scores = rouge("the cat sat", "the cat sat on the mat")
    # articles are dropped: pred {cat, sat}, ref {cat, sat, on, mat} -> P=1, R=1/2, F=2/3
    assert scores["rouge1"] == pytest.approx(2 / 3)
    assert rouge("猫坐在垫子上", "猫坐在垫子上")["rougeL"] == pytest.approx(1.0)
    assert rouge("狗", "猫")["rouge1"] == 0.0


def test_bootstrap_ci() -> None:
    values = [1.0] * 30 + [0.0] * 70
    mean, low, high = bootstrap_ci(values, seed=1)
    assert mean == pytest.approx(0.3)
    assert low < 0.3 < high and low > 0.15 and high < 0.45
    assert bootstrap_ci(values, seed=1) == (mean, low, high)  # seeded
    assert bootstrap_ci([0.5] * 5)[1:] == (0.5, 0.5)
