"""Config dataclasses of the construction pipelines (one per command; each field is a CLI option).

Kept free of heavy imports so that ``longlore --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from longlore.core.errors import LongloreError


@dataclass
class KGBuildConfig:
    """Settings of one ``build-kg`` run (every field is a CLI option)."""

    triples: str = field(metadata={"help": "triples TSV/JSONL, or movielens-freebase | umls | eckgbench-official"})
    templates: str | None = field(
        default=None, metadata={"help": "relation templates YAML (default: the named source's shipped templates)"}
    )
    out: str = field(default="runs/build-kg", metadata={"help": "output folder (benchmark, queue, stages, cache)"})
    n_questions: int = field(default=300, metadata={"help": "questions to build"})
    is_a_share: float = field(default=0.46, metadata={"help": "share of questions from is-a relations (dim_2)"})
    min_candidates: int = field(default=10, metadata={"help": "recall candidates a question needs (stage 1)"})
    recall: Literal["labelled+relation", "labelled"] = field(
        default="labelled+relation",
        metadata={"help": "stage-1 pool: false-labelled tails plus the relation's tails, or false-labelled only"},
    )
    embedder: str = field(default="auto", metadata={"help": "auto (minilm en / e5-small zh), or an embedder spec"})
    synonym_threshold: float = field(default=0.80, metadata={"help": "stage 2: drop candidates this close or closer"})
    keep_similar: int = field(default=15, metadata={"help": "stage 2: candidates kept (most similar first)"})
    min_after_filter: int = field(
        default=5, metadata={"help": "stage 2: with fewer survivors the filter is skipped (authors' rule)"}
    )
    picker: str | None = field(
        default=None, metadata={"help": "stage 3 LLM (model spec or openai:MODEL@URL); none: MMR heuristic"}
    )
    mmr_lambda: float = field(default=0.7, metadata={"help": "stage-3 heuristic: weight of similarity to the answer"})
    judge: str | None = field(default=None, metadata={"help": "verification LLM (model spec or openai:MODEL@URL)"})
    seed: int = field(default=0, metadata={"help": "sampling and shuffling seed"})
    data: str | None = field(default=None, metadata={"help": "benchmark data folder (for eckgbench-official)"})
    batch_size: int = field(default=8, metadata={"help": "local model batch size"})
    max_new_tokens: int = field(default=64, metadata={"help": "generation budget of picker and judge"})

    def __post_init__(self) -> None:
        if self.n_questions < 1:
            raise LongloreError(f"n_questions must be >= 1 (got {self.n_questions})")
        if not 0 <= self.is_a_share <= 1:
            raise LongloreError(f"is_a_share must be in [0, 1] (got {self.is_a_share})")
        if not 0 < self.synonym_threshold <= 1:
            raise LongloreError(f"synonym_threshold must be in (0, 1] (got {self.synonym_threshold})")
        if self.keep_similar < 3:
            raise LongloreError(f"keep_similar must be >= 3 to leave 3 negatives (got {self.keep_similar})")
        if self.recall not in ("labelled+relation", "labelled"):
            raise LongloreError(f"recall must be labelled+relation or labelled (got {self.recall!r})")


@dataclass
class WeakConceptConfig:
    """Settings of one ``weak-concepts`` run (every field is a CLI option)."""

    results: str = field(metadata={"help": "a `bench run` folder (or its results.json) with a ConceptMath task"})
    model: str = field(default="smollm2-135m", metadata={"help": "model to fine-tune (spec or checkpoint folder)"})
    out: str = field(default="runs/weak-concepts", metadata={"help": "output folder (pool, train set, adapter)"})
    split: str = field(default="element_en", metadata={"help": "ConceptMath split whose concepts are used"})
    k: int = field(default=10, metadata={"help": "number of weakest leaf concepts to train on"})
    generators: str = field(
        default="gsm_symbolic:600,basic_arithmetic:80,chain_sum:80,decimal_arithmetic:80,fraction_simplification:80,"
        "gcd:80,lcm:80,products:80,simple_equations:80,simple_geometry:80,leg_counting:80,number_sequence:80,"
        "coin_flip:80",
        metadata={"help": "reasoning-gym pool: NAME:COUNT,... (elementary-sized settings)"},
    )
    n_train: int = field(default=240, metadata={"help": "problems to fine-tune on"})
    control: bool = field(
        default=False, metadata={"help": "control arm: as many problems drawn at random from the pool"}
    )
    embedder: str = field(default="minilm", metadata={"help": "sentence embedder of the concept classifier"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        metadata={"help": "comma-separated module names that get adapters"},
    )
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (warm-up 10%, cosine decay)"})
    epochs: int = field(default=2, metadata={"help": "passes over the selected problems"})
    batch_size: int = field(default=8, metadata={"help": "examples per step"})
    max_length: int = field(default=320, metadata={"help": "tokens per example (prompt cut from the left)"})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "recompute each layer in the backward pass: the same updates, less activation memory, more compute"
        },
    )
    save_every: int = field(default=10, metadata={"help": "checkpoint every N steps (a rerun resumes from it)"})
    stop_after: int | None = field(
        default=None, metadata={"help": "stop after this step (after a checkpoint); rerun to resume"}
    )
    seed: int = field(default=0, metadata={"help": "pool, selection, classifier and shuffling seed"})
    data: str | None = field(default=None, metadata={"help": "benchmark data folder"})

    def __post_init__(self) -> None:
        if self.k < 1 or self.n_train < 1 or self.epochs < 1 or self.batch_size < 1:
            raise LongloreError("k, n_train, epochs and batch_size must all be >= 1")


@dataclass
class QABuildConfig:
    """Settings of one ``build-qa`` run (every field is a CLI option)."""

    corpus: str = field(
        metadata={
            "help": "text file(s) or folder (one passage per blank-line paragraph), JSONL with `text`, "
            "or ecom-world | ecom-world:en | ecom-world:zh"
        }
    )
    out: str = field(default="runs/build-qa", metadata={"help": "output folder (benchmark, queue, stages, cache)"})
    generator: str = field(default="smollm2-135m", metadata={"help": "question writer: model spec or openai:MODEL@URL"})
    validator: str | None = field(
        default="generator", metadata={"help": "LLM rule check: `generator`, a model spec, or none to skip"}
    )
    panel: str = field(
        default="generator",
        metadata={"help": "difficulty panel, comma-separated specs (`generator` = the generator); none to skip"},
    )
    concepts: str = field(default="BC,AC,CC", metadata={"help": "ChineseEcomQA concepts to generate: BC, AC, CC, IDC"})
    max_passages: int = field(default=40, metadata={"help": "passages sampled per language (0: all)"})
    top_k: int = field(default=3, metadata={"help": "passages the fact check retrieves"})
    embedder: str = field(default="auto", metadata={"help": "auto (minilm en / e5-small zh), or an embedder spec"})
    max_answer_chars: int = field(default=20, metadata={"help": "longest Chinese answer (characters)"})
    max_answer_words: int = field(default=6, metadata={"help": "longest English answer (words)"})
    n_examples: int = field(default=2, metadata={"help": "few-shot examples in each item's system prompt"})
    max_new_tokens: int = field(default=48, metadata={"help": "generation budget of the generator"})
    batch_size: int = field(default=8, metadata={"help": "local model batch size"})
    seed: int = field(default=0, metadata={"help": "passage sampling and example seed"})

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise LongloreError(f"top_k must be >= 1 (got {self.top_k})")
