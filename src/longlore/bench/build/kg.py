"""``bench build-kg``: a knowledge graph to an ECKGBench-style benchmark (arXiv 2503.15990).

The steps follow the authors' generation notebook (``generation_pipeline.ipynb``):

1. **Questions.** One question per (head, relation) pair that has a template and enough recall
   candidates (>= ``min_candidates``; the notebook's ``threshold = 10``). Relations get quotas:
   ``is_a_share`` of the questions come from is-a relations (ECKGBench main: 376 of 816 are
   dim_2), each group is split evenly over its relations, and what a small relation cannot fill
   goes to the others of its group (a template's ``quota`` overrides). The template is filled
   and the tail masked as ``___``.
2. **Negatives, stage 1 (recall).** The tails labelled false for the same (head, relation), plus
   (``recall="labelled+relation"``) every tail the relation has elsewhere, minus every true tail
   of the pair.
3. **Stage 2 (embedding filter).** Candidates with cosine >= ``synonym_threshold`` (0.80) to the
   answer are dropped as likely synonyms and the ``keep_similar`` (15) most similar remain; as in
   the notebook, when fewer than ``min_after_filter`` (5) survive the filter is not applied. The
   dropped candidates are recorded so a person can check how many were real synonyms.
4. **Stage 3 (pick 3).** An LLM through any backend, with the notebook's prompt (most confusing,
   mutually different negatives; an English rendering for English templates), or without one the
   documented heuristic: maximal marginal relevance over the stage-2 candidates, first the one
   most similar to the answer, then the one maximising ``mmr_lambda * sim(answer) - (1 -
   mmr_lambda) * max sim(already picked)``. Invalid LLM picks are replaced from that order.
   Options are shuffled with a seed per question.
5. **Verification.** An optional LLM judge sees each question with its answer and lists the
   options it finds correct; an item passes when that is exactly the answer. Every item goes to
   the human-review queue with the judge's verdict; the benchmark file keeps the items the judge
   did not fail (all of them without a judge).

Outputs under ``out``: ``eckgbench/ECKGBench.jsonl`` (the official record format, plus
``relation``, ``language`` and ``triple``; ``longlore bench run --data OUT`` scores it),
``review_queue.jsonl``, ``stages.jsonl`` (every question's candidates at each stage) and
``build_report.json`` (counts per stage and relation, the config, CPU seconds). LLM calls go
through a SQLite request cache in ``out`` and embeddings are cached there, so a rerun resumes.
"""

from __future__ import annotations

import random
import re
import resource
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from longlore.bench.build.config import KGBuildConfig
from longlore.bench.build.embeddings import CachedEmbedder, embedder_for
from longlore.bench.build.kg_sources import Templates, Triple, load_source
from longlore.bench.build.queue import OPTIONS_MARKER, ReviewItem, write_queue
from longlore.core.backends import GenerationRequest
from longlore.core.errors import LongloreError
from longlore.core.io import write_json, write_jsonl
from longlore.core.progress import console, track


@dataclass
class Question:
    """A question under construction (one per sampled (head, relation) pair)."""

    qid: int
    triple: Triple
    is_a: bool
    sentence: str
    recall: list[str]
    dropped: list[tuple[str, float]] = field(default_factory=list)
    stage2: list[str] = field(default_factory=list)
    stage2_fallback: bool = False
    negatives: list[str] = field(default_factory=list)
    picked_by: str = ""
    options: list[str] = field(default_factory=list)
    judge: dict[str, Any] = field(default_factory=dict)


# --- step 1: candidate questions and quotas ------------------------------------------------


def index_kg(triples: list[Triple]) -> tuple[dict, dict, dict]:
    """``(true tails per (h, r), false tails per (h, r), true tails per relation)``."""
    true, false, pool = defaultdict(set), defaultdict(set), defaultdict(set)
    for t in triples:
        (true if t.label else false)[(t.head, t.relation)].add(t.tail)
        if t.label:
            pool[t.relation].add(t.tail)
    return true, false, pool


def recall_candidates(head: str, relation: str, index: tuple[dict, dict, dict], mode: str) -> list[str]:
    """Stage 1: false-labelled tails of (head, relation) [+ the relation's tails] minus its true
    tails (and minus the head itself, which would make a self-referential option)."""
    true, false, pool = index
    found = set(false.get((head, relation), ()))
    if mode == "labelled+relation":
        found |= pool.get(relation, set())
    return sorted(found - true.get((head, relation), set()) - {head})


def allocate(available: dict[str, int], is_a: dict[str, bool], fixed: dict[str, int], n: int, share: float) -> dict:
    """Questions per relation: ``share`` of ``n`` to is-a relations, even split inside each group,
    leftovers of small relations to the rest of their group, then to the other group."""
    quota = {r: min(q, available[r]) for r, q in fixed.items() if r in available}
    free = [r for r in available if r not in quota]
    groups = {True: [r for r in free if is_a[r]], False: [r for r in free if not is_a[r]]}
    left = max(n - sum(quota.values()), 0)
    want = {True: round(left * share) if groups[True] else 0}
    want[False] = left - want[True] if groups[False] else 0
    if not groups[False]:
        want[True] = left

    def fill(names: list[str], target: int) -> int:
        for r in names:
            quota.setdefault(r, 0)
        while target > 0:
            open_ = [r for r in names if quota[r] < available[r]]
            if not open_:
                break
            step = max(target // len(open_), 1)
            for r in sorted(open_, key=lambda r: (quota[r], r)):
                add = min(step, available[r] - quota[r], target)
                quota[r] += add
                target -= add
                if target == 0:
                    break
        return target

    short = {g: fill(groups[g], want[g]) for g in (True, False)}
    fill(groups[False], short[True])
    fill(groups[True], short[False])
    return {r: q for r, q in quota.items() if q > 0}


def make_questions(triples: list[Triple], templates: Templates, config: KGBuildConfig) -> list[Question]:
    """Step 1: sample (head, relation) pairs under the quotas and fill their templates."""
    index = index_kg(triples)
    rng = random.Random(config.seed)
    by_relation: dict[str, list[tuple[str, str, list[str]]]] = defaultdict(list)
    for (head, relation), tails in sorted(index[0].items()):
        try:
            templates.for_relation(relation)
        except LongloreError:
            continue
        candidates = recall_candidates(head, relation, index, config.recall)
        if len(candidates) >= config.min_candidates:
            by_relation[relation].append((head, rng.choice(sorted(tails)), candidates))
    if not by_relation:
        raise LongloreError(
            f"no (head, relation) pair has a template and >= {config.min_candidates} recall candidates; "
            "check the templates' relation names or lower --min-candidates"
        )
    is_a = {r: templates.for_relation(r).is_a for r in by_relation}
    fixed = {r: t.quota for r, t in templates.relations.items() if t.quota is not None}
    quota = allocate({r: len(v) for r, v in by_relation.items()}, is_a, fixed, config.n_questions, config.is_a_share)
    types = {(t.head, t.relation, t.tail): t for t in triples if t.label}
    questions = []
    for relation in sorted(quota):
        for head, tail, candidates in rng.sample(by_relation[relation], quota[relation]):
            triple = types[(head, relation, tail)]
            questions.append(Question(0, triple, is_a[relation], templates.sentence(triple), candidates))
    rng.shuffle(questions)
    for i, q in enumerate(questions, start=1):
        q.qid = i
    return questions


# --- steps 2-3: negatives ------------------------------------------------------------------


def embedding_filter(
    answer_vec: np.ndarray, cand_vecs: np.ndarray, candidates: list[str], threshold: float, keep: int, min_after: int
) -> tuple[list[str], list[tuple[str, float]], bool]:
    """Stage 2: ``(kept most-similar-first, dropped with cosine, filter skipped)``."""
    sims = cand_vecs @ answer_vec
    below = [(c, float(s)) for c, s in zip(candidates, sims) if s < threshold]
    dropped = sorted(((c, float(s)) for c, s in zip(candidates, sims) if s >= threshold), key=lambda x: -x[1])
    if len(below) < min_after:  # the notebook keeps the unfiltered pool then
        ranked = sorted(zip(candidates, sims.tolist()), key=lambda x: -x[1])
        return [c for c, _ in ranked], dropped, True
    below.sort(key=lambda x: -x[1])
    return [c for c, _ in below[:keep]], dropped, False


def mmr_pick(answer_vec: np.ndarray, cand_vecs: np.ndarray, k: int = 3, lam: float = 0.7) -> list[int]:
    """Stage-3 heuristic: maximal marginal relevance, indices of ``k`` candidates (see module doc)."""
    to_answer = cand_vecs @ answer_vec
    pairwise = cand_vecs @ cand_vecs.T
    picked: list[int] = []
    while len(picked) < min(k, len(cand_vecs)):
        best, best_score = -1, -np.inf
        for i in range(len(cand_vecs)):
            if i in picked:
                continue
            redundancy = max((pairwise[i, j] for j in picked), default=0.0)
            score = lam * to_answer[i] - (1 - lam) * redundancy if picked else to_answer[i]
            if score > best_score:
                best, best_score = i, score
        picked.append(best)
    return picked


PICK_PROMPT = {
    "zh": "给定以下#问题#和它的#答案#，请从#候选#选项里按照#要求#选出三个负例用于构造一个有一定难度的多选题的错误选项，"
    "按照#输出格式#给出选择，然后给出理由。\n#要求#\n1. 负例作为错误选项虽然不适合用于补全#问题#中的#句子#，"
    "但是有不错的混淆效果，让人难以抉择\n2. 三个易负例之间有一定差异，能涵盖较多领域。\n#输出格式#\n负例：负例1，负例2，负例3"
    "\n#问题#\n选择一个合适的短语填入空格处来补全以下*句子*，使其符合电子商务领域中的逻辑和知识。括号内是词语的标签。"
    "\n*句子*：{sentence}\n#答案#\n{answer}\n#候选#\n{candidates}",
    "en": "Given the #Question# and its #Answer# below, choose three negatives from the #Candidates# to serve as "
    "the wrong options of a fairly difficult multiple-choice question, following the #Requirements#; give "
    "your choice in the #Output format#, then your reasons.\n#Requirements#\n1. As wrong options the "
    "negatives do not fit the blank of the *sentence* in the #Question#, but they confuse well and make the "
    "choice hard.\n2. The three negatives differ from each other and cover several areas.\n#Output format#\n"
    "Negatives: negative 1, negative 2, negative 3\n#Question#\nChoose a suitable phrase to fill the blank and "
    "complete the *sentence* below so that it agrees with the facts. Words in parentheses are labels.\n"
    "*Sentence*: {sentence}\n#Answer#\n{answer}\n#Candidates#\n{candidates}",
}
_PICK_LINE = re.compile(r"(?:负例|negatives?)\s*[:：]\s*(.+)", re.I)


def parse_picks(reply: str, candidates: list[str]) -> list[str]:
    """The distinct candidates named on the reply's ``负例：`` / ``Negatives:`` line, in order."""
    match = _PICK_LINE.search(reply)
    if not match:
        return []
    picks = []
    for part in re.split(r"[，,、;；]", match.group(1)):
        name = part.strip().strip("'\"“”‘’[]【】。. ")
        if name in candidates and name not in picks:
            picks.append(name)
    return picks[:3]


JUDGE_PROMPT = {
    "zh": "下面是一道选择题和它给出的答案。请检查：这道题能否根据常识或知识作答？哪些选项是正确的（列出全部）？"
    "严格按格式输出：\n可回答：是或否\n正确选项：选项，选项\n\n题目：{question}\n给出的答案：{answer}",
    "en": "Below is a multiple-choice question with its proposed answer. Check it: can it be answered from "
    "knowledge, and which options are correct (list all of them)? Reply exactly in this format:\n"
    "Answerable: yes or no\nCorrect options: option, option\n\nQuestion: {question}\nProposed answer: {answer}",
}


def parse_judge(reply: str, options: list[str], answer: str) -> dict[str, Any]:
    """``{"verdict": pass|fail|unparsed, "answerable", "correct_options", "reply"}``."""
    answerable = re.search(r"(?:可回答|answerable)\s*[:：]\s*(是|否|yes|no)", reply, re.I)
    correct = re.search(r"(?:正确选项|correct options?)\s*[:：]\s*(.+)", reply, re.I)
    if not answerable or not correct:
        return {"verdict": "unparsed", "reply": reply}
    named = [o for o in options if o in correct.group(1)]
    ok = answerable.group(1).lower() in ("是", "yes") and named == [answer]
    return {
        "verdict": "pass" if ok else "fail",
        "answerable": answerable.group(1),
        "correct_options": named,
        "reply": reply,
    }


def _load_llm(spec: str, config: KGBuildConfig, out: Path, name: str, device: str, dtype: str) -> Any:
    from longlore.core.backends import load_text_model
    from longlore.core.devices import dtype_name, resolve

    if spec.startswith("openai:"):
        return load_text_model(spec, cache=out / f"{name}_cache.sqlite")
    where, kind = resolve(device, dtype)
    cache = out / f"{name}_{dtype_name(kind)}_cache.sqlite"  # one cache per dtype: bf16 and fp32 replies differ
    return load_text_model(spec, batch_size=config.batch_size, cache=cache, device=where, dtype=kind)


def question_text(templates: Templates, q: Question) -> str:
    return templates.instruction + q.sentence + OPTIONS_MARKER + str(q.options)


def build_kg_benchmark(
    config: KGBuildConfig,
    picker: Any | None = None,
    judge: Any | None = None,
    embedder: Any | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Run the whole pipeline (module docstring), local LLMs on ``device`` in ``dtype``; ready
    ``TextModel``/``Embedder`` objects may be passed instead of specs (tests). Returns the report."""
    start_cpu, start = resource.getrusage(resource.RUSAGE_SELF), time.time()
    out = Path(config.out)
    triples, templates = load_source(config.triples, config.templates, config.data)
    questions = make_questions(triples, templates, config)
    console.print(f"build-kg: {len(triples)} triples -> {len(questions)} questions")

    # Stage 2: one embedding per distinct text.
    spec = embedder_for(config.embedder, templates.language)
    emb = CachedEmbedder(spec, out, embedder)
    texts = sorted({q.triple.tail for q in questions} | {c for q in questions for c in q.recall})
    vectors = dict(zip(texts, emb.embed(texts)))
    for q in track(questions, "stage 2: embedding filter"):
        cand = np.stack([vectors[c] for c in q.recall])
        q.stage2, q.dropped, q.stage2_fallback = embedding_filter(
            vectors[q.triple.tail],
            cand,
            q.recall,
            config.synonym_threshold,
            config.keep_similar,
            config.min_after_filter,
        )

    # Stage 3: the LLM's picks, or the MMR heuristic (which also fills invalid LLM picks).
    heuristic = {
        q.qid: [
            q.stage2[i]
            for i in mmr_pick(
                vectors[q.triple.tail], np.stack([vectors[c] for c in q.stage2]), len(q.stage2), config.mmr_lambda
            )
        ]
        for q in questions
    }
    picker = picker or (_load_llm(config.picker, config, out, "picker", device, dtype) if config.picker else None)
    replies: dict[int, str] = {}
    if picker is not None:
        prompt = PICK_PROMPT[templates.language]
        reqs = [
            GenerationRequest(
                prompt=prompt.format(sentence=q.sentence, answer=q.triple.tail, candidates=str(q.stage2)),
                max_new_tokens=config.max_new_tokens,
            )
            for q in questions
        ]
        for start_i in track(range(0, len(reqs), 32), "stage 3: LLM picks"):
            for q, reply in zip(questions[start_i : start_i + 32], picker.generate(reqs[start_i : start_i + 32])):
                replies[q.qid] = reply[0]
    for q in questions:
        picks = parse_picks(replies[q.qid], q.stage2) if q.qid in replies else []
        q.picked_by = "llm" if len(picks) == 3 else ("llm+mmr" if picks else "mmr")
        q.negatives = picks + [c for c in heuristic[q.qid] if c not in picks][: 3 - len(picks)]
        q.options = [*q.negatives, q.triple.tail]
        random.Random(f"{config.seed}:{q.qid}").shuffle(q.options)

    # Verification.
    judge = judge or (_load_llm(config.judge, config, out, "judge", device, dtype) if config.judge else None)
    if judge is not None:
        prompt = JUDGE_PROMPT[templates.language]
        reqs = [
            GenerationRequest(
                prompt=prompt.format(question=question_text(templates, q), answer=q.triple.tail),
                max_new_tokens=config.max_new_tokens,
            )
            for q in questions
        ]
        for start_i in track(range(0, len(reqs), 32), "verification: LLM judge"):
            chunk = questions[start_i : start_i + 32]
            for q, reply in zip(chunk, judge.generate(reqs[start_i : start_i + 32])):
                q.judge = parse_judge(reply[0], q.options, q.triple.tail)
    return write_outputs(config, templates, triples, questions, start, start_cpu)


def write_outputs(
    config: KGBuildConfig,
    templates: Templates,
    triples: list[Triple],
    questions: list[Question],
    start: float,
    start_cpu: Any,
) -> dict[str, Any]:
    out = Path(config.out)
    records, queue = [], []
    for q in questions:
        t = q.triple
        record = {
            "id": q.qid,
            "question": question_text(templates, q),
            "gt": t.tail,
            "dim": "dim_2" if q.is_a else "dim_1",
            "relation": t.relation,
            "language": templates.language,
            "triple": [t.head, t.relation, t.tail],
        }
        if q.judge.get("verdict") != "fail":
            records.append(record)
        checks = {
            "judge": q.judge or {"verdict": "not run"},
            "negatives_by": q.picked_by,
            "stage2_dropped": [[c, round(s, 3)] for c, s in q.dropped],
            "stage2_filter_skipped": q.stage2_fallback,
        }
        queue.append(
            ReviewItem(
                id=f"kg-{q.qid}",
                benchmark="eckgbench",
                language=templates.language,  # type: ignore[arg-type]
                concept=t.relation,
                stem=record["question"].split(OPTIONS_MARKER)[0],
                options=q.options,
                answer=t.tail,
                evidence=[{"text": f"({t.head}, {t.relation}, {t.tail})", "source": "KG triple"}],
                checks=checks,
                record=record,
            )
        )
    write_jsonl(out / "eckgbench" / "ECKGBench.jsonl", records, overwrite=True)
    write_queue(out / "review_queue.jsonl", queue, overwrite=True)
    write_jsonl(
        out / "stages.jsonl",
        [
            {
                "id": q.qid,
                "relation": q.triple.relation,
                "answer": q.triple.tail,
                "sentence": q.sentence,
                "stage1_recall": q.recall,
                "stage2_dropped": q.dropped,
                "stage2_kept": q.stage2,
                "stage2_filter_skipped": q.stage2_fallback,
                "stage3_negatives": q.negatives,
                "stage3_by": q.picked_by,
                "options": q.options,
                "judge": q.judge,
            }
            for q in questions
        ],
        overwrite=True,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    per_relation = Counter(q.triple.relation for q in questions)
    report = {
        "config": asdict(config),
        "counts": {
            "triples": len(triples),
            "true_triples": sum(t.label for t in triples),
            "questions": len(questions),
            "is_a_questions": sum(q.is_a for q in questions),
            "with_dropped_candidates": sum(bool(q.dropped) for q in questions),
            "dropped_candidates": sum(len(q.dropped) for q in questions),
            "stage2_filter_skipped": sum(q.stage2_fallback for q in questions),
            "negatives_by": dict(Counter(q.picked_by for q in questions)),
            "judge": dict(Counter(q.judge.get("verdict", "not run") for q in questions)),
            "benchmark_items": len(records),
        },
        "per_relation": dict(sorted(per_relation.items())),
        "embedder": embedder_for(config.embedder, templates.language),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - start_cpu.ru_utime - start_cpu.ru_stime, 1),
        "wall_seconds": round(time.time() - start, 1),
    }
    write_json(out / "build_report.json", report, overwrite=True)
    return report
