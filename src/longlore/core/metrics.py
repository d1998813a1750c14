"""Answer-matching metrics shared by the QA-style systems (RAM, bench, PretrainRL, ...).

SQuAD normalisation (lower-case, drop punctuation and English articles, collapse spaces); token F1
splits CJK text per character, since Chinese has no spaces and a whole-sentence "token" would make
F1 all-or-nothing. ROUGE comes from Google's ``rouge-score`` with a CJK-aware tokenizer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("，。！？；：、“”‘’（）《》【】…—·「」『』")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation (also strips Chinese punctuation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    """Normalised tokens: whitespace words, with every CJK character its own token."""
    tokens: list[str] = []
    for word in normalize_answer(text).split():
        if _CJK.search(word):
            buffer = ""
            for ch in word:
                if _CJK.match(ch):
                    if buffer:
                        tokens.append(buffer)
                        buffer = ""
                    tokens.append(ch)
                else:
                    buffer += ch
            if buffer:
                tokens.append(buffer)
        else:
            tokens.append(word)
    return tokens


def _as_list(golds: str | Sequence[str]) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _as_list(golds)))


def substring_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 if any normalised gold answer occurs inside the normalised prediction ("accuracy")."""
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) and normalize_answer(g) in pred for g in _as_list(golds)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: str | Sequence[str]) -> float:
    """SQuAD token F1, maximised over gold answers."""
    pred = tokenize(prediction)
    return max(_f1(pred, tokenize(g)) for g in _as_list(golds))


class _CJKTokenizer:
    """rouge-score tokenizer protocol; its default drops every non-ASCII character."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def rouge(prediction: str, reference: str, types: Sequence[str] = ("rouge1", "rouge2", "rougeL")) -> dict[str, float]:
    """ROUGE F-measures (rouge-score), CJK-aware."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(types), tokenizer=_CJKTokenizer())
    return {name: score.fmeasure for name, score in scorer.score(reference, prediction).items()}


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap (1 - alpha) confidence interval: ``(mean, low, high)``."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(data.mean()), float(low), float(high)
