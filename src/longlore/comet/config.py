"""CometConfig: every knob of CoMeT (Collaborative Memory Transformer, arXiv 2602.01766) as plain data."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

from longlore.core.errors import LongloreError

MODES = ("full", "memory-only")


@dataclass
class CometConfig:
    """Configuration of a CoMeT wrapper around a decoder-only causal LM.

    Defaults are the paper's / official code's values (METHODS.md §2): G = 512 global memory
    slots, a temporary ``<beacon>`` every 8 text tokens, a FIFO budget of B = 2048 temporary
    entries, 2048-token chunks, rank-8 residual bottlenecks, AdamW 5e-5 with 5x lr on the memory
    modules. Tests and the CPU benchmarks use small values.
    """

    # --- memory layout ---
    num_global: int = field(
        default=512, metadata={"help": "G: global memory slots per layer (0 disables global memory)."}
    )
    temp_stride: int = field(
        default=8,
        metadata={"help": "A temporary <beacon> after every `temp_stride` text tokens (-1 disables temporary memory)."},
    )
    temp_budget: int = field(
        default=2048, metadata={"help": "B: the FIFO keeps the newest B temporary-memory entries per layer."}
    )
    chunk_size: int = field(
        default=2048, metadata={"help": "Text tokens per chunk (beacons and memory slots come on top)."}
    )
    rank: int = field(
        default=8, metadata={"help": "Rank of the residual bottleneck x + Up(Down(x)) on memory outputs."}
    )
    gate_bias: float | None = field(
        default=None,
        metadata={
            "help": "Initial bias of the global-memory gate logit; None: no bias term (the official code, "
            "so the gate starts near 1/2). A large value (e.g. 6) starts every slot at 'hold': the first "
            "chunk's state is kept until the model learns to write."
        },
    )
    # --- training ---
    mode: str = field(
        default="full",
        metadata={
            "help": "'full' trains the backbone too; 'memory-only' freezes it (memory nets + new-token embeddings train)."
        },
    )
    lr: float = field(default=5e-5, metadata={"help": "Peak learning rate (cosine decay after warm-up)."})
    memory_lr_multiplier: float = field(
        default=5.0, metadata={"help": "Memory modules train at lr x this (5 in the official code)."}
    )
    warmup_steps: int = field(default=10, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(
        default=0.0, metadata={"help": "AdamW weight decay on matrices (never on norms/gates of rank <= 1)."}
    )
    grad_clip: float = field(default=1.0, metadata={"help": "Gradient-norm clipping."})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute each (layer, chunk) in backward to save activations."}
    )
    augment_chunks: bool = field(
        default=True,
        metadata={
            "help": "Chunk-boundary augmentation in training (fixed / right-aligned / random sizes / semantic boundaries)."
        },
    )
    version: int = 1

    def __post_init__(self) -> None:
        if self.num_global < 0:
            raise LongloreError(f"CometConfig.num_global must be >= 0, got {self.num_global}")
        if self.temp_stride != -1 and self.temp_stride < 1:
            raise LongloreError(f"CometConfig.temp_stride must be >= 1 or -1 (off), got {self.temp_stride}")
        if self.temp_stride != -1 and self.temp_budget < 1:
            raise LongloreError(
                f"CometConfig.temp_budget must be >= 1 when temporary memory is on, got {self.temp_budget}"
            )
        if self.num_global == 0 and self.temp_stride == -1:
            raise LongloreError(
                "CometConfig: num_global=0 and temp_stride=-1 leave no memory at all; enable one of them"
            )
        if self.chunk_size < 1 or self.rank < 1:
            raise LongloreError(f"CometConfig.chunk_size and rank must be >= 1, got {self.chunk_size}, {self.rank}")
        if self.mode not in MODES:
            raise LongloreError(f"CometConfig.mode must be one of {MODES}, got '{self.mode}'")
        if self.lr <= 0 or self.memory_lr_multiplier <= 0:
            raise LongloreError("CometConfig.lr and memory_lr_multiplier must be > 0")
        if self.temp_stride != -1 and self.temp_stride > self.chunk_size:
            warnings.warn(
                f"CometConfig.temp_stride={self.temp_stride} > chunk_size={self.chunk_size}: "
                "one temporary beacon per chunk",
                stacklevel=2,
            )

    @property
    def uses_temp(self) -> bool:
        return self.temp_stride != -1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CometConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:  # a newer longlore wrote this file: keep what we understand, say what we drop
            warnings.warn(f"CometConfig: ignoring unknown keys {unknown}", stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
