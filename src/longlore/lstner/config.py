"""Configuration for LST-NER training (one dataclass; every field documents itself)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Literal

from longlore.core.errors import LongloreError
from longlore.lstner.graph import EDGE_RULES

ADJACENCIES = ("label-dist", "identity", "shuffled")


@dataclass
class LSTNERConfig:
    """Hyper-parameters for the source tagger and the LST-NER target model.

    Paper: Zheng et al., "Cross-domain Named Entity Recognition via Graph Matching", Findings of
    ACL 2022 (https://arxiv.org/abs/2408.00981). Defaults are sized for few-shot runs on CPU.
    """

    # model / data
    encoder: str = field(
        default="minilm", metadata={"help": "encoder spec for core.models.load_encoder (minilm, tiny-bert, a folder)"}
    )
    max_len: int = field(
        default=48,
        metadata={"help": "max sub-tokens per sentence incl. [CLS]/[SEP]; longer sentences lose their tail words"},
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout on encoder outputs"})
    # training
    epochs: int = field(default=10, metadata={"help": "passes over the training sentences"})
    batch_size: int = field(default=16, metadata={"help": "sentences per step"})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate for the encoder"})
    head_lr: float = field(
        default=1e-3, metadata={"help": "AdamW learning rate for heads, fusion and label embeddings"}
    )
    warmup: float = field(
        default=0.1, metadata={"help": "fraction of steps with linear warm-up; then linear decay to 0"}
    )
    seed: int = field(default=0, metadata={"help": "seed for initialisation, shuffling and dropout"})
    # label graph
    temperature: float = field(
        default=2.0, metadata={"help": "tau: source predictions are softmax(logits / tau) when building p(Y_s | y_t)"}
    )
    edge_rule: Literal["cosine", "knn"] = field(
        default="cosine",
        metadata={"help": "label-graph edges: 'cosine' (cos(p_i, p_j) >= edge_threshold) or 'knn' (edge_k nearest)"},
    )
    edge_threshold: float = field(
        default=0.3, metadata={"help": "minimum cosine between two labels' distributions for an edge (rule 'cosine')"}
    )
    edge_k: int = field(default=2, metadata={"help": "neighbours per label (rule 'knn')"})
    head_init: Literal["random", "label-dist"] = field(
        default="random",
        metadata={
            "help": "target label embeddings at the start: 'random' (as the baselines) or 'label-dist' (E_t = P E_s, the source head mapped through the label distributions; our addition, not in the paper)"
        },
    )
    use_graph: bool = field(
        default=True,
        metadata={
            "help": "fuse the label graph into token states (False = ablation 'w/o graph': no fusion module at all)"
        },
    )
    adjacency: Literal["label-dist", "identity", "shuffled"] = field(
        default="label-dist",
        metadata={
            "help": "target graph the fusion's GCN runs on: 'label-dist' (edges from the label distributions, the method), 'identity' (no edges) or 'shuffled' (the same edges between randomly permuted labels); the last two are capacity-matched ablations"
        },
    )
    # losses: total = CE + l_aux * BCE + l_gw * GW
    l_aux: float = field(
        default=0.1, metadata={"help": "lambda_aux: weight of the multi-label 'which types occur' BCE"}
    )
    l_gw: float = field(
        default=1.0,
        metadata={
            "help": "lambda_gw: weight of the Gromov-Wasserstein loss between the source graph and the graph of fused label nodes (0 = ablation 'w/o GW')"
        },
    )
    gw_eps: float = field(default=0.05, metadata={"help": "entropic regularisation of GW"})
    gw_outer_iters: int = field(
        default=10, metadata={"help": "GW projected-gradient iterations (unrolled, differentiable)"}
    )
    gw_sinkhorn_iters: int = field(default=30, metadata={"help": "Sinkhorn iterations per GW step"})

    def __post_init__(self) -> None:
        if self.edge_rule not in EDGE_RULES:
            raise LongloreError(f"`edge_rule` is '{self.edge_rule}'; use one of {list(EDGE_RULES)}")
        if self.adjacency not in ADJACENCIES:
            raise LongloreError(f"`adjacency` is '{self.adjacency}'; use one of {list(ADJACENCIES)}")
        if self.head_init not in ("random", "label-dist"):
            raise LongloreError(f"`head_init` is '{self.head_init}'; use 'random' or 'label-dist'")
        for name in ("epochs", "batch_size", "max_len", "edge_k", "gw_outer_iters", "gw_sinkhorn_iters"):
            if getattr(self, name) < 1:
                raise LongloreError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.max_len < 4:
            raise LongloreError(f"`max_len` must leave room for [CLS], [SEP] and words; got {self.max_len}")
        for name in ("temperature", "gw_eps", "lr", "head_lr"):
            if getattr(self, name) <= 0:
                raise LongloreError(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in ("l_aux", "l_gw", "dropout"):
            if getattr(self, name) < 0:
                raise LongloreError(f"`{name}` must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LSTNERConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
