"""Prompts: one item (+ shots) -> chat messages and a system prompt.

- ConceptMath: the question alone as the user turn (as the official inference files show);
  ``cot`` appends "Let's think step by step." / "让我们一步一步地思考。". k-shot uses k other
  items of the same split, drawn once with a fixed seed, each answered "Therefore, the answer is
  X." / "因此，答案是X。". (The paper's five exemplars are hand-written worked solutions; these
  direct-answer exemplars are this harness's stand-in, documented as such.)
- ECKGBench: system "直接输出答案。", the question as the user turn; 2-shot prepends two fixed
  examples from the *other* split (large for main, main for large), so no test item is a shot.
- ChineseEcomQA: the item's own system prompt (it carries the few-shot examples) and its prompt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from longlore.bench.eckg import SYSTEM_PROMPT as ECKG_SYSTEM
from longlore.bench.ecomqa import CONFIDENCE_TEMPLATE
from longlore.bench.schema import Item
from longlore.bench.tasks import TaskSpec

Messages = list[dict[str, str]]

COT_SUFFIX = {"en": "\nLet's think step by step.", "zh": "\n让我们一步一步地思考。"}
ANSWER_LINE = {"en": "Therefore, the answer is {}.", "zh": "因此，答案是{}。"}
SHOT_SEED = 1234


def conceptmath_shots(item: Item, pool: Sequence[Item], k: int) -> list[Item]:
    """k exemplars for ``item``: a fixed seeded order of the split, skipping the item itself."""
    order = list(pool)
    random.Random(SHOT_SEED).shuffle(order)
    return [ex for ex in order if ex.id != item.id][:k]


def eckg_shots(other_split: Sequence[Item], k: int) -> list[Item]:
    """The fixed ECKGBench exemplars: the first item of each dimension, then file order."""
    firsts = {}
    for ex in other_split:
        firsts.setdefault(ex.concept[0], ex)
    chosen = list(firsts.values())
    chosen += [ex for ex in other_split if ex not in chosen]
    return chosen[:k]


def build_messages(spec: TaskSpec, item: Item, shots: Sequence[Item] = ()) -> tuple[Messages, str | None]:
    """``(messages, system)`` for one item under a task."""
    messages: Messages = []
    if spec.benchmark == "conceptmath":
        for ex in shots:
            messages += [
                {"role": "user", "content": ex.question},
                {"role": "assistant", "content": ANSWER_LINE[ex.language].format(ex.answers[0])},
            ]
        suffix = COT_SUFFIX[item.language] if spec.prompt == "cot" else ""
        messages.append({"role": "user", "content": item.question + suffix})
        return messages, None
    if spec.benchmark == "eckgbench":
        for ex in shots:
            messages += [{"role": "user", "content": ex.question}, {"role": "assistant", "content": ex.answers[0]}]
        messages.append({"role": "user", "content": item.question})
        return messages, ECKG_SYSTEM
    question = item.question
    if spec.output_type == "confidence":
        question = CONFIDENCE_TEMPLATE.format(question=question)
    return [{"role": "user", "content": question}], item.system_prompt
