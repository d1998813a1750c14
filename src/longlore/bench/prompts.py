"""Prompts: one item (+ shots) -> chat messages and a system prompt, as the official code builds them.

The official texts live in ``bench/official_prompts/`` (verbatim, sources and licences in its
``SOURCES.md``); this module only assembles them.

- ECKGBench (``eval.ipynb``): system "直接输出答案。" and one user turn. 2-shot (the notebook's
  default) is the instruction suffix, the two fixed examples and the item's sentence and options
  in ONE user turn, ending in "*答案*："; 0-shot is the question as published. The knowledge
  boundary sends the raw question: no chat template, no system prompt.
- ConceptMath (``prompt_utils.get_few_shot_prompt``): k <= 5 official exemplars (hand-written worked
  solutions) as user/assistant turns, then the question; ``cot`` appends "Let's think step by
  step." / "让我们一步一步地思考。".
- ChineseEcomQA: the item's own system prompt (it carries the few-shot examples) and its prompt;
  the calibration task wraps the prompt in Chinese-SimpleQA's confidence template.
"""

from __future__ import annotations

from longlore.bench.official import official
from longlore.bench.schema import Item
from longlore.bench.tasks import TaskSpec
from longlore.core.errors import LongloreError

Messages = list[dict[str, str]]

COT_SUFFIX = {"en": "\nLet's think step by step.", "zh": "\n让我们一步一步地思考。"}
ECKG_SENTENCE = "\n*句子*："


def eckg_two_shot(question: str) -> str:
    """The official 2-shot ECKGBench user turn for one published question."""
    spec = official("eckgbench_eval.json")
    parts = question.split(ECKG_SENTENCE)
    if len(parts) != 2:
        raise LongloreError(
            f"ECKGBench question has {len(parts) - 1} '*句子*：' markers, expected 1: {question[:80]!r}"
        )
    example = parts[1]
    return (
        spec["suffix"]
        + spec["fs_prompt"]
        + "\n#示例1#\n"
        + spec["fs_1"]
        + "\n#示例2#\n"
        + spec["fs_2"]
        + "\n#示例3#\n*句子*："
        + example
        + "\n*答案*："
    )


def conceptmath_exemplars(split: str, k: int) -> Messages:
    """The first ``k`` (<= 5) official exemplar pairs of a ConceptMath split, as chat turns."""
    dialog = official("conceptmath_fewshot.json")["dialogs"][split]
    if k > len(dialog) // 2:
        raise LongloreError(f"ConceptMath {split} has {len(dialog) // 2} official exemplars (asked for {k})")
    return [dict(m) for m in dialog[: 2 * k]]


def confidence_prompt(question: str) -> str:
    """Chinese-SimpleQA's answer-with-confidence prompt around one question."""
    return official("chinese_simpleqa_confidence_template.txt").format(question=question)


def build_messages(spec: TaskSpec, item: Item, shots: int = 0) -> tuple[Messages, str | None]:
    """``(messages, system)`` for one item under a task with ``shots`` examples.

    For raw-prompt tasks (``spec.chat`` false) the single user message is the text sent as is.
    """
    if spec.benchmark == "conceptmath":
        suffix = COT_SUFFIX[item.language] if spec.prompt == "cot" else ""
        return conceptmath_exemplars(item.split, shots) + [{"role": "user", "content": item.question + suffix}], None
    if spec.benchmark == "eckgbench":
        if not spec.chat:  # knowledge boundary: the published question, no template, no system prompt
            return [{"role": "user", "content": item.question}], None
        question = eckg_two_shot(item.question) if shots == 2 else item.question
        return [{"role": "user", "content": question}], official("eckgbench_eval.json")["system_prompt"]
    question = confidence_prompt(item.question) if spec.output_type == "confidence" else item.question
    return [{"role": "user", "content": question}], item.system_prompt
