"""RecGPTConfig: every knob of RecGPT (Taobao, arXiv 2507.22879) as plain data, grouped by stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from longlore.core.errors import LongloreError

TAG_MERGES = ("max", "round_robin")


@dataclass
class RecGPTConfig:
    """Configuration of the RecGPT pipeline on a behaviour log (METHODS.md §5).

    Paper defaults where the paper gives them: alpha = 0.5 in L_col + a*L_tag + (1-a)*L_cate,
    sampled-softmax losses, serving y = b*y_col + (1-b)*y_sem, category HR@30.
    """

    # --- behaviour filtering and compression -------------------------------------------------
    strong_rating: float = field(
        default=4.0, metadata={"help": "Ratings >= this are strong behaviours ('liked'/'loved')."}
    )
    min_rating: float = field(
        default=3.0, metadata={"help": "Behaviour filtering: ratings below this are dropped from the prompt."}
    )
    history_token_budget: int = field(
        default=320, metadata={"help": "Token budget of the compressed history in prompts."}
    )
    # --- LLM stages -------------------------------------------------------------------------
    model: str = field(default="smollm2-135m", metadata={"help": "Text model spec or openai:MODEL@URL endpoint."})
    prefill: bool = field(
        default=True,
        metadata={
            "help": "Pre-fill the reply with a demonstration record (small local models need it; not on endpoints)."
        },
    )
    structured: bool = field(
        default=True,
        metadata={
            "help": "Constrain each stage's reply to its JSON schema (structured generation): every reply parses."
        },
    )
    domain: str = field(
        default="",
        metadata={"help": "What the items are in the prompts (movie, book, product); empty = the dataset's."},
    )
    max_retries: int = field(
        default=2, metadata={"help": "Re-asks after an unparseable reply (then recorded as a failure)."}
    )
    retry_temperature: float = field(
        default=0.9, metadata={"help": "Sampling temperature of re-asks (the first ask is greedy)."}
    )
    n_interests: int = field(
        default=2, metadata={"help": "Interests asked for per user (paper: > 10; kept small for CPU)."}
    )
    n_tags: int = field(default=2, metadata={"help": "Tags asked for per user (one per mined interest, at most)."})
    interest_tokens: int = field(
        default=64, metadata={"help": "max_new_tokens of interest mining (after the pre-filled demonstration)."}
    )
    tag_tokens: int = field(default=60, metadata={"help": "max_new_tokens of tag prediction."})
    explain_tokens: int = field(default=64, metadata={"help": "max_new_tokens of explanation generation."})
    llm_batch: int = field(default=16, metadata={"help": "Prompts per generate call (left-padded batch)."})
    n_explain: int = field(default=2, metadata={"help": "Interest-item pairs explained per user."})
    # --- three-tower retriever ----------------------------------------------------------------
    dim: int = field(default=64, metadata={"help": "Output dimension of the user, item and tag towers."})
    history_len: int = field(default=50, metadata={"help": "Most recent training items pooled into the user tower."})
    alpha: float = field(default=0.5, metadata={"help": "a: weight of L_tag vs (1-a) of L_cate (paper: 0.5)."})
    semantic_weight: float = field(default=1.0, metadata={"help": "Weight of a*L_tag + (1-a)*L_cate next to L_col."})
    temperature: float = field(default=0.1, metadata={"help": "tau of the sampled softmax over cosine scores."})
    n_negatives: int = field(default=256, metadata={"help": "Uniformly sampled negative items shared by a batch."})
    epochs: int = field(default=8, metadata={"help": "Passes over the training interactions."})
    batch_size: int = field(default=512, metadata={"help": "Training pairs per step."})
    lr: float = field(default=3e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=1e-5, metadata={"help": "AdamW weight decay."})
    beta: float = field(default=0.8, metadata={"help": "b in serving y = b*y_col + (1-b)*y_sem."})
    tag_merge: str = field(
        default="max",
        metadata={
            "help": "How several tags combine at serving: 'max' (an item scores by its closest tag) or 'round_robin' "
            "(each tag retrieves its own list under b*y_col + (1-b)*y_sem_t; the lists are interleaved)."
        },
    )
    merge_depth: int = field(
        default=100, metadata={"help": "Items ranked by the round-robin merge (the rest keep fused scores)."}
    )
    tag_embedder: str = field(
        default="minilm", metadata={"help": "Frozen text encoder under the tag tower (minilm, tiny-bert, ...)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of splits, sampling and initialisation."})
    version: int = 2

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise LongloreError(f"RecGPTConfig.{name} must be in [0, 1], got {value}")
        if self.min_rating > self.strong_rating:
            raise LongloreError(
                f"RecGPTConfig.min_rating ({self.min_rating}) must be <= strong_rating ({self.strong_rating})"
            )
        if self.temperature <= 0:
            raise LongloreError(f"RecGPTConfig.temperature must be > 0, got {self.temperature}")
        for name in ("dim", "history_len", "epochs", "batch_size", "history_token_budget"):
            if getattr(self, name) < 1:
                raise LongloreError(f"RecGPTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.tag_merge not in TAG_MERGES:
            raise LongloreError(f"RecGPTConfig.tag_merge must be one of {TAG_MERGES}, got '{self.tag_merge}'")
        if self.merge_depth < 1:
            raise LongloreError(f"RecGPTConfig.merge_depth must be >= 1, got {self.merge_depth}")
        if self.retry_temperature <= 0:
            raise LongloreError(
                f"RecGPTConfig.retry_temperature must be > 0 (retries must sample), got {self.retry_temperature}"
            )
        if self.max_retries < 0:
            raise LongloreError(f"RecGPTConfig.max_retries must be >= 0, got {self.max_retries}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RecGPTConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
