"""RAMConfig: every knob of RAM ("Read As Human", arXiv 2602.01840) as plain data.

Names: ``keep_ratio`` is the share of segments read verbatim (the input); the achieved factor
``original tokens / hybrid length`` is ``compression`` (an output, see ``Compressed``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from longlore.core.errors import LongloreError

# version-1 configs (written before the renames) used these names
_RENAMED = {"ratio": "keep_ratio", "sample_ratio": "sample_keep_ratio", "ratio_range": "keep_ratio_range"}


@dataclass
class RAMConfig:
    """Configuration of a RAM compressor in front of a decoder LLM.

    Defaults follow the official code: an 8-layer encoder copied from the decoder and fully
    trainable, 50-token segments, InfoNCE temperature 0.05, only the decoder's q/k/v projections
    trained, lr 1e-4 with linear decay and gradient clipping at 2.0. ``encoder_lora_r`` /
    ``decoder_lora_r`` > 0 switch to the parameter-efficient form (LoRA through ``peft``).
    """

    encoder_layers: int = field(
        default=8, metadata={"help": "k: the encoder is a trainable copy of the decoder's first k layers."}
    )
    segment_tokens: int = field(default=50, metadata={"help": "Fixed segment size in tokens."})
    keep_ratio: float = field(
        default=0.25,
        metadata={"help": "Share of segments read verbatim (0.25 gives about 4x compression, 0.125 about 8x)."},
    )
    sample_keep_ratio: bool = field(
        default=False, metadata={"help": "Draw the keep ratio uniformly from keep_ratio_range at each training step."}
    )
    keep_ratio_range: tuple[float, float] = field(
        default=(0.0, 1.0),
        metadata={
            "help": "(low, high): sampled keep ratios lie in (low, high]; the paper's (0, 1] by default. A narrower "
            "range around the inference keep ratios costs less per step (fewer tokens read verbatim)."
        },
    )
    temperature: float = field(
        default=0.05, metadata={"help": "tau of the multi-positive InfoNCE over segment scores."}
    )
    contrastive_weight: float = field(
        default=1.0, metadata={"help": "Weight of the InfoNCE term (0 disables it: an ablation)."}
    )
    decoder_trainable: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj"),
        metadata={"help": "Decoder module-name parts that train (as LoRA when decoder_lora_r > 0); empty freezes it."},
    )
    encoder_lora_r: int = field(
        default=0,
        metadata={
            "help": "0: the encoder copy trains in full (the paper). r > 0: the copy stays frozen and LoRA "
            "adapters of rank r on encoder_lora_targets train instead (peft)."
        },
    )
    encoder_lora_targets: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        metadata={"help": "Encoder modules that get LoRA adapters when encoder_lora_r > 0."},
    )
    decoder_lora_r: int = field(
        default=0,
        metadata={
            "help": "0: the decoder_trainable projections train in full (the paper). r > 0: LoRA of rank r "
            "on them instead (an adapter-sized RAM)."
        },
    )
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    question_template: str = field(
        default="\nQuestion: {question}\nAnswer:",
        metadata={"help": "Text after the hybrid context in the decoder prompt."},
    )
    max_doc_tokens: int = field(default=32768, metadata={"help": "Longer contexts are truncated (keep the start)."})
    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (linear decay)."})
    grad_clip: float = field(default=2.0, metadata={"help": "Gradient-norm clipping."})
    version: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_ratio <= 1.0:
            raise LongloreError(f"RAMConfig.keep_ratio must be in [0, 1], got {self.keep_ratio}")
        if self.segment_tokens < 1 or self.encoder_layers < 1:
            raise LongloreError("RAMConfig.segment_tokens and encoder_layers must be >= 1")
        if self.temperature <= 0:
            raise LongloreError(f"RAMConfig.temperature must be > 0, got {self.temperature}")
        if self.encoder_lora_r < 0 or self.decoder_lora_r < 0:
            raise LongloreError("RAMConfig.encoder_lora_r and decoder_lora_r must be >= 0 (0 = no LoRA)")
        if "{question}" not in self.question_template:
            raise LongloreError("RAMConfig.question_template must contain '{question}'")
        self.decoder_trainable = tuple(self.decoder_trainable)
        self.encoder_lora_targets = tuple(self.encoder_lora_targets)
        self.keep_ratio_range = tuple(float(x) for x in self.keep_ratio_range)
        low, high = self.keep_ratio_range if len(self.keep_ratio_range) == 2 else (-1.0, -1.0)
        if not 0.0 <= low < high <= 1.0:
            raise LongloreError(
                f"RAMConfig.keep_ratio_range must be (low, high) with 0 <= low < high <= 1, got {self.keep_ratio_range}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RAMConfig:
        """Build from a saved dict; version-1 names (``ratio``, ``sample_ratio``, ``ratio_range``) are read too."""
        data = {_RENAMED.get(k, k): v for k, v in data.items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "version"}
        return cls(**known)


@dataclass
class TrainArgs:
    """Loop settings (the method's own knobs live in RAMConfig)."""

    steps: int = field(default=200, metadata={"help": "Joint-stage optimizer steps (one example each)."})
    selector_steps: int = field(
        default=0,
        metadata={"help": "Selector-stage steps before the joint stage: InfoNCE only, encoder only (0 = none)."},
    )
    selector_lr: float = field(default=1e-4, metadata={"help": "Peak learning rate of the selector stage."})
    selector_batch: int = field(
        default=1, metadata={"help": "Documents per selector-stage step (with all their questions, encoded once)."}
    )
    batch_size: int = field(
        default=1,
        metadata={"help": "Joint-stage examples per step (one keep ratio per step); under torchrun >= 1 per rank."},
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps of each stage."})
    seed: int = field(default=0, metadata={"help": "Example-order and keep-ratio sampling seed."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save a resumable checkpoint every N steps."})
    stop_after: int = field(
        default=0,
        metadata={
            "help": "Stop after N steps counted over both stages, selector first (0 = run to the end); "
            "run again to resume."
        },
    )
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast (weights stay in their dtype)."})
