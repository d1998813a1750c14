"""``bench build-qa``: ChineseEcomQA-style items built from a corpus (arXiv 2502.20196 §3).

Stages, each counted in ``build_report.json`` and recorded per item in ``stages.jsonl``:

1. **Generation.** For every sampled passage and concept type, the generator LLM writes one
   question and a short answer grounded in the passage (one worked example in the prompt; Chinese
   prompts for Chinese passages). Concepts built from free text: BC (brand), AC (attribute), CC
   (category), IDC (industry fact); the other six ChineseEcomQA concepts need structured inputs
   (candidate lists, user profiles, reviews) and are not generated.
2. **Rule validation** (:func:`rule_checks`): the answer is present and short, the question is a
   question, does not contain its answer, has no time-sensitive wording ("currently", "最新") and
   no subjective wording ("best", "推荐"), the answer names one thing (no list or "or"), and no
   earlier item asked the same question.
3. **LLM validation**: a validator LLM is asked whether the item is objective, has one short
   unique answer and will not change over time; the item stays when it says yes.
4. **Retrieval fact check**: the question is run against the same corpus with BM25 (``bm25s``)
   and embeddings fused by reciprocal rank; the item stays when a top-k passage contains the
   answer, and that passage is stored as its evidence.
5. **Difficulty filter**: every panel model answers the item as the benchmark will ask it
   (system prompt with examples, greedy); items every panel model gets right are dropped
   (graded by the harness's judge-free normalised match).
6. **Human review**: the rest go to ``review_queue.jsonl`` (see ``bench review``).

Output: ``chineseecomqa/ChineseEcomQA.jsonl`` in the official record format ``{system_prompt,
prompt, gt, task}`` (plus ``language``, ``evidence`` and ``source_passage``), which ``longlore bench
run --task chineseecomqa/BC --data OUT`` scores. LLM calls go through SQLite request caches in
``out``, so a rerun resumes.
"""

from __future__ import annotations

import random
import re
import resource
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from longlore.bench.build.config import QABuildConfig
from longlore.bench.build.embeddings import CachedEmbedder, embedder_for
from longlore.bench.build.queue import ReviewItem, write_queue
from longlore.bench.build.retrieval import HybridRetriever, is_chinese
from longlore.core.backends import GenerationRequest
from longlore.core.errors import LongloreError
from longlore.core.io import iter_jsonl_numbered, write_json, write_jsonl
from longlore.core.metrics import normalize_answer
from longlore.core.progress import console, track

# Per concept: the official task name, what to ask about, and one worked example per language
# (about a product that is not in any corpus, so the example leaks nothing).
_EXAMPLE = {
    "en": "The Brisa linen shirt is a shirt from Tavo, a brand from Portugal. It features material linen, "
    "colour sand, offers breathable, is made for summer travel and suits men. It costs 59.0 yuan.",
    "zh": "塔沃亚麻透气衬衫是葡萄牙品牌塔沃推出的衬衫，材质为亚麻，颜色为沙色，主打透气，适合夏季旅行场景，"
    "适用人群为男性，售价59.0元。",
}
CONCEPTS: dict[str, dict[str, Any]] = {
    "BC": {
        "task": {"zh": "品牌知识问答", "en": "brand knowledge QA"},
        "ask": {
            "zh": "商品的品牌（例如品牌来自哪个国家）",
            "en": "the product's brand (for example the country it comes from)",
        },
        "example": {
            "zh": ("塔沃品牌来自哪个国家？", "葡萄牙"),
            "en": ("Which country does the brand Tavo come from?", "Portugal"),
        },
    },
    "AC": {
        "task": {"zh": "功能属性问答", "en": "attribute QA"},
        "ask": {
            "zh": "商品的一个属性（例如材质、颜色、容量）",
            "en": "one attribute of the product (material, colour or size)",
        },
        "example": {
            "zh": ("塔沃亚麻透气衬衫的材质是什么？", "亚麻"),
            "en": ("What is the material of the Brisa linen shirt?", "linen"),
        },
    },
    "CC": {
        "task": {"zh": "商品品类问答", "en": "product category QA"},
        "ask": {"zh": "商品属于哪个品类", "en": "the product category the product belongs to"},
        "example": {
            "zh": ("塔沃亚麻透气衬衫属于哪个品类？", "衬衫"),
            "en": ("Which product category does the Brisa linen shirt belong to?", "shirt"),
        },
    },
    "IDC": {
        "task": {"zh": "行业知识问答", "en": "industry knowledge QA"},
        "ask": {
            "zh": "段落中的一个电商事实（例如适用场景或人群）",
            "en": "an e-commerce fact in the passage (its use or audience)",
        },
        "example": {
            "zh": ("塔沃亚麻透气衬衫适合什么场景？", "夏季旅行"),
            "en": ("What occasion is the Brisa linen shirt made for?", "summer travel"),
        },
    },
}
INSTRUCTION = {
    "en": "Write one question about {ask} that the passage below answers, and its short answer (a few words "
    "copied from the passage). Reply in exactly this format:\nQuestion: ...\nAnswer: ...\n\nPassage: {passage}",
    "zh": "阅读下面的段落，就{ask}写一个段落能回答的问题，并给出简短答案（从段落中摘取几个字）。严格按格式输出：\n问题：……\n答案：……"
    "\n\n段落：{passage}",
}
REPLY = {"en": "Question: {q}\nAnswer: {a}", "zh": "问题：{q}\n答案：{a}"}
_QA_RE = {
    "en": re.compile(r"question\s*:\s*(?P<q>.+?)\s*\n+\s*answer\s*:\s*(?P<a>[^\n]+)", re.I | re.S),
    "zh": re.compile(r"问题\s*[:：]\s*(?P<q>.+?)\s*\n+\s*答案\s*[:：]\s*(?P<a>[^\n]+)", re.S),
}
TIME_WORDS = re.compile(
    r"\b(currently|current|now|nowadays|today|this year|latest|recent(ly)?|newest|these days)\b|今年|目前|现在|最近|最新|近期|当前|今天",
    re.I,
)
SUBJECTIVE = re.compile(
    r"\b(best|better|worst|favou?rite|beautiful|nicest|recommend\w*|should|worth)\b|最好|更好|推荐|好看|值得|喜欢|应该|最佳",
    re.I,
)
LIST_MARKS = re.compile(r"、|；|;|\bor\b|\band\b|或者|或|以及|,\s")
QUESTION_ZH = re.compile(r"[？?]$|什么|哪|多少|几|吗|是否|谁")
VALIDATE_PROMPT = {
    "en": "Is this question objective, with exactly one short correct answer that will not change over time? "
    "Reply yes or no.\nQuestion: {q}\nAnswer: {a}",
    "zh": "这个问题是否客观、只有唯一的简短正确答案，并且答案不会随时间变化？只回答是或否。\n问题：{q}\n答案：{a}",
}
SYSTEM_HEAD = {
    "zh": "任务：{task}\n仿照示例回答事实性短语或短句。\n#### 以下是一些示例：\n",
    "en": "Task: {task}\nAnswer with a short factual phrase, following the examples.\n#### Examples:\n",
}
SYSTEM_TAIL = {"zh": "让我们开始吧！\n", "en": "Let's begin!\n"}
PROMPT = {"zh": "***query***：{q}\n***答案***：", "en": "***query***: {q}\n***answer***: "}


def parse_qa(reply: str, language: str) -> tuple[str, str] | None:
    """``(question, answer)`` from a generator reply, or None."""
    match = _QA_RE[language].search(reply)
    if not match:
        return None
    question = " ".join(match.group("q").split())
    answer = match.group("a").strip().strip("。.").strip()
    return (question, answer) if question and answer else None


def rule_checks(question: str, answer: str, language: str, config: QABuildConfig) -> dict[str, bool]:
    """Each rule of stage 2 -> passed?"""
    norm_q, norm_a = normalize_answer(question), normalize_answer(answer)
    short = (
        len(answer) <= config.max_answer_chars if language == "zh" else len(answer.split()) <= config.max_answer_words
    )
    is_question = bool(QUESTION_ZH.search(question)) if language == "zh" else question.rstrip().endswith("?")
    return {
        "answer_present": bool(norm_a),
        "answer_short": short,
        "is_question": is_question and len(question) >= 6,
        "answer_not_in_question": bool(norm_a) and norm_a not in norm_q,
        "not_time_sensitive": not TIME_WORDS.search(question + " " + answer),
        "objective": not SUBJECTIVE.search(question),
        "single_answer": not LIST_MARKS.search(answer),
    }


def parse_yes_no(reply: str) -> bool | None:
    """The first yes/no (是/否) of a reply; None when it has neither."""
    match = re.search(r"\b(yes|no)\b|(是|否|不是)", reply.strip(), re.I)
    if not match:
        return None
    word = match.group(0).lower()
    return word in ("yes", "是")


def read_corpus(spec: str, seed: int = 0) -> list[dict[str, str]]:
    """Passages ``{"id", "text", "language"}`` from files, a folder, JSONL or the e-commerce world."""
    if spec.startswith("ecom-world"):
        from longlore.core.text import EcomWorld

        languages = [spec.split(":", 1)[1]] if ":" in spec else ["en", "zh"]
        if not set(languages) <= {"en", "zh"}:
            raise LongloreError(f"corpus {spec!r}: use ecom-world, ecom-world:en or ecom-world:zh")
        world = EcomWorld.generate(seed)
        return [
            {"id": f"{lang}-{p.id}", "text": world.describe(p, lang), "language": lang}
            for lang in languages
            for p in world.products
        ]
    path = Path(spec)
    files = sorted(path.rglob("*.txt")) + sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    passages = []
    for file in files:
        if not file.is_file():
            raise LongloreError(f"{file}: no such corpus file; pass text/JSONL files, a folder, or ecom-world")
        if file.suffix == ".jsonl":
            for line, rec in iter_jsonl_numbered(file):
                if not str(rec.get("text", "")).strip():
                    raise LongloreError(f"{file}:{line}: missing or empty field 'text'")
                passages.append({"id": str(rec.get("id", f"{file.stem}-{line}")), "text": str(rec["text"]).strip()})
        else:
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", file.read_text(encoding="utf-8")) if p.strip()]
            passages += [{"id": f"{file.stem}-{i}", "text": p} for i, p in enumerate(paragraphs, start=1)]
    for p in passages:
        p.setdefault("language", "zh" if is_chinese(p["text"]) else "en")
    if not passages:
        raise LongloreError(f"corpus {spec}: no passages found")
    return passages


def _model(spec: str, config: QABuildConfig, out: Path, name: str, device: str, dtype: str) -> Any:
    """A cached text model; the cache key names the dtype, so bf16 and fp32 runs never mix."""
    from longlore.core.backends import CachedTextModel, HFTextModel, load_text_model
    from longlore.core.devices import dtype_name, resolve
    from longlore.core.models import load_causal_lm

    if spec.startswith("openai:"):
        return load_text_model(spec, cache=out / f"{name}_cache.sqlite")
    where, kind = resolve(device, dtype)
    model, tokenizer = load_causal_lm(spec, device=where, dtype=kind)
    inner = HFTextModel(model, tokenizer, batch_size=config.batch_size, model_id=f"{spec}:{dtype_name(kind)}")
    return CachedTextModel(inner, out / f"{name}_cache.sqlite")


def _generate(model: Any, requests: list[GenerationRequest], label: str) -> list[str]:
    out: list[str] = []
    for start in track(range(0, len(requests), 32), label):
        out += [r[0] for r in model.generate(requests[start : start + 32])]
    return out


def system_prompt(concept: str, language: str, examples: list[dict[str, Any]]) -> str:
    head = SYSTEM_HEAD[language].format(task=CONCEPTS[concept]["task"][language])
    body = "".join(PROMPT[language].format(q=e["question"]) + e["answer"] + "\n\n" for e in examples)
    return head + body + SYSTEM_TAIL[language]


def build_qa_benchmark(
    config: QABuildConfig,
    generator: Any | None = None,
    validator: Any | None = None,
    panel: list | None = None,
    embedder: Any | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Run the pipeline (module docstring) with local models on ``device`` in ``dtype``; ready
    models may be passed instead (tests). Returns the report."""
    start_cpu, start = resource.getrusage(resource.RUSAGE_SELF), time.time()
    out = Path(config.out)
    concepts = [c.strip() for c in config.concepts.split(",") if c.strip()]
    unknown = [c for c in concepts if c not in CONCEPTS]
    if unknown:
        raise LongloreError(f"concepts {unknown} cannot be generated from text; choose among {', '.join(CONCEPTS)}")
    corpus = read_corpus(config.corpus, config.seed)
    rng = random.Random(config.seed)
    sampled = []
    for language in ("en", "zh"):
        group = [p for p in corpus if p["language"] == language]
        n = config.max_passages or len(group)
        sampled += sorted(rng.sample(group, min(n, len(group))), key=lambda p: p["id"])
    console.print(f"build-qa: {len(corpus)} passages, {len(sampled)} sampled, concepts {concepts}")

    # 1. generation
    generator = generator or _model(config.generator, config, out, "generator", device, dtype)
    items: list[dict[str, Any]] = []
    requests = []
    for p in sampled:
        lang = p["language"]
        for concept in concepts:
            info = CONCEPTS[concept]
            q, a = info["example"][lang]
            messages = [
                {"role": "user", "content": INSTRUCTION[lang].format(ask=info["ask"][lang], passage=_EXAMPLE[lang])},
                {"role": "assistant", "content": REPLY[lang].format(q=q, a=a)},
                {"role": "user", "content": INSTRUCTION[lang].format(ask=info["ask"][lang], passage=p["text"])},
            ]
            requests.append(GenerationRequest(prompt=messages, max_new_tokens=config.max_new_tokens))
            items.append({"id": f"qa-{len(items) + 1}", "passage": p["id"], "language": lang, "concept": concept})
    for item, reply in zip(items, _generate(generator, requests, "generation")):
        parsed = parse_qa(reply, item["language"])
        item.update(reply=reply, question=parsed[0] if parsed else "", answer=parsed[1] if parsed else "")
        item["stage"] = "generated" if parsed else "unparsed"

    # 2. rules (plus: a question already asked, e.g. about another product of the same brand, is a duplicate)
    seen: set[str] = set()
    for item in items:
        if item["stage"] == "generated":
            item["rules"] = rule_checks(item["question"], item["answer"], item["language"], config)
            key = normalize_answer(item["question"])
            item["rules"]["unique_question"] = key not in seen
            seen.add(key)
            item["stage"] = "rules" if all(item["rules"].values()) else "failed_rules"

    # 3. LLM validation
    alive = [it for it in items if it["stage"] == "rules"]
    if config.validator and config.validator != "none" and alive:
        if validator is None:
            validator = (
                generator
                if config.validator == "generator"
                else _model(config.validator, config, out, "validator", device, dtype)
            )
        reqs = [
            GenerationRequest(
                prompt=VALIDATE_PROMPT[it["language"]].format(q=it["question"], a=it["answer"]), max_new_tokens=8
            )
            for it in alive
        ]
        for it, reply in zip(alive, _generate(validator, reqs, "LLM validation")):
            it["llm_check"] = {"reply": reply, "verdict": parse_yes_no(reply)}
            it["stage"] = "llm_valid" if it["llm_check"]["verdict"] else "failed_llm_check"
    else:
        for it in alive:
            it["stage"] = "llm_valid"

    # 4. retrieval fact check, per language (BM25 + embeddings over the whole corpus)
    passages_by_id = {p["id"]: p for p in corpus}
    for lang in ("en", "zh"):
        alive = [it for it in items if it["stage"] == "llm_valid" and it["language"] == lang]
        if not alive:
            continue
        docs = [p for p in corpus if p["language"] == lang]
        emb = CachedEmbedder(embedder_for(config.embedder, lang), out, embedder)
        retriever = HybridRetriever([d["text"] for d in docs], emb)
        for it in track(alive, f"fact check ({lang})"):
            hits = retriever.search(it["question"], k=config.top_k)
            answer = normalize_answer(it["answer"])
            support = [h for h in hits if answer and answer in normalize_answer(docs[h["index"]]["text"])]
            it["retrieval"] = {
                "retrieved": [docs[h["index"]]["id"] for h in hits],
                "source_retrieved": it["passage"] in [docs[h["index"]]["id"] for h in hits],
                "supported": bool(support),
            }
            if support:
                best = support[0]
                it["evidence"] = {
                    "text": docs[best["index"]]["text"],
                    "source": docs[best["index"]]["id"],
                    "score": best["score"],
                }
                it["stage"] = "fact_checked"
            else:
                it["stage"] = "failed_fact_check"

    # System prompts: examples drawn from other fact-checked items of the same concept and language.
    checked = [it for it in items if it["stage"] == "fact_checked"]
    for it in checked:
        others = [
            o for o in checked if o["concept"] == it["concept"] and o["language"] == it["language"] and o is not it
        ]
        examples = random.Random(f"{config.seed}:{it['id']}").sample(others, min(config.n_examples, len(others)))
        it["system_prompt"] = system_prompt(it["concept"], it["language"], examples)
        it["prompt"] = PROMPT[it["language"]].format(q=it["question"])

    # 5. difficulty filter
    from longlore.bench.ecomqa import fallback_grade

    specs = [] if config.panel in ("", "none") else [s.strip() for s in config.panel.split(",") if s.strip()]
    if panel is None:
        panel = [
            generator if s == "generator" else _model(s, config, out, f"panel{i}", device, dtype)
            for i, s in enumerate(specs)
        ]
    if panel and checked:
        reqs = [GenerationRequest(prompt=it["prompt"], system=it["system_prompt"], max_new_tokens=32) for it in checked]
        verdicts = {it["id"]: [] for it in checked}
        for i, member in enumerate(panel):
            for it, reply in zip(checked, _generate(member, reqs, f"difficulty panel {i + 1}/{len(panel)}")):
                verdicts[it["id"]].append(
                    {
                        "model": getattr(member, "model_id", str(i)),
                        "reply": reply,
                        "letter": fallback_grade(it["answer"], reply, it["question"]),
                    }
                )
        for it in checked:
            it["panel"] = verdicts[it["id"]]
            it["stage"] = "too_easy" if all(v["letter"] == "A" for v in it["panel"]) else "kept"
    else:
        for it in checked:
            it["stage"] = "kept"
    return _write(config, items, len(corpus), len(sampled), start, start_cpu, passages_by_id)


STAGE_ORDER = [
    (
        "generated",
        {
            "generated",
            "failed_rules",
            "rules",
            "failed_llm_check",
            "llm_valid",
            "failed_fact_check",
            "fact_checked",
            "too_easy",
            "kept",
        },
    ),
    ("rule_valid", {"rules", "failed_llm_check", "llm_valid", "failed_fact_check", "fact_checked", "too_easy", "kept"}),
    ("llm_valid", {"llm_valid", "failed_fact_check", "fact_checked", "too_easy", "kept"}),
    ("fact_checked", {"fact_checked", "too_easy", "kept"}),
    ("difficulty_kept", {"kept"}),
]


def _write(config, items, n_corpus, n_sampled, start, start_cpu, passages_by_id) -> dict[str, Any]:
    out = Path(config.out)
    kept = [it for it in items if it["stage"] == "kept"]
    records, queue = [], []
    for it in kept:
        record = {
            "system_prompt": it["system_prompt"],
            "prompt": it["prompt"],
            "gt": it["answer"],
            "task": it["concept"],
            "language": it["language"],
            "evidence": it["evidence"]["text"],
            "source_passage": it["passage"],
        }
        records.append(record)
        queue.append(
            ReviewItem(
                id=it["id"],
                benchmark="chineseecomqa",
                language=it["language"],
                concept=it["concept"],
                stem=it["prompt"],
                answer=it["answer"],
                evidence=[
                    it["evidence"],
                    {"text": passages_by_id[it["passage"]]["text"], "source": f"source passage {it['passage']}"},
                ],
                checks={k: it[k] for k in ("rules", "llm_check", "retrieval", "panel") if k in it},
                record=record,
            )
        )
    write_jsonl(out / "chineseecomqa" / "ChineseEcomQA.jsonl", records, overwrite=True)
    write_queue(out / "review_queue.jsonl", queue, overwrite=True)
    write_jsonl(out / "stages.jsonl", items, overwrite=True)
    counts = {"passages": n_corpus, "sampled_passages": n_sampled, "requests": len(items)}
    counts.update({name: sum(it["stage"] in stages for it in items) for name, stages in STAGE_ORDER})
    by_language = {
        lang: {
            name: sum(it["stage"] in stages and it["language"] == lang for it in items) for name, stages in STAGE_ORDER
        }
        for lang in ("en", "zh")
    }
    rules_failed = Counter(rule for it in items for rule, ok in it.get("rules", {}).items() if not ok)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "config": asdict(config),
        "stage_counts": counts,
        "stage_counts_by_language": by_language,
        "stage_counts_by_concept": {
            c: {name: sum(it["stage"] in stages and it["concept"] == c for it in items) for name, stages in STAGE_ORDER}
            for c in sorted({it["concept"] for it in items})
        },
        "rule_failures": dict(rules_failed.most_common()),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - start_cpu.ru_utime - start_cpu.ru_stime, 1),
        "wall_seconds": round(time.time() - start, 1),
    }
    write_json(out / "build_report.json", report, overwrite=True)
    return report
