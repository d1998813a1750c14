"""ProbeConfig and TrainArgs: every knob of the compression probe (arXiv 2602.01778) as plain data."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Optional

from longlore.core.errors import LongloreError

# The projections of a Llama/Qwen block; LoRA on all of them is what GMSA-style encoders use.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class ProbeConfig:
    """Configuration of a text autoencoder: LoRA encoder -> group-merge pooling -> alignment -> frozen decoder.

    Defaults follow the closest public harness of the study (METHODS.md §3, GMSA): an encoder made of
    the first 8 layers of a causal LM with LoRA (r 128, alpha 32), memory slots by group-merge mean
    pooling with merge size = compression ratio, one alignment layer initialised from a decoder
    layer, and a frozen decoder that reconstructs the text from the memory slots alone.
    """

    encoder_layers: int = field(
        default=8, metadata={"help": "k: the encoder is the first k layers of the encoder's base causal LM."}
    )
    ratio: int = field(
        default=4,
        metadata={"help": "Compression ratio = group-merge size: n tokens become ceil(n / ratio) memory slots."},
    )
    lora_r: int = field(default=128, metadata={"help": "LoRA rank r of the encoder adapters."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale alpha / r) of the encoder adapters."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (0 keeps training deterministic)."})
    lora_targets: tuple[str, ...] = field(
        default=DEFAULT_LORA_TARGETS, metadata={"help": "Module-name suffixes of the encoder layers that get LoRA."}
    )
    align_init_layer: int = field(
        default=0,
        metadata={
            "help": "Index of the decoder layer that initialises the one-layer alignment block (0 = the layer that "
            "first reads the decoder's input embeddings, where the memory slots enter)."
        },
    )
    reconstruction_prompt: str = field(
        default="\nRepeat the text above exactly:\n",
        metadata={"help": "Fixed text between the memory slots and the reconstruction in the decoder's input."},
    )
    max_tokens: int = field(default=512, metadata={"help": "Longer inputs are truncated (keep the start)."})
    version: int = 1

    def __post_init__(self) -> None:
        if self.encoder_layers < 1:
            raise LongloreError(f"ProbeConfig.encoder_layers must be >= 1, got {self.encoder_layers}")
        if self.ratio < 1:
            raise LongloreError(f"ProbeConfig.ratio must be an integer >= 1, got {self.ratio}")
        if self.lora_r < 1 or self.lora_alpha <= 0:
            raise LongloreError(
                f"ProbeConfig.lora_r must be >= 1 and lora_alpha > 0, got {self.lora_r}, {self.lora_alpha}"
            )
        if not 0.0 <= self.lora_dropout < 1.0:
            raise LongloreError(f"ProbeConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora_dropout > 0:
            warnings.warn("ProbeConfig.lora_dropout > 0 makes a resumed run differ from an unbroken one", stacklevel=2)
        self.lora_targets = tuple(self.lora_targets)
        if not self.lora_targets:
            raise LongloreError("ProbeConfig.lora_targets must name at least one module, e.g. q_proj")
        if self.max_tokens < 1:
            raise LongloreError(f"ProbeConfig.max_tokens must be >= 1, got {self.max_tokens}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ProbeConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            warnings.warn(f"ProbeConfig: ignoring unknown keys {unknown} (written by a newer version?)", stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainArgs:
    """Loop settings of :func:`longlore.probe.trainer.train_autoencoder` (the method's knobs live in ProbeConfig)."""

    steps: int = field(default=500, metadata={"help": "Optimizer steps (the study paper uses 5000 at lr 1e-4)."})
    batch_size: int = field(default=8, metadata={"help": "Samples per optimizer step."})
    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW, linear warm-up then cosine decay)."})
    warmup_steps: int = field(default=20, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    grad_clip: float = field(default=1.0, metadata={"help": "Gradient-norm clipping (0 disables it)."})
    seed: int = field(default=0, metadata={"help": "Initialisation and batch-order seed."})
    checkpoint_every: int = field(default=25, metadata={"help": "Save adapters + optimizer every N steps (resume)."})
    log_every: int = field(default=10, metadata={"help": "Log the running loss every N steps."})
    stop_after: Optional[int] = field(
        default=None, metadata={"help": "Stop (after a checkpoint) at this step; run again to resume."}
    )

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise LongloreError("TrainArgs: steps must be >= 0, batch_size and checkpoint_every >= 1")
        if self.lr <= 0:
            raise LongloreError(f"TrainArgs.lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)
