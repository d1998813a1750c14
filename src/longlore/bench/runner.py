"""The runner: tasks x model -> samples -> lm-eval-shaped results.

``evaluate(config)`` loads the model through ``longlore.core.backends`` (a request cache makes an
interrupted run resume), builds each task's requests, grades the responses and aggregates.
``score_responses`` grades responses produced elsewhere (same graders, no model). Both return
``(results, samples_by_task)``; :mod:`longlore.bench.report` writes them to disk.
"""

from __future__ import annotations

import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import longlore
from longlore.bench import ecomqa, scoring
from longlore.bench.config import BenchConfig
from longlore.bench.data import load_benchmark, load_file
from longlore.bench.prompts import Messages, build_messages, conceptmath_shots, eckg_shots
from longlore.bench.schema import SCHEMA_VERSION, Item
from longlore.bench.tasks import TaskSpec, groups_of, resolve_tasks
from longlore.core.backends import GenerationRequest, LoglikelihoodRequest, load_text_model
from longlore.core.errors import LongloreError
from longlore.core.progress import console, track

CHUNK = 32  # requests per progress step (and per cache flush)


def select_items(spec: TaskSpec, items: list[Item], limit: int | None, subset: str, seed: int) -> list[Item]:
    """The task's items (concept filter), then ``limit`` of them: the first N, or a seeded
    sample of N kept in file order."""
    chosen = [it for it in items if not spec.concepts or it.concept[0] in spec.concepts]
    if limit is None or limit >= len(chosen):
        return chosen
    if subset == "first":
        return chosen[:limit]
    # A seeded permutation cut at `limit`: a smaller subset is a prefix of a larger one, so the
    # request cache of a bigger run serves a smaller one (and vice versa).
    order = list(range(len(chosen)))
    random.Random(f"{seed}:{spec.benchmark}:{spec.split}:{','.join(spec.concepts)}").shuffle(order)
    keep = set(order[:limit])
    return [it for i, it in enumerate(chosen) if i in keep]


def render(model: Any, messages: Messages, system: str | None) -> str:
    """The prompt text as the model sees it; endpoints template server-side, so there the
    messages are shown (and used as raw context) in a plain ``role: content`` form."""
    try:
        return model.format_chat(messages, system)
    except LongloreError:
        lines = ([f"system: {system}"] if system else []) + [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"


def _chunked(fn: Any, requests: Sequence[Any], label: str) -> list[Any]:
    out: list[Any] = []
    starts = range(0, len(requests), CHUNK)
    for start in track(starts, label, total=len(starts)):
        out.extend(fn(requests[start : start + CHUNK]))
    return out


class Grader:
    """Turns responses into verdicts for one task (judge calls batched per task)."""

    def __init__(self, config: BenchConfig, judge: Any | None) -> None:
        self.config, self.judge = config, judge

    def letters(self, items: Sequence[Item], answers: Sequence[str]) -> list[tuple[str, bool, str]]:
        """ChineseEcomQA ``(letter, parsed, judge_reply)`` per answer (judge or fallback)."""
        if self.judge is None:
            return [(ecomqa.fallback_grade(it.answers[0], a, it.question), True, "") for it, a in zip(items, answers)]
        reqs = [
            GenerationRequest(
                prompt=ecomqa.judge_prompt(it.question, it.answers[0], a), max_new_tokens=16, temperature=0.0
            )
            for it, a in zip(items, answers)
        ]
        replies = [r[0] for r in _chunked(self.judge.generate, reqs, "judging")]
        official = self.config.judge_parser == "official"
        return [(*ecomqa.parse_judge_reply(reply, official=official), reply) for reply in replies]

    def grade(self, spec: TaskSpec, items: Sequence[Item], responses: Sequence[str]) -> list[dict[str, Any]]:
        strict = self.config.scoring == "strict"
        if spec.grader == "conceptmath":
            return [scoring.grade_conceptmath(it, r, self.config.scoring) for it, r in zip(items, responses)]
        if spec.grader == "eckg":
            return [scoring.grade_eckg(it, r, strict=strict) for it, r in zip(items, responses)]
        graded = []
        for response, (letter, parsed, reply) in zip(responses, self.letters(items, responses)):
            fields = scoring.grade_letter(letter, parsed)
            fields.update(judge_reply=reply, extracted=ecomqa.answer_span(response))
            graded.append(fields)
        return graded


def _shots_for(spec: TaskSpec, config: BenchConfig, items: list[Item]) -> Any:
    k = spec.default_shots if config.shots is None else config.shots
    if k > spec.max_shots:
        raise LongloreError(f"task {spec.name} supports at most {spec.max_shots} shots (got --shots {k})")
    if k == 0:
        return 0, lambda item: []
    if spec.benchmark == "conceptmath":
        return k, lambda item: conceptmath_shots(item, items, k)
    other = "large" if spec.split != "large" else "main"
    exemplars = eckg_shots(load_benchmark("eckgbench", other, config.data), k)
    return k, lambda item: exemplars


def run_task(
    spec: TaskSpec, items: list[Item], all_items: list[Item], model: Any, grader: Grader, config: BenchConfig
) -> tuple[list[dict[str, Any]], int]:
    """Samples (one dict per item) for one task, and the number of shots used."""
    k, shots = _shots_for(spec, config, all_items)
    prompts = [build_messages(spec, it, shots(it)) for it in items]
    base = [
        {"doc_id": i, "item_id": it.id, "concept": it.concept, "gold": it.answers, "prompt": render(model, m, s)}
        for i, (it, (m, s)) in enumerate(zip(items, prompts))
    ]
    if spec.output_type == "loglikelihood":
        reqs = [LoglikelihoodRequest(b["prompt"], opt) for b, it in zip(base, items) for opt in it.options or []]
        scores = _chunked(model.loglikelihood, reqs, spec.name)
        pos = 0
        for b, it in zip(base, items):
            lps = [s[0] for s in scores[pos : pos + len(it.options or [])]]
            pos += len(lps)
            raw, norm = scoring.eckg.pick_option(lps, it.options or [])
            b.update(
                logprobs=lps,
                response=it.options[raw],
                extracted=it.options[raw],
                correct=float(raw == it.gold_index),
                correct_norm=float(norm == it.gold_index),
                verdict="correct" if raw == it.gold_index else "incorrect",
            )
        return base, k
    # The override is a cap, so ECKGBench keeps its 8-token budget when ConceptMath is shortened.
    max_new = min(spec.max_new_tokens, config.max_new_tokens or spec.max_new_tokens)
    reqs = [
        GenerationRequest(
            prompt=m, system=s, max_new_tokens=max_new, temperature=spec.temperature, n=spec.n_samples, seed=config.seed
        )
        for m, s in prompts
    ]
    outputs = _chunked(model.generate, reqs, spec.name)
    if spec.output_type == "boundary":
        for b, it, outs in zip(base, items, outputs):
            verdicts = [scoring.grade_eckg(it, o)["correct"] > 0 for o in outs]
            b.update(
                responses=outs,
                response=outs[0],
                sample_verdicts=verdicts,
                correct=sum(verdicts) / len(verdicts),
                verdict=scoring.eckg.boundary_bucket(verdicts),
            )
        return base, k
    responses = [o[0] for o in outputs]
    if spec.output_type == "confidence":
        parsed = [ecomqa.parse_confidence(r) for r in responses]
        graded = grader.grade(spec, items, [p[0] for p in parsed])
        for b, r, (answer, conf), g in zip(base, responses, parsed, graded):
            b.update(g)
            b.update(response=r, extracted=answer, confidence=conf)
        return base, k
    for b, r, g in zip(base, responses, grader.grade(spec, items, responses)):
        b.update(response=r, **g)
    return base, k


def _results(
    specs: list[TaskSpec],
    samples: dict[str, list[dict[str, Any]]],
    n_original: dict[str, int],
    n_shots: dict[str, int],
    config: BenchConfig,
    extra: dict[str, Any],
) -> dict[str, Any]:
    metrics = {s.name: scoring.summarize(s, samples[s.name], seed=config.seed) for s in specs}
    sizes = {name: len(v) for name, v in samples.items()}
    groups = groups_of(list(samples))
    grader = "official" if config.scoring == "official" else "strict"
    return {
        "results": metrics,
        "groups": {g: scoring.group_summary(metrics, subs, sizes) for g, subs in groups.items()},
        "group_subtasks": groups,
        "concepts": {s.name: scoring.concept_tree(samples[s.name]) for s in specs},
        "configs": {s.name: {**s.config(), "num_fewshot": n_shots[s.name], "scoring": grader} for s in specs},
        "versions": {s.name: s.version for s in specs},
        "n-shot": n_shots,
        "higher_is_better": {s.name: {s.primary_metric: s.primary_metric != "ece"} for s in specs},
        "n-samples": {s.name: {"original": n_original[s.name], "effective": sizes[s.name]} for s in specs},
        "config": {
            **config.to_dict(),
            "ecomqa_grader": f"judge:{config.judge}" if config.judge else "fallback:normalised-match",
        },
        "schema_version": SCHEMA_VERSION,
        "longlore_version": getattr(longlore, "__version__", "0.1.0"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        **extra,
    }


def evaluate(
    config: BenchConfig, model: Any | None = None, judge: Any | None = None, cache: str | Path | None = None
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Run every task of ``config`` on a model (``model`` overrides ``config.model``)."""
    specs = resolve_tasks(config.tasks)
    start = time.time()
    if model is None:
        if not config.model:
            raise LongloreError("no model given; pass --model SPEC (e.g. smollm2-135m) or openai:MODEL@URL")
        model = load_text_model(config.model, batch_size=config.batch_size, cache=cache)
    if judge is None and config.judge:
        judge = load_text_model(
            config.judge,
            batch_size=config.batch_size,
            cache=Path(cache).with_name("judge_cache.sqlite") if cache else None,
        )
    grader = Grader(config, judge)
    samples, n_original, n_shots = {}, {}, {}
    loaded: dict[tuple[str, str], list[Item]] = {}
    for spec in specs:
        key = (spec.benchmark, spec.split)
        if key not in loaded:
            loaded[key] = load_benchmark(spec.benchmark, spec.split, config.data)
        pool = [it for it in loaded[key] if not spec.concepts or it.concept[0] in spec.concepts]
        items = select_items(spec, loaded[key], config.limit, config.subset, config.seed)
        console.print(f"[bold]{spec.name}[/bold]: {len(items)} of {len(pool)} items")
        samples[spec.name], n_shots[spec.name] = run_task(spec, items, pool, model, grader, config)
        n_original[spec.name] = len(pool)
    extra = {
        "model_id": getattr(model, "model_id", config.model),
        "total_evaluation_time_seconds": round(time.time() - start, 1),
    }
    if hasattr(model, "hits"):
        extra["request_cache"] = {"hits": model.hits, "misses": model.misses}
    return _results(specs, samples, n_original, n_shots, config, extra), samples


def score_responses(
    task: str, responses_path: str | Path, config: BenchConfig, judge: Any | None = None
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Grade a file of official records that each carry a ``response`` field."""
    specs = resolve_tasks([task])
    if len(specs) != 1 or specs[0].output_type not in ("generate", "confidence"):
        raise LongloreError(
            f"`bench score` takes one generation task (got {task!r}); "
            "log-likelihood and boundary tasks need the model itself"
        )
    spec = specs[0]
    rows = load_file(responses_path, spec.benchmark, spec.split, keep=("response",))
    for item, popped in rows:
        if "response" not in popped:
            raise LongloreError(
                f"{responses_path}:{item.provenance.line}: field 'response' missing; "
                "each line holds the benchmark's own fields plus `response`"
            )
    rows = [(it, p) for it, p in rows if not spec.concepts or it.concept[0] in spec.concepts]
    if judge is None and config.judge:
        judge = load_text_model(config.judge, batch_size=config.batch_size)
    grader = Grader(config, judge)
    items = [it for it, _ in rows]
    responses = [str(p["response"]) for _, p in rows]
    samples = [
        {
            "doc_id": i,
            "item_id": it.id,
            "concept": it.concept,
            "gold": it.answers,
            "prompt": it.question,
            "response": r,
            **g,
        }
        for i, (it, r, g) in enumerate(zip(items, responses, grader.grade(spec, items, responses)))
    ]
    extra = {"model_id": f"responses:{Path(responses_path).name}", "total_evaluation_time_seconds": 0.0}
    return _results([spec], {spec.name: samples}, {spec.name: len(samples)}, {spec.name: 0}, config, extra), {
        spec.name: samples
    }
