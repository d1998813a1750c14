"""The runner: tasks x model -> samples -> lm-eval-shaped results.

``evaluate(config)`` loads the model through ``longlore.core.backends`` (a request cache makes an
interrupted run resume), builds each task's requests, grades the responses and aggregates.
``score_responses`` grades responses produced elsewhere (same graders, no model). Both return
``(results, samples_by_task)``; :mod:`longlore.bench.report` writes them to disk.
"""

from __future__ import annotations

import hashlib
import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import longlore
from longlore.bench import ecomqa, scoring
from longlore.bench.config import BenchConfig, parse_shard
from longlore.bench.data import data_source, load_benchmark, load_file
from longlore.bench.prefix import SharedPrefixModel
from longlore.bench.prompts import Messages, build_messages
from longlore.bench.schema import SCHEMA_VERSION, Item
from longlore.bench.tasks import TaskSpec, groups_of, resolve_tasks
from longlore.core.backends import (
    CachedTextModel,
    GenerationRequest,
    HFTextModel,
    LoglikelihoodRequest,
    load_text_model,
)
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


def shard_items(items: list[Item], shard: str | None) -> list[tuple[int, Item]]:
    """``(doc_id, item)`` pairs of one shard: items ``i-1, i-1+n, ...`` of the task's list for shard
    ``i/n`` (strided, so long and short prompts spread evenly); all items without a shard. The doc_id
    is the position in the unsharded list, so ``bench merge`` restores the unsharded order."""
    pairs = list(enumerate(items))
    if shard is None:
        return pairs
    i, n = parse_shard(shard)
    return pairs[i - 1 :: n]


def item_seed(seed: int, item_id: str) -> int:
    """A per-item sampling seed: sampled completions then depend on the item alone, not on the
    batch or shard it ran in (each seed forms its own batch in the local backend)."""
    return int(hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()[:8], 16)


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


def ecomqa_grader_name(config: BenchConfig) -> str:
    """How ChineseEcomQA answers are graded, as recorded in results."""
    if config.judge:
        return f"judge:{config.judge} (template {config.judge_template}, parser {config.judge_parser})"
    return ecomqa.FALLBACK_GRADER if config.fallback_grader else "none"


def check_grading(config: BenchConfig, specs: Sequence[TaskSpec]) -> None:
    """ChineseEcomQA needs a judge (the official protocol) or an explicit opt-in to the fallback."""
    if not config.judge and not config.fallback_grader and any(s.grader == "ecomqa" for s in specs):
        raise LongloreError(
            "ChineseEcomQA is graded by a judge model (Chinese-SimpleQA's protocol): pass --judge SPEC "
            "(or --judge self to let the evaluated model judge), or --fallback-grader for the judge-free "
            "normalised match (not the official protocol)"
        )


class Grader:
    """Turns responses into verdicts for one task (judge calls batched per task)."""

    def __init__(self, config: BenchConfig, judge: Any | None) -> None:
        self.config, self.judge = config, judge

    def letters(self, items: Sequence[Item], answers: Sequence[str]) -> list[tuple[str, bool, str]]:
        """ChineseEcomQA ``(letter, parsed, judge_reply)`` per answer (judge or fallback)."""
        if self.judge is None:
            return [(ecomqa.fallback_grade(it.answers[0], a, it.question), True, "") for it, a in zip(items, answers)]
        template = self.config.judge_template
        reqs = [
            GenerationRequest(
                prompt=ecomqa.judge_prompt(it.question, it.answers[0], a, template),
                system=ecomqa.judge_system(template),
                max_new_tokens=self.config.judge_max_new_tokens,
                temperature=0.0,
            )
            for it, a in zip(items, answers)
        ]
        replies = [r[0] for r in _chunked(self.judge.generate, reqs, "judging")]
        return [(*ecomqa.parse_judge_reply(reply, self.config.judge_parser), reply) for reply in replies]

    def grade(self, spec: TaskSpec, items: Sequence[Item], responses: Sequence[str]) -> list[dict[str, Any]]:
        strict = self.config.scoring == "strict"
        if spec.grader == "conceptmath":
            return [scoring.grade_conceptmath(it, r, self.config.scoring) for it, r in zip(items, responses)]
        if spec.grader == "eckg":
            return [scoring.grade_eckg(it, r, strict=strict) for it, r in zip(items, responses)]
        graded = []
        for it, response, (letter, parsed, reply) in zip(items, responses, self.letters(items, responses)):
            fields = scoring.grade_letter(letter, parsed)
            fields.update(judge_reply=reply, extracted=ecomqa.answer_span(response))
            if self.judge is not None:  # the judge-free grade beside the judge's, labelled as such
                fields["fallback_verdict"] = ecomqa.VERDICTS[
                    ecomqa.fallback_grade(it.answers[0], response, it.question)
                ]
            graded.append(fields)
        return graded


def _shots_for(spec: TaskSpec, config: BenchConfig) -> int:
    k = spec.default_shots if config.shots is None else config.shots
    if k > spec.max_shots:
        raise LongloreError(f"task {spec.name} supports at most {spec.max_shots} shots (got --shots {k})")
    if spec.benchmark == "eckgbench" and k not in (0, 2):
        raise LongloreError(f"task {spec.name} takes 0 shots or the official 2 (got --shots {k})")
    return k


def run_task(
    spec: TaskSpec, items: list[tuple[int, Item]], model: Any, grader: Grader, config: BenchConfig
) -> tuple[list[dict[str, Any]], int]:
    """Samples (one dict per ``(doc_id, item)``) for one task, and the number of shots used."""
    k = _shots_for(spec, config)
    docs = [it for _, it in items]
    prompts = [build_messages(spec, it, k) for it in docs]
    base = [
        {
            "doc_id": doc_id,
            "item_id": it.id,
            "concept": it.concept,
            "gold": it.answers,
            "prompt": render(model, m, s) if spec.chat else m[0]["content"],
        }
        for (doc_id, it), (m, s) in zip(items, prompts)
    ]
    if spec.output_type == "loglikelihood":
        reqs = [LoglikelihoodRequest(b["prompt"], opt) for b, it in zip(base, docs) for opt in it.options or []]
        scores = _chunked(model.loglikelihood, reqs, spec.name)
        pos = 0
        for b, it in zip(base, docs):
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
    penalty = spec.repetition_penalty if config.repetition_penalty is None else config.repetition_penalty
    reqs = [
        GenerationRequest(
            prompt=m if spec.chat else m[0]["content"],
            system=s,
            chat=spec.chat,
            max_new_tokens=max_new,
            temperature=spec.temperature,
            n=spec.n_samples,
            seed=item_seed(config.seed, it.id) if spec.temperature > 0 else config.seed,
            repetition_penalty=penalty,
        )
        for it, (m, s) in zip(docs, prompts)
    ]
    outputs = _chunked(model.generate, reqs, spec.name)
    if spec.output_type == "boundary":
        for b, it, outs in zip(base, docs, outputs):
            # The official boundary evaluation judges each whole sample (no blank-line cut).
            verdicts = [scoring.grade_eckg(it, o, cut=False)["correct"] > 0 for o in outs]
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
        graded = grader.grade(spec, docs, [p[0] for p in parsed])
        for b, r, (answer, conf), g in zip(base, responses, parsed, graded):
            b.update(g)
            b.update(response=r, extracted=answer, confidence=conf)
        return base, k
    for b, r, g in zip(base, responses, grader.grade(spec, docs, responses)):
        b.update(response=r, **g)
    return base, k


def build_results(
    specs: list[TaskSpec],
    samples: dict[str, list[dict[str, Any]]],
    n_original: dict[str, int],
    n_shots: dict[str, int],
    config: BenchConfig,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The lm-eval-shaped results of graded samples (``bench merge`` calls it on merged shards)."""
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
        "config": {**config.to_dict(), "ecomqa_grader": ecomqa_grader_name(config)},
        "data_source": data_source(config.data),
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


def load_model(
    spec: str, config: BenchConfig, cache: str | Path | None, device: str = "cpu", dtype: str = "float32"
) -> Any:
    """A text model for ``spec`` on ``device`` in ``dtype`` (local models; ``auto`` resolves to CUDA
    + bf16 where present), with the run's batch size, shared-prefix reuse (if
    ``config.share_prefix``) and request cache."""
    inner = load_text_model(spec, batch_size=config.batch_size, device=device, dtype=dtype)
    if config.share_prefix and isinstance(inner, HFTextModel):
        inner = SharedPrefixModel(inner, min_shared=config.share_prefix)
    return CachedTextModel(inner, cache) if cache else inner


def _load_judge(config: BenchConfig, model: Any, cache: str | Path | None, device: str, dtype: str) -> Any | None:
    if not config.judge:
        return None
    if config.judge == "self":
        return model
    judge_cache = Path(cache).with_name("judge_cache.sqlite") if cache else None
    return load_model(config.judge, config, judge_cache, device, dtype)


def evaluate(
    config: BenchConfig,
    model: Any | None = None,
    judge: Any | None = None,
    cache: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Run every task of ``config`` on a model (``model`` overrides ``config.model``; ``judge``
    overrides ``config.judge``; models named by spec load on ``device`` in ``dtype``). With
    ``config.shard`` set, only that shard of each task's items."""
    specs = resolve_tasks(config.tasks)
    if judge is None:
        check_grading(config, specs)
    for spec in specs:
        _shots_for(spec, config)  # a bad --shots fails before any model loads
    wall, cpu = time.time(), time.process_time()
    if model is None:
        if not config.model:
            raise LongloreError("no model given; pass --model SPEC (e.g. smollm2-135m) or openai:MODEL@URL")
        model = load_model(config.model, config, cache, device, dtype)
    if judge is None:
        judge = _load_judge(config, model, cache, device, dtype)
    grader = Grader(config, judge)
    samples, n_original, n_shots = {}, {}, {}
    loaded: dict[tuple[str, str], list[Item]] = {}
    for spec in specs:
        key = (spec.benchmark, spec.split)
        if key not in loaded:
            loaded[key] = load_benchmark(spec.benchmark, spec.split, config.data)
        pool = [it for it in loaded[key] if not spec.concepts or it.concept[0] in spec.concepts]
        items = shard_items(select_items(spec, loaded[key], config.limit, config.subset, config.seed), config.shard)
        shard = f" (shard {config.shard})" if config.shard else ""
        console.print(f"[bold]{spec.name}[/bold]: {len(items)} of {len(pool)} items{shard}")
        samples[spec.name], n_shots[spec.name] = run_task(spec, items, model, grader, config)
        n_original[spec.name] = len(pool)
    extra = {
        "model_id": getattr(model, "model_id", config.model),
        "total_evaluation_time_seconds": round(time.time() - wall, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }
    if hasattr(model, "hits"):
        extra["request_cache"] = {"hits": model.hits, "misses": model.misses}
    return build_results(specs, samples, n_original, n_shots, config, extra), samples


def score_responses(
    task: str,
    responses_path: str | Path,
    config: BenchConfig,
    judge: Any | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Grade a file of official records that each carry a ``response`` field (a judge named in
    ``config`` loads on ``device`` in ``dtype``)."""
    specs = resolve_tasks([task])
    if len(specs) != 1 or specs[0].output_type not in ("generate", "confidence"):
        raise LongloreError(
            f"`bench score` takes one generation task (got {task!r}); "
            "log-likelihood and boundary tasks need the model itself"
        )
    spec = specs[0]
    if judge is None:
        check_grading(config, specs)
    rows = load_file(responses_path, spec.benchmark, spec.split, keep=("response",))
    for item, popped in rows:
        if "response" not in popped:
            raise LongloreError(
                f"{responses_path}:{item.provenance.line}: field 'response' missing; "
                "each line holds the benchmark's own fields plus `response`"
            )
    rows = [(it, p) for it, p in rows if not spec.concepts or it.concept[0] in spec.concepts]
    if not rows:
        raise LongloreError(
            f"{responses_path}: no records of task {spec.name} (sub-concepts {', '.join(spec.concepts)}); "
            "check --task against the file"
        )
    if judge is None and config.judge:
        if config.judge == "self":
            raise LongloreError("`--judge self` needs a model; `bench score` grades files, so name the judge model")
        judge = load_model(config.judge, config, None, device, dtype)
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
    results = build_results([spec], {spec.name: samples}, {spec.name: len(samples)}, {spec.name: 0}, config, extra)
    return results, {spec.name: samples}
