"""ECKGBench scoring (Liu et al. 2025, arXiv 2503.15990), as the official ``eval.ipynb`` does it.

Generation mode: system prompt "直接输出答案。", the official 2-shot user turn, greedy, 8 new
tokens, repetition penalty 1.1. The response is cut at its first blank line; it is correct iff it
contains the gold option text AND does not contain the options list literal (the text after
"*选项*：" in the question: a model that echoes the options would otherwise always "contain" the
answer). ``strict=True`` additionally rejects a response that names any other option that is not
part of the gold text (documented beside the official rule, off by default).

Log-likelihood mode (this project's addition): the option with the highest summed log-probability
after the chat-formatted prompt wins (``acc``); ``acc_norm`` divides by the option's length in
characters (lm-eval's convention).

Knowledge boundary: the raw question (no chat template, no system prompt), k = 5 samples at
temperature 0.2, each whole response judged by the same rule (no blank-line cut); hit-rate =
correct/k; any-correct, all-correct; buckets highly-known (all k right), maybe-known (some),
unknown (none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from longlore.bench.data import eckg_options

BUCKETS = ("highly_known", "maybe_known", "unknown")


def cut_at_blank_line(response: str) -> str:
    """The response up to its first blank line (the official evaluation looks no further)."""
    return response.split("\n\n", 1)[0]


def score_generation(question: str, gold: str, response: str, strict: bool = False, cut: bool = True) -> dict[str, Any]:
    """``{"correct", "echo", "answer_span"}`` for one response under the substring-and-no-echo rule
    (``cut``: look only before the first blank line, as the official generation evaluation does)."""
    options_text, options = eckg_options(question)
    text = cut_at_blank_line(response) if cut else response
    echo = options_text in text
    correct = gold in text and not echo
    if strict and correct:
        others = [o for o in options if o != gold and o not in gold]
        correct = not any(o in text for o in others)
    return {"correct": bool(correct), "echo": echo, "answer_span": text}


def pick_option(logprobs: Sequence[float], options: Sequence[str]) -> tuple[int, int]:
    """Indices of the best option by raw and by length-normalised log-likelihood."""
    raw = max(range(len(options)), key=lambda i: logprobs[i])
    norm = max(range(len(options)), key=lambda i: logprobs[i] / max(len(options[i]), 1))
    return raw, norm


def boundary_bucket(verdicts: Sequence[bool]) -> str:
    """Knowledge-boundary bucket of one question from its k sampled verdicts."""
    hits = sum(verdicts)
    if hits == len(verdicts):
        return "highly_known"
    return "maybe_known" if hits else "unknown"


def boundary_summary(per_item: Sequence[Sequence[bool]]) -> dict[str, float]:
    """Mean hit-rate, any-correct and all-correct rates, and the share of each bucket."""
    n = len(per_item)
    if n == 0:
        return {}
    summary = {
        "hit_rate": sum(sum(v) / len(v) for v in per_item) / n,
        "any_correct": sum(any(v) for v in per_item) / n,
        "all_correct": sum(all(v) for v in per_item) / n,
    }
    for bucket in BUCKETS:
        summary[bucket] = sum(boundary_bucket(v) == bucket for v in per_item) / n
    return summary
