"""Fine-tuning loop shared by CET and its baselines.

Lifecycle of :func:`train`: load the encoder and a fresh head -> precompute what the method needs
at the pretrained weights theta0 (CET: neighbours in h0 space; EWC: diagonal Fisher; ChildTune-D:
the child network's gradient masks; Mixout: w0 inside every encoder Linear) -> epochs of
mini-batches with the method's loss -> evaluation after each epoch. The loss of one batch is
:meth:`Trainer.batch_loss`, a dispatch over small functions from :mod:`longlore.cet.loss`.

Example::

    from longlore.cet import CETConfig, train, load_questions
    result = train(CETConfig(method="cet", encoder="minilm"), load_questions("train.jsonl"),
                   eval_sets={"test": load_questions("test.jsonl")})
    print(result.history[-1])
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from longlore.cet.config import CETConfig
from longlore.cet.data import MCQuestion
from longlore.cet.loss import CET_LOSSES, ewc_penalty, symmetric_kl
from longlore.cet.model import MCScorer, PairBatch, accuracy, encode_pairs, zero_shot_accuracy
from longlore.cet.neighbours import NeighbourTable, build_neighbours, shared_answer_share
from longlore.cet.recadam import RecAdam
from longlore.cet.regularizers import apply_mixout, child_masks, is_layer_parameter, mask_gradients, remove_mixout
from longlore.core.checkpoint import seed_everything
from longlore.core.errors import LongloreError
from longlore.core.models import load_encoder
from longlore.core.progress import console
from longlore.core.training import EpochBatches, TrainingArgs, train_loop

_NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm")


@dataclass
class TrainResult:
    """The trained scorer, its tokenizer, per-epoch metrics and the neighbour table (CET only)."""

    scorer: MCScorer
    tokenizer: Any
    config: CETConfig
    history: list[dict[str, float]] = field(default_factory=list)
    neighbours: NeighbourTable | None = None
    seconds: float = 0.0
    neighbour_answer_share: float | None = None  # share of neighbours whose gold answer is the anchor's
    cost: dict[str, float] = field(default_factory=dict)  # wall / CPU seconds of training (over resumes)


def estimate_fisher(
    scorer: MCScorer, tokenizer: Any, questions: list[MCQuestion], max_len: int
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the encoder: the mean over questions of squared per-question gradients
    of the cross-entropy, at the current (pretrained) weights. Dropout is off so the estimate is
    deterministic. Scaled to mean 1 over all entries so ``ewc_lambda`` is comparable across encoders."""
    params = {n: p for n, p in scorer.encoder.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = scorer.training
    scorer.eval()
    for q in questions:
        batch = encode_pairs(tokenizer, [q], max_len).to(next(scorer.parameters()).device)
        scorer.zero_grad(set_to_none=True)
        F.cross_entropy(scorer(batch), batch.labels).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach().pow(2) / len(questions)
    scorer.zero_grad(set_to_none=True)
    scorer.train(was_training)
    total = sum(f.sum() for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    scale = count / total.clamp(min=1e-30)
    return {n: f * scale for n, f in fisher.items()}


class Trainer:
    """Holds the scorer, the optimiser and the method's precomputed state for one run."""

    def __init__(
        self,
        config: CETConfig,
        train_questions: list[MCQuestion],
        cache_dir: Path | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        out_dir: str | Path | None = None,
    ) -> None:
        if len(train_questions) < 2:
            raise LongloreError(f"training needs at least 2 questions, got {len(train_questions)}")
        if config.method == "recadam" and config.lr * config.recadam_gamma >= 1.0:
            raise LongloreError(
                f"`lr` x `recadam_gamma` = {config.lr * config.recadam_gamma:g} >= 1: the pull "
                "towards theta0 would overshoot; lower recadam_gamma or lr"
            )
        self.config = config
        self.questions = train_questions
        seed_everything(config.seed)
        encoder, self.tokenizer = load_encoder(config.encoder, device=device, dtype=dtype, seed=config.seed)
        self.scorer = MCScorer(encoder, config=config)
        self.device = next(encoder.parameters()).device
        self.out_dir = out_dir
        self.neighbours: NeighbourTable | None = None
        self.fisher: dict[str, torch.Tensor] | None = None
        self.theta0: dict[str, torch.Tensor] | None = None
        if config.method == "cet":
            # h0 space: the encoder before any update (this runs before the first step)
            self.neighbours = build_neighbours(
                train_questions,
                encoder,
                self.tokenizer,
                encoder_id=config.encoder,
                space=config.neighbour_space,
                k=config.k,
                theta=config.theta,
                max_len=config.max_len,
                cache_dir=cache_dir,
            )
        if config.method == "ewc":
            rng = random.Random(config.seed)
            sample = rng.sample(train_questions, min(config.fisher_samples, len(train_questions)))
            self.fisher = estimate_fisher(self.scorer, self.tokenizer, sample, config.max_len)
            self.theta0 = {n: p.detach().clone() for n, p in self.scorer.encoder.named_parameters()}
        self.mixout_layers: list = []
        self.child_masks: dict[str, torch.Tensor] | None = None
        if config.method == "childtune":
            # ChildTune-D: Fisher on the whole task data at theta0; only the top childtune_p share
            # of the transformer-layer weights ever gets a gradient.
            fisher = estimate_fisher(self.scorer, self.tokenizer, train_questions, config.max_len)
            self.child_masks = child_masks(
                {n: f for n, f in fisher.items() if is_layer_parameter(n)}, config.childtune_p
            )
            mask_gradients(dict(self.scorer.encoder.named_parameters()), self.child_masks)
        if config.method == "mixout":
            self.mixout_layers = apply_mixout(self.scorer.encoder, config.mixout_p)
        if config.method == "frozen":
            for p in self.scorer.encoder.parameters():
                p.requires_grad_(False)
        self.last_terms: dict[str, float] = {}

    def param_groups(self) -> list[dict[str, Any]]:
        """AdamW groups: encoder at ``lr``, head at ``head_lr``; no decay on biases and norms.
        ``anneal`` marks the groups RecAdam pulls towards theta0 (the encoder, not the new head)."""
        cfg = self.config
        groups = []
        for module, lr, anneal in ((self.scorer.encoder, cfg.lr, True), (self.scorer.head, cfg.head_lr, False)):
            named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
            for decay in (True, False):
                params = [p for n, p in named if any(tag in n for tag in _NO_DECAY) != decay]
                if params:
                    wd = cfg.weight_decay if decay else 0.0
                    groups.append({"params": params, "lr": lr, "weight_decay": wd, "anneal": anneal})
        return groups

    def make_optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.method == "recadam":
            return RecAdam(groups, gamma=cfg.recadam_gamma, k=cfg.recadam_k, t0=cfg.recadam_t0)
        return torch.optim.AdamW([{k: v for k, v in g.items() if k != "anneal"} for g in groups])

    # --- losses -------------------------------------------------------------------------------

    def _neighbour_logits(self, anchors: list[MCQuestion], anchor_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, C) logits of each anchor's options under its neighbours' questions, and the (B, K) mask.

        Only existing neighbours are run through the model; the rest of the tensor is zeros."""
        assert self.neighbours is not None
        index = self.neighbours.index[anchor_ids]  # (B, K)
        mask = torch.from_numpy(index >= 0)
        B, K = index.shape
        C = max(len(q.options) for q in anchors)
        logits = torch.zeros(B, K, C, device=self.device)  # float32: the losses run in float32
        pairs = [(i, k) for i in range(B) for k in range(K) if index[i, k] >= 0]
        if pairs:
            # a neighbour's input: its own question, the anchor's options, the anchor's label
            pseudo = [
                MCQuestion(f"nb{i}-{k}", self.questions[index[i, k]].question, anchors[i].options, anchors[i].label)
                for i, k in pairs
            ]
            batch = encode_pairs(self.tokenizer, pseudo, self.config.max_len).to(self.device)
            flat = self.scorer(batch).float()  # (M, C') with C' <= C
            rows, cols = zip(*pairs)
            logits[list(rows), list(cols), : flat.shape[1]] = flat
            if flat.shape[1] < C:
                logits[list(rows), list(cols), flat.shape[1] :] = -1e4
        return logits, mask.to(self.device)

    def batch_loss(self, anchor_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The method's loss on a batch of training questions; returns (loss, anchor logits)."""
        cfg = self.config
        anchors = [self.questions[i] for i in anchor_ids]
        batch: PairBatch = encode_pairs(self.tokenizer, anchors, cfg.max_len).to(self.device)
        if cfg.method == "r3f":
            embeds = self.scorer.word_embeddings(batch)  # (N, T, D)
            logits = self.scorer(batch, inputs_embeds=embeds).float()
            noise = torch.empty_like(embeds).uniform_(-cfg.r3f_eps, cfg.r3f_eps)
            noised = self.scorer(batch, inputs_embeds=embeds.detach() + noise).float()
            task, reg = F.cross_entropy(logits, batch.labels), cfg.r3f_lambda * symmetric_kl(noised, logits)
            self.last_terms = {"task": task.item(), "reg": reg.item()}
            return task + reg, logits
        logits = self.scorer(batch).float()  # (B, C); the losses run in float32 under any dtype
        if cfg.method == "cet":
            nb_logits, nb_mask = self._neighbour_logits(anchors, anchor_ids)
            loss = CET_LOSSES[cfg.variant](logits, batch.labels, nb_logits, nb_mask, cfg.w0)
            self.last_terms = {"task": F.cross_entropy(logits, batch.labels).item(), "reg": 0.0}
            return loss, logits
        loss = F.cross_entropy(logits, batch.labels)
        self.last_terms = {"task": loss.item(), "reg": 0.0}
        if cfg.method == "ewc":
            assert self.fisher is not None and self.theta0 is not None
            params = dict(self.scorer.encoder.named_parameters())
            penalty = ewc_penalty(params, self.theta0, self.fisher, cfg.ewc_lambda)
            self.last_terms["reg"] = penalty.item()
            loss = loss + penalty
        # vanilla, recadam (its pull lives in the optimiser), mixout (in the weights), childtune
        # (in the gradient masks), frozen: the plain task loss
        return loss, logits

    # --- loop ---------------------------------------------------------------------------------

    def evaluate(
        self,
        eval_sets: dict[str, list[MCQuestion]] | None = None,
        retention_sets: dict[str, list[MCQuestion]] | None = None,
    ) -> dict[str, float]:
        """``{name}_acc``: the scorer's accuracy; ``{name}_zs``: zero-shot embedding accuracy of the
        (fine-tuned) encoder alone, i.e. how much of what the pretrained encoder knew it still knows."""
        row = {
            f"{name}_acc": accuracy(self.scorer, self.tokenizer, qs, self.config.max_len)
            for name, qs in (eval_sets or {}).items()
        }
        row.update(
            {
                f"{name}_zs": zero_shot_accuracy(self.scorer.encoder, self.tokenizer, qs, self.config.max_len)
                for name, qs in (retention_sets or {}).items()
            }
        )
        return row

    def fit(
        self,
        eval_sets: dict[str, list[MCQuestion]] | None = None,
        progress: bool = True,
        retention_sets: dict[str, list[MCQuestion]] | None = None,
        eval_each_epoch: bool = True,
        stop_after: int | None = None,
    ) -> TrainResult:
        """Train for ``config.epochs`` on the shared training loop (shuffled epochs, AdamW or
        RecAdam, linear warm-up over 10% then linear decay, clipping; ``out_dir`` checkpoints that
        a rerun resumes from); evaluate after each epoch (or only after the last one)."""
        cfg = self.config
        per_epoch = -(-len(self.questions) // cfg.batch_size)
        steps = cfg.epochs * per_epoch
        history: list[dict[str, float]] = []
        start = time.perf_counter()

        def loss_fn(model: torch.nn.Module, ids: list[int], ctx: Any):
            loss, logits = self.batch_loss(ids)
            gold = torch.tensor([self.questions[i].label for i in ids], device=logits.device)
            acc = float((logits.argmax(-1) == gold).float().mean())
            return loss, {**self.last_terms, "acc": acc}

        def on_step(step: int, row: dict[str, float]) -> None:
            if (step + 1) % per_epoch and step + 1 != steps:
                return
            epoch = -(-(step + 1) // per_epoch)
            rows = [r for r in result_rows if (r["step"] // per_epoch) + 1 == epoch] + [row]
            summary: dict[str, float] = {
                "epoch": epoch,
                "train_loss": sum(r["loss"] for r in rows) / len(rows),
                "train_task_loss": sum(r["task"] for r in rows) / len(rows),  # cross-entropy of the anchors
                "train_reg": sum(r["reg"] for r in rows) / len(rows),  # EWC penalty / R3F KL, vs the task loss
                "train_acc": sum(r["acc"] for r in rows) / len(rows),
            }
            if eval_each_epoch or step + 1 == steps:
                summary.update(self.evaluate(eval_sets, retention_sets))
            history.append(summary)
            if progress:
                console.print(
                    " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
                )

        result_rows: list[dict[str, float]] = []
        args = TrainingArgs(
            steps=steps,
            lr=cfg.lr,
            warmup_steps=int(0.1 * steps),
            schedule="linear",
            grad_clip=cfg.max_grad_norm,
            checkpoint_every=max(1, steps),
            log_every=0,
            seed=cfg.seed,
            stop_after=stop_after,
        )
        result = train_loop(
            self.scorer,
            loss_fn,
            EpochBatches(list(range(len(self.questions))), cfg.batch_size, seed=cfg.seed),
            args,
            self.out_dir,
            param_groups=self.param_groups(),
            make_optimizer=self.make_optimizer,
            on_step=lambda step, row: (on_step(step, row), result_rows.append(row)),
            description=f"{cfg.method} fine-tuning",
            progress=progress,
        )
        if result.finished:
            remove_mixout(self.mixout_layers)  # a plain encoder from here on (eval mode already ignored it)
            self.mixout_layers = []
        self.scorer.eval()
        share = shared_answer_share(self.neighbours, self.questions) if self.neighbours is not None else None
        return TrainResult(
            self.scorer, self.tokenizer, cfg, history, self.neighbours, time.perf_counter() - start, share, result.cost
        )


def train(
    config: CETConfig,
    train_questions: list[MCQuestion],
    eval_sets: dict[str, list[MCQuestion]] | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    retention_sets: dict[str, list[MCQuestion]] | None = None,
    eval_each_epoch: bool = True,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    out_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Fine-tune a fresh scorer on ``train_questions`` with ``config.method``; see module docstring.

    ``eval_sets`` are scored by the trained scorer (``{name}_acc``); ``retention_sets`` by the
    fine-tuned encoder alone, zero-shot (``{name}_zs``), the same way the pretrained one is scored.
    """
    trainer = Trainer(config, train_questions, cache_dir=cache_dir, device=device, dtype=dtype, out_dir=out_dir)
    return trainer.fit(
        eval_sets,
        progress=progress,
        retention_sets=retention_sets,
        eval_each_epoch=eval_each_epoch,
        stop_after=stop_after,
    )
