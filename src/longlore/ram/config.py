"""RAMConfig: every knob of RAM ("Read As Human", arXiv 2602.01840) as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from longlore.core.errors import LongloreError


@dataclass
class RAMConfig:
    """Configuration of a RAM compressor in front of a decoder LLM.

    Defaults follow the official code (METHODS.md §1): an 8-layer encoder copied from the
    decoder, 50-token segments, InfoNCE temperature 0.05, only the decoder's q/k/v projections
    trained, lr 1e-4 with linear decay and gradient clipping at 2.0.
    """

    encoder_layers: int = field(
        default=8, metadata={"help": "k: the encoder is a trainable copy of the decoder's first k layers."}
    )
    segment_tokens: int = field(default=50, metadata={"help": "Fixed segment size in tokens."})
    ratio: float = field(
        default=0.25, metadata={"help": "Keep-ratio of segments read verbatim (0.25 ~ 4x, 0.125 ~ 8x)."}
    )
    sample_ratio: bool = field(
        default=False, metadata={"help": "Draw the keep-ratio uniformly from ratio_range each training step."}
    )
    ratio_range: tuple[float, float] = field(
        default=(0.0, 1.0),
        metadata={
            "help": "(low, high): sampled keep-ratios lie in (low, high]; the paper's (0, 1] by default. A narrower "
            "range around the inference ratios costs less per step (fewer tokens read verbatim)."
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
        metadata={"help": "Decoder parameter-name parts that train; () freezes it."},
    )
    question_template: str = field(
        default="\nQuestion: {question}\nAnswer:",
        metadata={"help": "Text after the hybrid context in the decoder prompt."},
    )
    max_doc_tokens: int = field(default=32768, metadata={"help": "Longer contexts are truncated (keep the start)."})
    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (linear decay)."})
    grad_clip: float = field(default=2.0, metadata={"help": "Gradient-norm clipping."})
    version: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise LongloreError(f"RAMConfig.ratio must be in [0, 1], got {self.ratio}")
        if self.segment_tokens < 1 or self.encoder_layers < 1:
            raise LongloreError("RAMConfig.segment_tokens and encoder_layers must be >= 1")
        if self.temperature <= 0:
            raise LongloreError(f"RAMConfig.temperature must be > 0, got {self.temperature}")
        if "{question}" not in self.question_template:
            raise LongloreError("RAMConfig.question_template must contain '{question}'")
        self.decoder_trainable = tuple(self.decoder_trainable)
        self.ratio_range = tuple(float(x) for x in self.ratio_range)
        low, high = self.ratio_range if len(self.ratio_range) == 2 else (-1.0, -1.0)
        if not 0.0 <= low < high <= 1.0:
            raise LongloreError(
                f"RAMConfig.ratio_range must be (low, high) with 0 <= low < high <= 1, got {self.ratio_range}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RAMConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
