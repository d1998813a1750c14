"""ConceptMath scoring, rule for rule as the official ``evaluation/utils/match_utils.py``.

Pipeline for one response (``mode="official"``, the default):

1. Answer prefix: for each prefix in :data:`ANSWER_PREFIXES`, in order, split the response on it;
   exactly one occurrence -> keep the text after it and stop; several -> keep the text after the
   last one and *go on* with the next prefixes; none -> next prefix.
2. Number words ``one``..``ninety``, ``first``..``third``, ``one hundred`` -> digits (lower case,
   whole words). The official pattern lacks a ``|`` between ``fourth`` and ``eleven``, so neither
   word is replaced on its own (a quirk kept in the official mode).
3. Thousands commas between digits are dropped; then every number is extracted: integers,
   decimals, fractions ``a/b``, mixed fractions ``a b/c``, percentages, multiples of pi, and
   ``$...$`` LaTeX spans (see :data:`NUMBER_RE`).
4. Every candidate and every gold value (``[a, b]`` / ``a，b`` lists) is simplified: mixed
   fraction -> improper, spaces and ``$`` dropped, ``n%`` -> n/100, pi -> 3.14, then sympy's
   LaTeX parser; what cannot be parsed stays a string and never matches.
5. Tolerance (gold ``a``, candidate ``b``): ``|a-b| <= |a|/20`` if ``a < 20`` else ``<= 1``; for
   the concept named ``"Estimation and rounding"`` ``<= |a|/5``. The item is correct iff every
   gold value is close to some candidate.

Quirk kept in the official mode: ``main.py`` passes the *full* concept path
(``cate0/cate1/cate2``) as the concept name, so the 20% estimation rule never fires there.
``mode="strict"`` applies it on the leaf concept and fixes the number-word pattern; nothing else
differs. Verdicts of both modes are cached per (gold, response, concept) string.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

import sympy as sp

from longlore.core.errors import LongloreError

Mode = Literal["official", "strict"]

ANSWER_PREFIXES = (
    "答案是",
    "答案：",
    "answer (arabic numbers) is",
    "(arabic numerals) is",
    "answer is:",
    "answer is :",
    "answer is",
    "Therefore, the answer (arab",
    "Answer: ",
    "结果是",
    "结果为",
    "答案为",
    "答案是",
    "得出答案",
    "所以",
    "因此",
)

ESTIMATION_CONCEPT = "Estimation and rounding"

NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "one hundred": 100,
}
_WORDS_HEAD = "one hundred|zero|one|two|three|four|five|six|seven|eight|nine|ten|first|second|third|"
_WORDS_TAIL = (
    "eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|"
    "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
)
# Official: "fourth" and "eleven" fused into the one alternative "fourtheleven".
_WORDS_OFFICIAL = re.compile(rf"\b({_WORDS_HEAD}fourth{_WORDS_TAIL})\b")
_WORDS_STRICT = re.compile(rf"\b({_WORDS_HEAD}fourth|{_WORDS_TAIL})\b")

# A signed number (fraction | mixed fraction | integer/decimal), optionally times pi, optionally a
# percentage; or a $...$ span free of "$ | ( ) x y z".
NUMBER_RE = re.compile(
    r"[-+]?((\d+(\.\d+)?\/\d+(\.\d+)?|\d+\s+\d+\/\d+|\d+(\.\d+)?)"
    r"((\*)?(π|\\pi|\\\\pi|pi))?%?|\$[^(\$|x|y|z)]*\$)"
)
_MIXED_RE = re.compile(r"(\d+)\s+(\d+)/(\d+)")
_PERCENT_RE = re.compile(r"(\d+(\.\d+)?)%")
_PI_RE = re.compile(r"(π|\\pi|\\\\pi|pi)")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d)")


def _require_latex_parser() -> None:
    # Without the ANTLR runtime sympy's parse_latex raises ImportError, which the official
    # try/except would silently turn into "every item wrong"; fail loudly instead.
    try:
        import antlr4  # noqa: F401
    except ImportError:
        raise LongloreError(
            "ConceptMath scoring needs sympy's LaTeX parser: pip install 'antlr4-python3-runtime==4.11.*'"
        ) from None


def cut_after_prefix(response: str) -> str:
    """Step 1: the text after the answer prefix(es), stripped."""
    for prefix in ANSWER_PREFIXES:
        parts = response.split(prefix)
        if len(parts) == 2:
            response = parts[-1]
            break
        if len(parts) > 2:
            response = parts[-1]
    return response.strip()


def replace_number_words(text: str, mode: Mode = "official") -> str:
    """Step 2: English number words -> digits (an unknown fused word becomes 'None')."""
    pattern = _WORDS_OFFICIAL if mode == "official" else _WORDS_STRICT
    return pattern.sub(lambda m: str(NUMBER_WORDS.get(m.group(0))), text)


def extract_numbers(text: str) -> list[str]:
    """Step 3: every number-like span (after dropping thousands commas)."""
    text = _THOUSANDS_RE.sub("", text)
    found = []
    for match in NUMBER_RE.finditer(text):
        item = match.group()
        if "=" in item:  # only possible inside a $...$ span: keep the right-hand side
            item = item.split("=")[-1]
        found.append(item)
    return found


def _mixed_to_improper(match: re.Match[str]) -> str:
    whole, num, den = int(match.group(1)), int(match.group(2)), int(match.group(3))
    return f"{whole * den + num}/{den}"


def _pi_to_number(expr: str) -> str:
    def repl(match: re.Match[str]) -> str:
        before = expr[match.start() - 1] if match.start() > 0 else ""
        return "*3.14" if before.isdigit() else "3.14"

    return _PI_RE.sub(repl, expr)


@lru_cache(maxsize=65536)
def simplify_value(expr: str) -> Any:
    """Step 4: a sympy value for ``expr``, or the normalised string when it does not parse."""
    from sympy.parsing.latex import parse_latex

    expr = _MIXED_RE.sub(_mixed_to_improper, expr)
    expr = expr.replace("$", "").replace(" ", "").replace("\t", "")
    expr = expr.replace("−", "-").replace("﹣", "-")
    expr = _PERCENT_RE.sub(lambda m: str(float(m.group(1)) / 100), expr)
    expr = _pi_to_number(expr)
    try:
        return sp.simplify(parse_latex(expr))
    except Exception:
        return expr


def is_close(gold: Any, pred: Any, concept_name: str | None) -> bool:
    """Step 5: the official tolerance; anything that cannot be compared is not close."""
    try:
        delta = abs(gold / 20) if gold < 20 else 1
        if concept_name == ESTIMATION_CONCEPT:
            delta = abs(gold / 5)
        return bool(abs(gold - pred) <= delta)
    except Exception:
        return False


def gold_values(answer: str) -> list[str]:
    """Gold answer string -> its comma-separated values (brackets and '_' dropped)."""
    answer = answer.replace("[", "").replace("]", "").replace("，", ",").replace("_", "")
    return answer.split(",")


@lru_cache(maxsize=65536)
def _verdict(answer: str, response: str, concept_name: str | None, mode: Mode) -> tuple[bool, tuple[str, ...]]:
    text = replace_number_words(cut_after_prefix(response), mode)
    candidates = extract_numbers(text)
    if not candidates:
        return False, ()
    preds = [simplify_value(c) for c in candidates]
    golds = [simplify_value(g) for g in gold_values(answer)]
    ok = all(any(is_close(g, p, concept_name) for p in preds) for g in golds)
    return ok, tuple(candidates)


def score_response(answer: str, response: str, concept: list[str] | str, mode: Mode = "official") -> dict[str, Any]:
    """Score one response: ``{"correct": bool, "extracted": [...], "answer_span": str}``.

    Args:
        answer: the gold answer exactly as ``str(record["answer"])``.
        response: the model's full response.
        concept: the item's concept path ``[cate0, cate1, cate2]`` (or an already joined name).
        mode: ``"official"`` (verdict for verdict with main.py) or ``"strict"`` (see module doc).
    """
    if mode not in ("official", "strict"):
        raise LongloreError(f"unknown ConceptMath scoring mode {mode!r}; choose official or strict")
    _require_latex_parser()
    path = concept if isinstance(concept, list) else [concept]
    name = "/".join(path) if mode == "official" else path[-1]
    ok, candidates = _verdict(answer, response, name, mode)
    return {"correct": ok, "extracted": list(candidates), "answer_span": cut_after_prefix(response)}
