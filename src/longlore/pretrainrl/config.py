"""Configuration for PretrainRL: the synthetic world and the continued-training run (one dataclass each).

Paper: "PretrainRL" (arXiv 2602.01875). Its exact objective is not public; what we implement is a
documented reading (METHODS.md §4): for a fact (s, r, o) with cloze prompt x, mined negatives y- are
the model's own high-probability wrong continuations, and the *debias* phase minimises the DPO loss
(Rafailov et al., 2023, eq. 7) of truth o over y- against a frozen reference model; the *learn* phase
raises log p(o | x); both are interleaved with ordinary next-token prediction (NTP) on the corpus.
Unlikelihood (Welleck et al., 2019) and REINFORCE with a leave-one-out baseline are options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from longlore.core.errors import LongloreError

FACT_OBJECTIVES = ("none", "sft", "pretrainrl")
DEBIAS_LOSSES = ("dpo", "unlikelihood", "reinforce")
SCHEDULES = ("phased", "interleaved")
MINE_METHODS = ("beam", "sample", "candidates")


@dataclass
class WorldConfig:
    """A seeded synthetic world in which tail facts are unknown by construction.

    Entities get Zipf-distributed corpus frequencies (count_i = max(1, round(max_count / i**zipf_s)));
    every relation has one *popular* value that most frequent entities hold and that tail entities
    never hold, so the corpus prior makes it a tempting falsehood for the tail.
    """

    n_entities: int = field(default=150, metadata={"help": "number of people in the world (3 facts each)"})
    max_count: int = field(default=120, metadata={"help": "corpus mentions of the most frequent entity"})
    zipf_s: float = field(default=1.1, metadata={"help": "Zipf exponent of entity frequency"})
    popular_head: float = field(default=0.5, metadata={"help": "P(popular value) for head entities"})
    popular_torso: float = field(default=0.3, metadata={"help": "P(popular value) for torso entities (tail: 0)"})
    head_min_count: int = field(default=8, metadata={"help": "an entity mentioned >= this often is 'head'"})
    tail_max_count: int = field(default=2, metadata={"help": "an entity mentioned <= this often is 'tail'"})
    filler_fraction: float = field(
        default=0.3, metadata={"help": "share of corpus characters that is general text (KJV)"}
    )
    n_entrenched: int = field(
        default=0,
        metadata={"help": "extra people whose false (popular-valued) biography outnumbers the true one"},
    )
    entrenched_true: int = field(default=1, metadata={"help": "corpus mentions of an entrenched person's truth"})
    entrenched_false: int = field(
        default=8, metadata={"help": "corpus mentions of an entrenched person's falsehood (the popular values)"}
    )
    heldout_docs: int = field(
        default=200, metadata={"help": "held-out documents for perplexity (fresh renderings + text)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of names, values, frequencies and renderings"})

    def __post_init__(self) -> None:
        if self.n_entities < 3:
            raise LongloreError(f"`n_entities` must be >= 3, got {self.n_entities}")
        if self.max_count < 1 or self.zipf_s <= 0:
            raise LongloreError(f"`max_count` must be >= 1 and `zipf_s` > 0, got {self.max_count}, {self.zipf_s}")
        for name in ("popular_head", "popular_torso", "filler_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise LongloreError(f"`{name}` must be in [0, 1), got {getattr(self, name)}")
        if self.n_entrenched < 0 or self.entrenched_true < 1 or self.entrenched_false < 0:
            raise LongloreError(
                "`n_entrenched` and `entrenched_false` must be >= 0 and `entrenched_true` >= 1, got "
                f"{self.n_entrenched}, {self.entrenched_false}, {self.entrenched_true}"
            )
        if self.tail_max_count >= self.head_min_count:
            raise LongloreError(
                f"`tail_max_count` ({self.tail_max_count}) must be < `head_min_count` ({self.head_min_count})"
            )


@dataclass
class PretrainRLConfig:
    """Continued training: NTP on the corpus interleaved with a fact objective.

    Every step draws ``batch_size`` corpus blocks (NTP) and ``fact_batch_size`` facts. The fact part is
    ``fact_objective``: ``none`` (continued NTP: the fact slot is another corpus batch), ``sft``
    (NLL of the answer to a question-form prompt) or ``pretrainrl`` (debias then learn on the cloze
    prompt). With ``schedule='phased'`` the first ``debias_fraction`` of steps debias and the rest
    learn; with ``'interleaved'`` every step has both terms. ``debias_fraction`` 0 = "without debias",
    1 = "debias only".
    """

    # objective
    fact_objective: str = field(default="pretrainrl", metadata={"help": f"one of {FACT_OBJECTIVES}"})
    debias_loss: str = field(default="dpo", metadata={"help": f"debias term, one of {DEBIAS_LOSSES}"})
    schedule: str = field(
        default="phased", metadata={"help": f"one of {SCHEDULES}: debias-then-learn, or both every step"}
    )
    debias_fraction: float = field(
        default=0.4, metadata={"help": "phased: share of steps spent debiasing (0 = learn only, 1 = debias only)"}
    )
    beta: float = field(default=0.1, metadata={"help": "beta of DPO (Rafailov et al. 2023, recommended 0.1-0.5)"})
    ntp_weight: float = field(
        default=1.0, metadata={"help": "alpha: weight of corpus NTP in every step (keeps perplexity)"}
    )
    debias_weight: float = field(default=1.0, metadata={"help": "weight of the debias term"})
    learn_weight: float = field(
        default=1.0, metadata={"help": "weight of the learn term -log p(truth | prompt) (per token)"}
    )
    rl_samples: int = field(
        default=4, metadata={"help": "REINFORCE: on-policy samples per prompt (leave-one-out baseline)"}
    )
    # negative mining
    num_negatives: int = field(default=4, metadata={"help": "k: mined falsehoods kept per fact"})
    mine_method: str = field(
        default="beam", metadata={"help": f"one of {MINE_METHODS}; 'candidates' ranks the fact's closed answer set"}
    )
    mine_every: int = field(
        default=50, metadata={"help": "re-mine negatives from the current model every this many steps (0 = once)"}
    )
    mine_max_new_tokens: int = field(
        default=8, metadata={"help": "generated tokens per mined continuation (cut at the first punctuation)"}
    )
    mine_batch_size: int = field(default=32, metadata={"help": "prompts per generate() call while mining"})
    # optimisation
    steps: int = field(default=200, metadata={"help": "optimizer steps (the compute budget every method shares)"})
    batch_size: int = field(default=16, metadata={"help": "corpus blocks per step"})
    block_size: int = field(default=64, metadata={"help": "tokens per corpus block"})
    fact_batch_size: int = field(default=16, metadata={"help": "facts per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (constant after warm-up)"})
    warmup: int = field(default=10, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "max global grad norm (0 = off)"})
    train_layers: int = field(
        default=0, metadata={"help": "train only the top N transformer layers (0 = all); for big models on CPU"}
    )
    eval_batch_size: int = field(default=64, metadata={"help": "sequences per forward when scoring"})
    seed: int = field(default=0, metadata={"help": "seed of batch sampling, mining samples and dropout"})
    log_every: int = field(default=25, metadata={"help": "steps between logged loss lines"})

    def __post_init__(self) -> None:
        for name, allowed in (
            ("fact_objective", FACT_OBJECTIVES),
            ("debias_loss", DEBIAS_LOSSES),
            ("schedule", SCHEDULES),
            ("mine_method", MINE_METHODS),
        ):
            if getattr(self, name) not in allowed:
                raise LongloreError(f"`{name}` is '{getattr(self, name)}'; use one of {list(allowed)}")
        if not 0 <= self.debias_fraction <= 1:
            raise LongloreError(f"`debias_fraction` must be in [0, 1], got {self.debias_fraction}")
        for name in (
            "steps",
            "batch_size",
            "block_size",
            "fact_batch_size",
            "num_negatives",
            "mine_max_new_tokens",
            "mine_batch_size",
            "eval_batch_size",
            "log_every",
            "rl_samples",
        ):
            if getattr(self, name) < 1:
                raise LongloreError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.debias_loss == "reinforce" and self.rl_samples < 2:
            raise LongloreError("`rl_samples` must be >= 2: the REINFORCE baseline leaves one sample out")
        for name in ("beta", "lr"):
            if getattr(self, name) <= 0:
                raise LongloreError(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in (
            "ntp_weight",
            "debias_weight",
            "learn_weight",
            "weight_decay",
            "grad_clip",
            "warmup",
            "mine_every",
            "train_layers",
        ):
            if getattr(self, name) < 0:
                raise LongloreError(f"`{name}` must be >= 0, got {getattr(self, name)}")

    def debias_steps(self) -> int:
        """How many of the first steps are debias steps under the phased schedule."""
        return round(self.steps * self.debias_fraction)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainRLConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LongloreError(f"unknown PretrainRLConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**data)


# The five arms of the experiment, as overrides of one base config (equal steps and batch sizes).
METHODS: dict[str, dict[str, Any]] = {
    "ntp": {"fact_objective": "none"},
    "sft": {"fact_objective": "sft"},
    "pretrainrl": {"fact_objective": "pretrainrl", "schedule": "phased"},
    "pretrainrl-no-debias": {"fact_objective": "pretrainrl", "debias_fraction": 0.0},
    "debias-only": {"fact_objective": "pretrainrl", "debias_fraction": 1.0},
    # not one of the five arms: both terms in every step instead of debias-then-learn
    "pretrainrl-interleaved": {"fact_objective": "pretrainrl", "schedule": "interleaved"},
}


def method_config(method: str, base: PretrainRLConfig) -> PretrainRLConfig:
    """``base`` with the overrides that define ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise LongloreError(f"unknown method '{method}'; use one of {list(METHODS)}")
    return replace(base, **METHODS[method])
