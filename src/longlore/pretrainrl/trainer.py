"""The continued-training loop: corpus NTP interleaved with a fact objective, on any causal LM.

One step = ``batch_size`` corpus blocks (NTP, weight alpha) + ``fact_batch_size`` facts under the
step's phase:

* ``ntp``    — continued pretraining: the fact slot is ``fact_batch_size`` more corpus blocks;
* ``sft``    — NLL of the answer after the *question* form of the fact;
* ``debias`` — DPO (default) / unlikelihood / REINFORCE on the cloze prompt, negatives mined from the
  model itself and refreshed every ``mine_every`` steps; DPO's reference is the frozen start model;
* ``learn``  — NLL of the true answer after the cloze prompt;
* ``both``   — debias + learn in the same step (``schedule='interleaved'``).

A plain PyTorch loop; pass an ``accelerate.Accelerator`` to run it data-parallel on several GPUs
(launch with ``accelerate launch``): model, optimizer and scheduler go through ``prepare``, each
process draws its own batches (seed + process index), generation uses the unwrapped model.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from longlore.core.errors import LongloreError
from longlore.core.metrics import normalize_answer
from longlore.core.progress import console, track
from longlore.pretrainrl.config import PretrainRLConfig
from longlore.pretrainrl.facts import Fact
from longlore.pretrainrl.loss import dpo_loss, nll_loss, reinforce_loss, shared_prefix_mask, unlikelihood_loss
from longlore.pretrainrl.mining import Negatives, answer_span, mine_negatives
from longlore.pretrainrl.scoring import Pair, encode_pairs, ntp_loss, score_pairs


@dataclass
class TrainResult:
    """What a run leaves besides the updated model: the loss log, the last negatives, wall time."""

    history: list[dict] = field(default_factory=list)
    negatives: dict[str, Negatives] = field(default_factory=dict)
    seconds: float = 0.0
    mined_rounds: int = 0


def phase_at(step: int, cfg: PretrainRLConfig) -> str:
    """The phase of ``step``: 'ntp', 'sft', 'debias', 'learn' or 'both'."""
    if cfg.fact_objective == "none":
        return "ntp"
    if cfg.fact_objective == "sft":
        return "sft"
    if cfg.schedule == "interleaved":
        return "both" if cfg.debias_fraction > 0 else "learn"
    return "debias" if step < cfg.debias_steps() else "learn"


def restrict_trainable(model: Any, top_layers: int) -> int:
    """Train only the top ``top_layers`` decoder layers and the final norm (0 = everything).

    Returns the number of trainable parameters. Embeddings stay frozen (they are tied to the output
    head in most small models), which keeps CPU runs on a 135M model affordable.
    """
    if top_layers == 0:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        layers = getattr(getattr(model, "model", None), "layers", None)
        if layers is None:
            raise LongloreError("`train_layers` needs a model with `.model.layers` (Llama/Qwen style); set it to 0")
        for p in model.parameters():
            p.requires_grad_(False)
        for module in [*layers[-top_layers:], model.model.norm]:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _sample_rl(
    model: Any, tokenizer: Any, facts: Sequence[Fact], cfg: PretrainRLConfig, seed: int
) -> tuple[list[Pair], torch.Tensor]:
    """K on-policy samples per prompt, cut after the answer span; reward 1 if the span is true."""
    K = cfg.rl_samples
    prompt_ids = tokenizer([f.prompt for f in facts], add_special_tokens=False)["input_ids"]
    pairs, rewards = [], []
    model.eval()
    with torch.no_grad():
        torch.manual_seed(seed)
        for fact, ids in zip(facts, prompt_ids):  # one prompt at a time: no padding inside sampled actions
            x = torch.tensor([ids], device=next(model.parameters()).device)
            out = model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                do_sample=True,
                top_k=0,
                top_p=1.0,
                max_new_tokens=cfg.mine_max_new_tokens,
                num_return_sequences=K,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for row in out[:, len(ids) :].tolist():
                action: list[int] = []
                for tok in row:
                    action.append(tok)
                    text = tokenizer.decode(action, skip_special_tokens=True)
                    if tok in (tokenizer.eos_token_id, tokenizer.pad_token_id) or answer_span(text) != text.strip():
                        break
                span = answer_span(tokenizer.decode(action, skip_special_tokens=True))
                pairs.append((ids, action))
                # exact (normalised) match: a truncated or run-on truth earns nothing
                rewards.append(1.0 if normalize_answer(span) in {normalize_answer(t) for t in fact.truths} else 0.0)
    model.train()
    return pairs, torch.tensor(rewards).view(len(facts), K)


class _Run:
    """State of one training run (kept in one object so the step function stays short)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        cfg: PretrainRLConfig,
        blocks: torch.Tensor,
        facts: Sequence[Fact],
        ref_model: Any | None,
        negatives: dict[str, Negatives] | None,
        raw_model: Any,
        rank: int = 0,
    ) -> None:
        self.model, self.tok, self.cfg, self.blocks, self.facts = model, tokenizer, cfg, blocks, list(facts)
        self.raw = raw_model  # unwrapped (no DDP): generate() lives here
        self.ref_model, self.negatives = ref_model, negatives
        self.rng = random.Random(cfg.seed + rank)
        self.gen = torch.Generator().manual_seed(cfg.seed + rank)
        self.last_mined = -1
        self.mined_rounds = 0
        self.device = next(model.parameters()).device

    def corpus_batch(self, n: int) -> torch.Tensor:
        return self.blocks[torch.randint(len(self.blocks), (n,), generator=self.gen)]

    def maybe_mine(self, step: int) -> None:
        stale = self.cfg.mine_every and step - self.last_mined >= self.cfg.mine_every
        if self.negatives is None or (self.last_mined >= 0 and stale):
            self.negatives = mine_negatives(
                self.raw,
                self.tok,
                self.facts,
                self.cfg,
                ref_model=self.ref_model,
                seed=self.cfg.seed + step,
                progress=False,
            )
            self.last_mined = step
            self.mined_rounds += 1
        elif self.last_mined < 0:
            self.last_mined = step  # negatives were given: they count as mined now

    def fact_terms(self, batch: list[Fact], phase: str, step: int) -> dict[str, torch.Tensor]:
        cfg, terms = self.cfg, {}
        if phase == "sft":
            pairs = encode_pairs(self.tok, [f.question for f in batch], [f.continuation(f.object) for f in batch])
            s = score_pairs(self.model, pairs, self.tok.pad_token_id)
            return {"sft": cfg.learn_weight * nll_loss(s.token_logp, s.mask)}
        truth_pairs = encode_pairs(self.tok, [f.prompt for f in batch], [f.continuation(f.object) for f in batch])
        debias = phase in ("debias", "both")
        if debias and cfg.debias_loss == "reinforce":
            pairs, rewards = _sample_rl(self.raw, self.tok, batch, cfg, seed=cfg.seed * 7919 + step)
            logp = score_pairs(self.model, pairs, self.tok.pad_token_id).logp.view_as(rewards)
            terms["reinforce"] = cfg.debias_weight * reinforce_loss(logp, rewards.to(logp.device))
            debias = False
        neg_rows = []  # (fact index, negative text, reference log-prob)
        if debias:
            for i, fact in enumerate(batch):
                mined = self.negatives.get(fact.id) if self.negatives else None
                if mined:
                    neg_rows.extend((i, text, ref) for text, ref in zip(mined.negatives, mined.ref_neg_logps))
        neg_pairs = (
            encode_pairs(
                self.tok, [batch[i].prompt for i, _, _ in neg_rows], [batch[i].continuation(t) for i, t, _ in neg_rows]
            )
            if neg_rows
            else []
        )
        s = score_pairs(self.model, truth_pairs + neg_pairs, self.tok.pad_token_id)
        n = len(batch)
        if phase in ("learn", "both"):
            terms["learn"] = cfg.learn_weight * nll_loss(s.token_logp[:n], s.mask[:n])
        if neg_rows:
            owner = torch.tensor([i for i, _, _ in neg_rows], device=s.logp.device)
            if cfg.debias_loss == "dpo":
                ref_truth = torch.tensor(
                    [self.negatives[batch[i].id].ref_truth_logp for i, _, _ in neg_rows], device=s.logp.device
                )
                ref_neg = torch.tensor([r for _, _, r in neg_rows], device=s.logp.device)
                terms["dpo"] = cfg.debias_weight * dpo_loss(s.logp[owner], s.logp[n:], ref_truth, ref_neg, cfg.beta)
            else:  # unlikelihood
                mask = (
                    shared_prefix_mask(
                        [c for _, c in neg_pairs], [truth_pairs[i][1] for i, _, _ in neg_rows], s.mask.size(1)
                    ).to(s.mask.device)
                    & s.mask[n:]
                )
                terms["unlikelihood"] = cfg.debias_weight * unlikelihood_loss(s.token_logp[n:], mask)
        return terms


def train(
    model: Any,
    tokenizer: Any,
    cfg: PretrainRLConfig,
    *,
    blocks: torch.Tensor,
    facts: Sequence[Fact] = (),
    ref_model: Any | None = None,
    negatives: dict[str, Negatives] | None = None,
    progress: bool = True,
    accelerator: Any | None = None,
) -> TrainResult:
    """Continue training ``model`` in place under ``cfg``; see the module docstring for the phases.

    ``blocks`` are (n, block_size) corpus token blocks (:func:`scoring.make_blocks`). With a DPO debias
    phase and no ``ref_model``, a frozen copy of ``model`` as it is now becomes the reference.

    Raises:
        LongloreError: a fact objective without facts, or SFT facts without a question form.
    """
    if cfg.fact_objective != "none" and not facts:
        raise LongloreError(f"fact_objective '{cfg.fact_objective}' needs a fact set; pass facts (or use 'none')")
    if cfg.fact_objective == "sft" and any(not f.question for f in facts):
        missing = next(f.id for f in facts if not f.question)
        raise LongloreError(f"fact '{missing}' has no `question`; SFT trains on question forms, add them to the facts")
    uses_debias = cfg.fact_objective == "pretrainrl" and cfg.debias_fraction > 0
    if uses_debias and cfg.debias_loss == "dpo" and ref_model is None:
        ref_model = copy.deepcopy(model).eval()
    if ref_model is not None:
        for p in ref_model.parameters():
            p.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    restrict_trainable(model, cfg.train_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)))
    raw_model, rank = model, 0
    if accelerator is not None:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        if ref_model is not None:
            ref_model = ref_model.to(accelerator.device)
        raw_model, rank = accelerator.unwrap_model(model), accelerator.process_index
        progress = progress and accelerator.is_main_process
    run = _Run(model, tokenizer, cfg, blocks, facts, ref_model, negatives, raw_model, rank)
    result, start = TrainResult(), time.time()
    model.train()
    steps = range(cfg.steps)
    for step in track(steps, f"training ({cfg.fact_objective})") if progress else steps:
        phase = phase_at(step, cfg)
        if phase in ("debias", "both") and cfg.debias_loss != "reinforce":
            run.maybe_mine(step)
        extra = cfg.fact_batch_size if phase == "ntp" else 0
        terms = {"ntp": cfg.ntp_weight * ntp_loss(model, run.corpus_batch(cfg.batch_size + extra))}
        if phase != "ntp":
            terms.update(
                run.fact_terms(run.rng.sample(run.facts, min(cfg.fact_batch_size, len(run.facts))), phase, step)
            )
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        if accelerator is not None:
            accelerator.backward(loss)
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(params, cfg.grad_clip)
        else:
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            row = {"step": step, "phase": phase, **{k: round(v.item(), 4) for k, v in terms.items()}}
            result.history.append(row)
            if progress:
                console.log(row)
    model.eval()
    result.negatives = run.negatives or {}
    result.mined_rounds = run.mined_rounds
    result.seconds = time.time() - start
    return result
