"""ECKGBench scoring (arXiv 2503.15990; METHODS.md §6).

Generation mode: system prompt "直接输出答案。", greedy, 8 new tokens. The response is cut at
its first blank line; it is correct iff it contains the gold option text AND does not contain
the full options list literal (a model that echoes the options would otherwise always "contain"
the answer). ``strict=True`` additionally rejects a response that names any other option that is
not part of the gold text (documented beside the official rule, off by default).

Log-likelihood mode: the option with the highest summed log-probability after the
chat-formatted question wins (``acc``); ``acc_norm`` divides by the option's length in characters
(lm-eval's convention).

Knowledge boundary: k samples at temperature 0.2 per question; hit-rate = correct/k;
any-correct, all-correct; buckets highly-known (all k right), maybe-known (some), unknown (none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from longlore.bench.data import eckg_options

SYSTEM_PROMPT = "直接输出答案。"
BUCKETS = ("highly_known", "maybe_known", "unknown")


def cut_at_blank_line(response: str) -> str:
    """The response up to its first blank line (the official evaluation looks no further)."""
    return response.split("\n\n", 1)[0]


def score_generation(question: str, gold: str, response: str, strict: bool = False) -> dict[str, Any]:
    """``{"correct", "echo"}`` for one response under the substring-and-no-echo rule."""
    options_text, options = eckg_options(question)
    text = cut_at_blank_line(response)
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
