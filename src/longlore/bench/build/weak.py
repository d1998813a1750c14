"""ConceptMath weak-concept training (arXiv 2402.14660 §5): find a model's weakest concepts, pull
problems about them from a pool, fine-tune on those.

1. :class:`ConceptClassifier`: frozen MiniLM sentence embeddings + one linear layer, trained on
   ConceptMath's own concept labels (the leaf concept path of each question of a split).
2. :func:`problem_pool`: math word problems and exercises from reasoning-gym's generators
   (``gsm_symbolic`` and the other numeric-answer ones, set to elementary sizes), each labelled
   with the classifier's top concept.
3. :func:`bottom_concepts`: the k leaf concepts with the lowest accuracy in a ``bench run`` of the
   model (ties: more items first, then by name).
4. :func:`select_problems`: pool problems whose predicted concept is one of them, balanced
   round-robin over the k concepts, most confident first; ``control=True`` draws the same number
   uniformly from the whole pool instead (the control arm).
5. :func:`train_lora`: LoRA (``peft``) supervised fine-tuning on "problem -> Therefore, the answer
   is X." (the 5-shot answer format), loss on the answer tokens only, on the shared training loop
   (``longlore.core.training``: checkpointed, resumable, torchrun-ready).
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longlore.bench.build.config import WeakConceptConfig
from longlore.bench.build.embeddings import CachedEmbedder
from longlore.core.errors import LongloreError
from longlore.core.io import read_json, write_json, write_jsonl
from longlore.core.progress import console

ANSWER_LINE = "Therefore, the answer is {}."  # the 5-shot exemplar format of longlore.bench.prompts
# reasoning-gym generators with numeric answers, sized for elementary school (config overrides).
ELEMENTARY_GENERATORS: dict[str, dict[str, Any]] = {
    "gsm_symbolic": {},
    "basic_arithmetic": {"max_terms": 3, "max_digits": 2, "allow_negation": False},
    "chain_sum": {"max_terms": 4, "max_digits": 3},
    "decimal_arithmetic": {"min_num_decimal_places": 1, "max_num_decimal_places": 2, "max_terms": 3},
    "fraction_simplification": {"max_value": 100, "max_factor": 10, "styles": ("plain",)},
    "gcd": {"max_value": 100},
    "lcm": {"max_value": 30},
    "products": {"max_digits": 2},
    "simple_equations": {"max_value": 50},
    "simple_geometry": {},
    "leg_counting": {"max_animals": 4, "max_instances": 5},
    "number_sequence": {"max_value": 50},
    "coin_flip": {"max_trials": 6},
}
_NUMERIC = re.compile(r"^-?\d+(\.\d+)?(/\d+)?$")


# --- 1. the concept classifier --------------------------------------------------------------


class ConceptClassifier:
    """MiniLM embeddings (frozen) + a linear head over concept labels."""

    def __init__(self, embedder: Any, labels: list[str], head: torch.nn.Linear) -> None:
        self.embedder, self.labels, self.head = embedder, labels, head

    @classmethod
    def fit(
        cls,
        embedder: Any,
        texts: Sequence[str],
        labels: Sequence[str],
        epochs: int = 300,
        lr: float = 0.05,
        seed: int = 0,
    ) -> ConceptClassifier:
        """Train the head full-batch with AdamW and cross-entropy on frozen embeddings."""
        names = sorted(set(labels))
        x = torch.tensor(np.asarray(embedder.embed(list(texts))), dtype=torch.float32)  # (N, D)
        y = torch.tensor([names.index(label) for label in labels])  # (N,)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            head = torch.nn.Linear(x.shape[1], len(names))
        optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(x), y)
            loss.backward()
            optimizer.step()
        return cls(embedder, names, head.eval())

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, n_labels) class probabilities."""
        x = torch.tensor(np.asarray(self.embedder.embed(list(texts))), dtype=torch.float32)
        return torch.softmax(self.head(x), dim=-1).numpy()

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """``(label, probability)`` of the top class per text."""
        probs = self.predict_proba(texts)
        return [(self.labels[i], float(p[i])) for p, i in zip(probs, probs.argmax(1))]


def heldout_accuracy(embedder: Any, texts: list[str], labels: list[str], seed: int = 0, share: float = 0.2) -> float:
    """Accuracy of a classifier trained on the rest on a seeded ``share`` of the items."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * share)
    test, train = order[:cut], order[cut:]
    clf = ConceptClassifier.fit(embedder, [texts[i] for i in train], [labels[i] for i in train], seed=seed)
    predicted = clf.predict([texts[i] for i in test])
    return sum(p == labels[i] for (p, _), i in zip(predicted, test)) / max(len(test), 1)


# --- 2. the problem pool --------------------------------------------------------------------


def problem_pool(generators: dict[str, int], seed: int = 0) -> list[dict[str, Any]]:
    """``{"id", "generator", "question", "answer"}`` problems from reasoning-gym, numeric answers only."""
    import reasoning_gym

    pool = []
    for name, size in generators.items():
        if name not in ELEMENTARY_GENERATORS:
            raise LongloreError(f"unknown pool generator {name!r}; choose among {', '.join(ELEMENTARY_GENERATORS)}")
        data = reasoning_gym.create_dataset(name, size=size, seed=seed, **ELEMENTARY_GENERATORS[name])
        for i, entry in enumerate(data):
            answer = str(entry["answer"]).strip()
            if _NUMERIC.match(answer):
                pool.append({"id": f"{name}-{i}", "generator": name, "question": entry["question"], "answer": answer})
    return pool


def parse_generators(text: str) -> dict[str, int]:
    """``"gsm_symbolic:600,gcd:100"`` -> ``{"gsm_symbolic": 600, "gcd": 100}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, size = part.partition(":")
        if not size.isdigit():
            raise LongloreError(f"pool generator {part!r}: expected NAME:COUNT, e.g. gsm_symbolic:600")
        out[name] = int(size)
    return out


# --- 3-4. weak concepts and problem selection --------------------------------------------------


def bottom_concepts(results: dict[str, Any], task: str, k: int) -> list[dict[str, Any]]:
    """The k weakest leaf concepts of ``task`` in a ``bench run`` results JSON."""
    tree = results.get("concepts", {}).get(task)
    if not tree:
        raise LongloreError(f"results have no concept tree for {task!r}; pass the results.json of a `bench run` of it")
    leaf = tree[max(tree, key=lambda level: level.count("/"))]
    ranked = sorted(leaf, key=lambda r: (r["acc"], -r["n"], r["concept"]))
    return ranked[:k]


def select_problems(
    pool: list[dict[str, Any]], concepts: Sequence[str], n: int, control: bool = False, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to ``n`` concept-matched problems (round-robin over ``concepts``, most confident first),
    or with ``control`` a seeded uniform draw of as many as the matched set would have had."""
    buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for problem in sorted(pool, key=lambda p: -p["concept_prob"]):
        if problem["concept"] in concepts:
            buckets[problem["concept"]].append(problem)
    chosen: list[dict[str, Any]] = []
    while len(chosen) < n and any(buckets.values()):
        for concept in concepts:
            if buckets[concept] and len(chosen) < n:
                chosen.append(buckets[concept].pop(0))
    if control:
        return random.Random(seed).sample(pool, len(chosen))
    return chosen


# --- 5. LoRA fine-tuning ----------------------------------------------------------------------


def encode_example(tokenizer: Any, question: str, answer: str, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one chat-formatted example; prompt tokens get label -100."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    target = ANSWER_LINE.format(answer) + (tokenizer.eos_token or "")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    t_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    p_ids = p_ids[-(max_length - len(t_ids)) :] if len(p_ids) + len(t_ids) > max_length else p_ids
    return p_ids + t_ids, [-100] * len(p_ids) + t_ids


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids, attention_mask, labels (padding ignored)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def compute_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer tokens of a batch.

    Logits are computed only at the positions that predict an answer token in some row
    (``logits_to_keep``): the (B, T, V) logits of the 49k-token vocabulary are most of a
    fine-tune's memory on CPU, and the prompt positions carry no loss. Same value as the full
    computation."""
    targets = batch["labels"][:, 1:]  # (B, T-1): the token each position predicts
    keep = (targets != -100).any(0).nonzero().squeeze(1)  # (K,) positions with a loss in some row
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep)
    logits = out.logits.float()  # (B, K, V)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets[:, keep].reshape(-1), ignore_index=-100
    )


def add_lora(model: Any, config: WeakConceptConfig) -> Any:
    """Wrap ``model`` with LoRA adapters (peft) on the attention and MLP projections; the adapters'
    random init is drawn from ``config.seed`` (a rerun starts from the same weights)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=[m.strip() for m in config.target_modules.split(",")],
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return get_peft_model(model, lora)


def train_lora(
    model: Any, tokenizer: Any, examples: list[dict[str, Any]], config: WeakConceptConfig, folder: Path
) -> dict[str, Any]:
    """Fine-tune ``model`` (already wrapped by :func:`add_lora`) on ``examples`` with the shared
    training loop (AdamW, 10% warm-up, cosine decay, clipping at 1.0); ``folder/checkpoint.pt`` is
    written every ``save_every`` steps and a rerun resumes from it. Returns steps, loss log, cost."""
    from longlore.core.training import EpochBatches, TrainingArgs, train_loop

    rows = [encode_example(tokenizer, e["question"], e["answer"], config.max_length) for e in examples]
    steps = math.ceil(len(rows) / config.batch_size) * config.epochs
    args = TrainingArgs(
        steps=steps,
        lr=config.lr,
        warmup_steps=max(1, steps // 10),
        schedule="cosine",
        grad_clip=1.0,
        checkpoint_every=config.save_every,
        seed=config.seed,
        stop_after=config.stop_after,
    )

    def loss_fn(model: Any, items: list[tuple[list[int], list[int]]], ctx: Any) -> torch.Tensor:
        return compute_loss(model, collate(items, tokenizer.pad_token_id))

    if config.gradient_checkpointing:
        # Non-reentrant checkpointing replays each layer with the saved RNG state, so LoRA dropout
        # draws the same masks: the same updates as without, for a fraction of the activations.
        # (transformers >= 5 names it activation checkpointing; the old name warns there.)
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    result = train_loop(
        model, loss_fn, EpochBatches(rows, config.batch_size, config.seed), args, folder, description="LoRA fine-tune"
    )
    model.eval()
    if config.gradient_checkpointing:
        (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
    return {"steps": result.step, "finished": result.finished, "log": result.history, "cost": result.cost}


# --- the command ------------------------------------------------------------------------------


def conceptmath_texts(split: str, root: str | None) -> tuple[list[str], list[str]]:
    """Questions and leaf concept paths of one ConceptMath split."""
    from longlore.bench.data import load_benchmark

    items = load_benchmark("conceptmath", split, root)
    return [it.question for it in items], [it.concept_path for it in items]


def run_weak_concepts(
    config: WeakConceptConfig, embedder: Any | None = None, device: str = "cpu", dtype: str = "float32"
) -> dict[str, Any]:
    """``bench weak-concepts``: classifier, pool, bottom-k, selection, LoRA fine-tune; writes the
    adapter (``out/adapter``, PEFT format) and the merged model (``out/final``, a model folder any
    ``--model`` option takes)."""
    from longlore.core.models import load_causal_lm

    out = Path(config.out)
    results_path = Path(config.results)
    results = read_json(results_path / "results.json" if results_path.is_dir() else results_path)
    task = f"conceptmath/{config.split}"
    weakest = bottom_concepts(results, task, config.k)
    names = [r["concept"] for r in weakest]
    emb = embedder or CachedEmbedder(config.embedder, out)
    texts, labels = conceptmath_texts(config.split, config.data)
    classifier = ConceptClassifier.fit(emb, texts, labels, seed=config.seed)
    pool = problem_pool(parse_generators(config.generators), seed=config.seed)
    for problem, (concept, prob) in zip(pool, classifier.predict([p["question"] for p in pool])):
        problem.update(concept=concept, concept_prob=round(prob, 4))
    chosen = select_problems(pool, names, config.n_train, control=config.control, seed=config.seed)
    if not chosen:
        raise LongloreError(f"no pool problem was labelled with the bottom-{config.k} concepts; grow the pool")
    write_jsonl(out / "pool.jsonl", pool, overwrite=True)
    write_jsonl(out / "train.jsonl", chosen, overwrite=True)
    model, tokenizer = load_causal_lm(config.model, device=device, dtype=dtype)
    model = add_lora(model, config)
    train = train_lora(model, tokenizer, chosen, config, out)
    if not train["finished"]:
        console.print(f"stopped at step {train['steps']} (--stop-after); rerun the same command to resume")
        return {"stopped_at": train["steps"]}
    model.save_pretrained(out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "final")
    tokenizer.save_pretrained(out / "final")
    summary = {
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "task": task,
        "bottom_concepts": names,
        "bottom_concepts_before": weakest,
        "n_train": len(chosen),
        "train_concepts": dict(sorted(_count(p["concept"] for p in chosen).items())),
        "train_generators": dict(sorted(_count(p["generator"] for p in chosen).items())),
        "pool_size": len(pool),
        "train_cost": train["cost"],
        "loss_first": train["log"][0]["loss"] if train["log"] else None,
        "loss_last": train["log"][-1]["loss"] if train["log"] else None,
        "adapter": str(out / "adapter"),
        "final": str(out / "final"),
    }
    write_json(out / "summary.json", summary, overwrite=True)
    write_json(out / "loss.json", train["log"], overwrite=True)
    return summary


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    return counts
