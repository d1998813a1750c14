"""ChineseEcomQA grading (Chen et al. 2025, arXiv 2502.20196).

Official grading is Chinese-SimpleQA's judge: the grader template (question, gold, model answer;
verdict A correct / B incorrect / C not attempted), sent as one user message with the system
message "你是一个智能助手。", and its answer parser: the first ``A|B|C`` anywhere in the reply,
else C. Both texts are read verbatim from ``bench/official_prompts/`` (MIT, OpenStellarTeam).
Options, each a stated deviation: ``template="paraphrase"`` (this project's shorter wording of the
same rules, no system message) and ``parser="robust"`` (a standalone letter or the Chinese label
first, since the official parser reads the "C" of "Correct" as a verdict). A reply with no verdict
counts as not attempted and is listed as unparsed.

Without a judge, :func:`fallback_grade` (a normalised match on the answer's first line) can grade
instead. It is never the default and results graded by it say so. Calibration (CC and BC): the
model answers Chinese-SimpleQA's confidence template; ECE uses 10 equal-width bins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from longlore.bench.official import official
from longlore.core.errors import LongloreError
from longlore.core.metrics import normalize_answer

VERDICTS = {"A": "correct", "B": "incorrect", "C": "not_attempted"}

# Written for this project in the Chinese-SimpleQA grader's structure: three graded categories
# with the same criteria, numeric-answer and partial-information rules, one letter as output.
# Used only with template="paraphrase"; the default is the official text.
PARAPHRASE_JUDGE_TEMPLATE = """请判断模型对下面问题的回答是否正确。可选评定：【正确】、【错误】、【未尝试】。

评定规则：
- 【正确】：回答包含标准答案的关键信息，且没有与标准答案矛盾的内容；语言、大小写、标点、顺序不影响判断；带有不确定语气但答案正确也算正确。
- 【错误】：回答中有与标准答案矛盾的事实陈述，即使语气含糊（如“可能是”）也算错误。
- 【未尝试】：回答没有给出标准答案的关键信息，但也没有与之矛盾的陈述（例如“我不知道”“需要更多信息”）。
- 数字类答案须与标准答案一致；只给出大致范围（如“大约”“超过”）视为【未尝试】。
- 如果标准答案比问题要求的信息更多，回答只需覆盖问题所问的部分。
- 同一事物的不同译名或别名视为一致。

问题：{question}
标准答案：{target}
模型回答：{predicted_answer}

请只输出一个字母：A 表示【正确】，B 表示【错误】，C 表示【未尝试】。不要输出其他内容。"""

JUDGE_TEMPLATES = ("official", "paraphrase")
JUDGE_PARSERS = ("official", "robust")
FALLBACK_GRADER = "fallback:normalised-match (judge-free; not the official protocol)"

_LETTER_RE = re.compile(r"(?<![A-Za-z])([ABC])(?![A-Za-z])")
_LABEL_RE = re.compile(r"【?(正确|错误|未尝试)】?")
_LABELS = {"正确": "A", "错误": "B", "未尝试": "C"}
_REFUSALS = ("不知道", "无法回答", "无法确定", "不清楚", "I don't know", "not sure")


def judge_template(template: str = "official") -> str:
    """The judge template text: Chinese-SimpleQA's (verbatim) or this project's paraphrase."""
    if template == "official":
        return official("chinese_simpleqa_grader_template.txt")
    if template == "paraphrase":
        return PARAPHRASE_JUDGE_TEMPLATE
    raise LongloreError(f"unknown judge template {template!r}; choose one of {', '.join(JUDGE_TEMPLATES)}")


def judge_system(template: str = "official") -> str | None:
    """The judge's system message: the official grading sampler's, none for the paraphrase."""
    return official("chinese_simpleqa_grader.json")["judge_system_message"] if template == "official" else None


def judge_prompt(question: str, target: str, predicted: str, template: str = "official") -> str:
    """The judge's user message for one graded answer."""
    return judge_template(template).format(question=question, target=target, predicted_answer=predicted)


def parse_judge_reply(reply: str, parser: str = "official") -> tuple[str, bool]:
    """``(letter, parsed)``: the verdict letter and whether the reply actually contained one.

    ``official``: the first ``A|B|C`` anywhere (Chinese-SimpleQA's regex, read from its data file),
    else C. ``robust``: a standalone letter, else the Chinese label. Unparseable replies give
    ``("C", False)``: counted as not attempted and reported.
    """
    if parser == "official":
        rule = official("chinese_simpleqa_grader.json")["answer_parser"]
        match = re.search(rule["pattern"], reply)
        return (match.group(0), True) if match else (rule["default"], False)
    if parser != "robust":
        raise LongloreError(f"unknown judge parser {parser!r}; choose one of {', '.join(JUDGE_PARSERS)}")
    match = _LETTER_RE.search(reply.strip())
    if match:
        return match.group(1), True
    label = _LABEL_RE.search(reply)
    if label:
        return _LABELS[label.group(1)], True
    return "C", False


def answer_span(response: str) -> str:
    """The answer part of a response: its first non-empty line, without Markdown emphasis or a
    leading "答案：" label."""
    for line in response.splitlines():
        line = line.replace("*", "").strip()
        if line:
            return re.sub(r"^(答案|回答|answer)\s*[:：]\s*", "", line, flags=re.I)
    return ""


def fallback_grade(gold: str, response: str, question: str = "") -> str:
    """Judge-free letter: A, B or C (correct / incorrect / not attempted).

    C if the answer is empty or a refusal. A if the normalised answer span equals the normalised
    gold, or contains it while the gold does not already occur in the question: small models
    often repeat the question, and a gold such as "是" or a word of the query would otherwise be
    "found" in the echo. Else B.
    """
    span = normalize_answer(answer_span(response))
    if not span or any(r in response for r in _REFUSALS):
        return "C"
    gold_norm = normalize_answer(gold)
    if not gold_norm:
        return "B"
    if span == gold_norm:
        return "A"
    in_question = gold_norm in normalize_answer(question)
    return "A" if gold_norm in span and not in_question else "B"


def parse_confidence(reply: str) -> tuple[str, float | None]:
    """``(answer, confidence in [0, 1] or None)`` from a JSON-ish reply.

    Accepts a JSON object anywhere in the reply; else a ``confidence_score: N`` pattern; a
    missing or out-of-range confidence is None (the item is left out of the ECE).
    """
    answer, conf = reply.strip(), None
    block = re.search(r"\{.*?\}", reply, re.S)
    if block:
        try:
            data = json.loads(block.group(0))
            answer = str(data.get("answer", answer))
            conf = float(data["confidence_score"]) if "confidence_score" in data else None
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
            pass
    if conf is None:
        match = re.search(r"confidence_score\"?\s*[:：]\s*(\d+(?:\.\d+)?)", reply)
        if match:
            conf = float(match.group(1))
        answer_match = re.search(r"\"answer\"\s*[:：]\s*\"([^\"]*)", reply)
        if answer_match:
            answer = answer_match.group(1)
    if conf is not None and not 0 <= conf <= 100:
        conf = None
    return answer, (conf / 100 if conf is not None else None)


def calibration(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability-diagram bins.

    ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)| over equal-width confidence bins; a
    confidence of exactly 1.0 falls in the last bin.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:  # no usable confidence: None, so the results stay valid JSON (no NaN)
        return {"ece": None, "n": 0, "bins": []}
    index = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = index == b
        if not mask.any():
            continue
        acc, mean_conf = float(hit[mask].mean()), float(conf[mask].mean())
        ece += mask.sum() / conf.size * abs(acc - mean_conf)
        bins.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "n": int(mask.sum()),
                "accuracy": acc,
                "confidence": mean_conf,
            }
        )
    return {"ece": float(ece), "n": int(conf.size), "bins": bins}
