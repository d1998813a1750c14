"""Configuration of CET and of the fine-tuning baselines it is compared with.

One dataclass holds every method's knobs (grouped by method below) because the methods share the
scorer, the optimiser and the data; ``__post_init__`` rejects values that cannot work, naming the
field and the fix. Symbols follow the papers: W0 and theta (CET, arXiv 2306.10790), lambda (EWC,
Kirkpatrick et al. 2017), gamma / k / t0 (RecAdam, Chen et al. 2020), lambda / eps (R3F,
Aghajanyan et al. 2021), p (Mixout, Lee et al. 2020), p_D (ChildTune-D, Xu et al. 2021).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from longlore.core.errors import LongloreError

METHODS = ("cet", "vanilla", "ewc", "recadam", "r3f", "mixout", "childtune", "frozen")
NEIGHBOUR_SPACES = ("feature", "answer")
CET_VARIANTS = ("mixture", "joint")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LongloreError(f"`{name}` is '{value}'; expected one of: {', '.join(allowed)}")


@dataclass
class CETConfig:
    """Fine-tuning a multiple-choice scorer with CET or a baseline.

    Args:
        method: ``cet`` (causal effect tuning), ``vanilla`` (plain cross-entropy), ``ewc``,
            ``recadam``, ``r3f``, ``mixout``, ``childtune`` (ChildTune-D), or ``frozen`` (encoder frozen, only the head trained: the
            reference for what the pretrained features alone give).
        encoder: encoder spec for :func:`longlore.core.models.load_encoder`.
        w0: CET's anchor weight W0 in -log[W0 p(y|x) + (1-W0) mean_k p(y|x_k)].
        k: number of neighbours K per anchor.
        theta: neighbours with cosine similarity below theta are dropped.
        neighbour_space: ``feature`` (KNN in the frozen pretrained encoder's space, the paper) or
            ``answer`` (similarity of gold answers, the released code's heuristic).
        variant: ``mixture`` (the paper's loss) or ``joint`` (W0 CE(anchor) + (1-W0) mean CE(nbr)).
    """

    # --- method and model -------------------------------------------------------------------
    method: Literal["cet", "vanilla", "ewc", "recadam", "r3f", "mixout", "childtune", "frozen"] = field(
        default="cet", metadata={"help": "fine-tuning method"}
    )
    encoder: str = field(default="minilm", metadata={"help": "encoder spec (minilm, tiny-bert, a local folder)"})
    seed: int = field(default=0, metadata={"help": "seed for the head init, shuffling and dropout"})
    max_len: int = field(default=64, metadata={"help": "max tokens of one question+option pair"})
    head_hidden: int = field(default=0, metadata={"help": "hidden size of the head MLP; 0 = encoder width"})
    # --- optimisation (shared by every method) -------------------------------------------------
    epochs: int = field(default=3, metadata={"help": "passes over the training questions"})
    batch_size: int = field(default=16, metadata={"help": "anchor questions per optimiser step"})
    lr: float = field(default=5e-5, metadata={"help": "learning rate of the encoder"})
    head_lr: float = field(default=1e-3, metadata={"help": "learning rate of the new head (it starts random)"})
    weight_decay: float = field(default=0.01, metadata={"help": "decoupled weight decay (AdamW)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping; 0 disables"})
    # --- CET ---------------------------------------------------------------------------------
    w0: float = field(default=0.9, metadata={"help": "W0, weight of the anchor's own prediction (paper: ~0.9)"})
    k: int = field(default=3, metadata={"help": "K neighbours per anchor (paper: 5)"})
    theta: float = field(
        default=0.5, metadata={"help": "min cosine similarity of a neighbour; 1.0 keeps exact copies only"}
    )
    neighbour_space: Literal["feature", "answer"] = field(
        default="feature", metadata={"help": "feature (paper: KNN in h0 space) or answer (released code)"}
    )
    variant: Literal["mixture", "joint"] = field(
        default="mixture", metadata={"help": "mixture (paper) or joint (weighted CE of anchor and neighbours)"}
    )
    # --- EWC -----------------------------------------------------------------------------------
    ewc_lambda: float = field(
        default=1.0, metadata={"help": "lambda of (lambda/2) sum F (theta-theta0)^2, F scaled to mean 1"}
    )
    fisher_samples: int = field(
        default=64, metadata={"help": "questions used to estimate EWC's diagonal Fisher (ChildTune-D uses all)"}
    )
    # --- RecAdam -------------------------------------------------------------------------------
    recadam_gamma: float = field(
        default=5000.0, metadata={"help": "gamma, strength of the quadratic pull to theta0 (RecAdam default 5000)"}
    )
    recadam_k: float = field(default=0.5, metadata={"help": "k, slope of the sigmoid annealing lambda(t)"})
    recadam_t0: float = field(
        default=20.0, metadata={"help": "t0, step where lambda(t) = 0.5 (short runs need a small t0)"}
    )
    # --- R3F -----------------------------------------------------------------------------------
    r3f_lambda: float = field(default=1.0, metadata={"help": "lambda of the symmetric-KL smoothness term"})
    r3f_eps: float = field(default=1e-5, metadata={"help": "half-width of the uniform noise on input embeddings"})
    # --- Mixout / ChildTune-D -------------------------------------------------------------------
    mixout_p: float = field(
        default=0.9,
        metadata={"help": "Mixout: probability that each encoder Linear weight is reset to its pretrained value"},
    )
    childtune_p: float = field(
        default=0.3,
        metadata={"help": "ChildTune-D: share of encoder-layer weights (highest Fisher) that are updated"},
    )

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _choice("neighbour_space", self.neighbour_space, NEIGHBOUR_SPACES)
        _choice("variant", self.variant, CET_VARIANTS)
        if not 0.0 <= self.w0 <= 1.0:
            raise LongloreError(f"`w0` is {self.w0}; W0 is a mixture weight and must lie in [0, 1] (paper: ~0.9)")
        if self.k < 1:
            raise LongloreError(f"`k` is {self.k}; CET needs at least one neighbour per anchor (paper: 5)")
        if not -1.0 <= self.theta <= 1.0:
            raise LongloreError(f"`theta` is {self.theta}; it is a cosine similarity threshold in [-1, 1]")
        for name in ("epochs", "batch_size", "max_len", "fisher_samples"):
            if getattr(self, name) < 1:
                raise LongloreError(f"`{name}` is {getattr(self, name)}; it must be at least 1")
        if not 0.0 <= self.mixout_p < 1.0:
            raise LongloreError(f"`mixout_p` is {self.mixout_p}; it is a probability in [0, 1) (Mixout paper: 0.9)")
        if not 0.0 < self.childtune_p <= 1.0:
            raise LongloreError(
                f"`childtune_p` is {self.childtune_p}; it is a share in (0, 1] (ChildTune paper: 0.1-0.3)"
            )
        for name in ("lr", "head_lr", "ewc_lambda", "recadam_gamma", "r3f_lambda", "r3f_eps"):
            if getattr(self, name) < 0:
                raise LongloreError(f"`{name}` is {getattr(self, name)}; it must not be negative")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> CETConfig:
        """Build from a dict (e.g. a saved ``config.json``); unknown keys are an error, not ignored
        (the released CET code silently ignored its ``CET_weight`` key)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LongloreError(
                f"{where}: unknown CET config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> CETConfig:
        from longlore.core.io import read_json

        return cls.from_dict(read_json(path), where=str(path))

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
