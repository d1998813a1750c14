"""The continued-training loop: corpus NTP interleaved with a fact objective, on any causal LM.

One step = ``batch_size`` corpus blocks (NTP, weight alpha) + ``fact_batch_size`` facts under the
step's phase:

* ``ntp``    — continued pretraining: the fact slot is ``fact_batch_size`` more corpus blocks;
* ``sft``    — NLL of the answer after the *question* form of the fact;
* ``debias`` — DPO (default) / unlikelihood / REINFORCE on the cloze prompt, negatives mined from the
  model itself and refreshed every ``mine_every`` steps; DPO's reference is the frozen start model;
* ``learn``  — NLL of the true answer after the cloze prompt;
* ``both``   — debias + learn in the same step (``schedule='interleaved'``).

The loop is the shared one (:func:`longlore.core.training.train_loop`): AdamW with linear warm-up
then a constant lr, gradient clipping, checkpoints and resume (``out_dir``), data parallelism under
``torchrun``. A step's batch is a seeded draw of corpus blocks and facts (a function of the step);
negatives are (re-)mined from the current model when a debias step finds them stale, saved under
``out_dir/negatives/`` so that a resumed run continues with the negatives in force at its step.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from longlore.core.distributed import dist_info
from longlore.core.errors import LongloreError
from longlore.core.metrics import normalize_answer
from longlore.core.progress import console
from longlore.pretrainrl.config import PretrainRLConfig
from longlore.pretrainrl.facts import Fact
from longlore.pretrainrl.loss import dpo_loss, nll_loss, reinforce_loss, shared_prefix_mask, unlikelihood_loss
from longlore.pretrainrl.mining import Negatives, answer_span, load_negatives, mine_negatives, save_negatives
from longlore.pretrainrl.scoring import Pair, encode_pairs, ntp_loss, score_pairs


@dataclass
class TrainResult:
    """What a run leaves besides the updated model: the loss log (every ``log_every`` steps, with
    each step's phase and terms), the last negatives, wall and CPU seconds (summed over resumes),
    the mining rounds of this invocation, the steps done and whether the run finished."""

    history: list[dict] = field(default_factory=list)
    negatives: dict[str, Negatives] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    mined_rounds: int = 0
    step: int = 0
    finished: bool = True


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


class _Objective:
    """The per-step state of a run (negatives, mining rounds) and the fact terms of a batch."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        cfg: PretrainRLConfig,
        facts: Sequence[Fact],
        ref_model: Any | None,
        negatives: dict[str, Negatives] | None,
        out_dir: Path | None,
    ) -> None:
        self.model, self.tok, self.cfg, self.facts = model, tokenizer, cfg, list(facts)
        self.ref_model, self.negatives, self.given = ref_model, negatives, negatives is not None
        self.saved = out_dir / "negatives" if out_dir is not None else None
        self.last_mined = -1
        self.mined_rounds = 0

    def _mining_steps(self) -> list[int]:
        """The steps at which negatives are (re-)mined: the first debias step, then every ``mine_every``."""
        debias = [s for s in range(self.cfg.steps) if phase_at(s, self.cfg) in ("debias", "both")]
        if not debias:
            return []
        first, every = debias[0], self.cfg.mine_every
        return [s for s in debias if s == first or (every and (s - first) % every == 0)]

    def before_step(self, step: int) -> None:
        """Make the negatives in force at ``step`` current (mining, or reloading them after a resume)."""
        if phase_at(step, self.cfg) not in ("debias", "both") or self.cfg.debias_loss == "reinforce":
            return
        boundaries = [s for s in self._mining_steps() if s <= step]
        due = boundaries[-1] if boundaries else step
        if self.last_mined == due:
            return
        if self.last_mined < 0 and due < step and self.saved is not None:  # resumed between two minings
            path = self.saved / f"step{due}.jsonl"
            if path.exists():
                self.negatives, self.last_mined = load_negatives(path), due
                return
        if due == step and not (self.given and due == boundaries[0]):
            self.negatives = mine_negatives(
                self.model,
                self.tok,
                self.facts,
                self.cfg,
                ref_model=self.ref_model,
                seed=self.cfg.seed + step,
                progress=False,
            )
            self.mined_rounds += 1
        self.last_mined = due
        if self.saved is not None and self.negatives is not None and dist_info().is_main:
            save_negatives(self.saved / f"step{due}.jsonl", self.negatives, overwrite=True)

    def fact_terms(self, model: Any, batch: list[Fact], phase: str, step: int) -> dict[str, torch.Tensor]:
        cfg, terms = self.cfg, {}
        if phase == "sft":
            pairs = encode_pairs(self.tok, [f.question for f in batch], [f.continuation(f.object) for f in batch])
            s = score_pairs(model, pairs, self.tok.pad_token_id)
            return {"sft": cfg.learn_weight * nll_loss(s.token_logp, s.mask)}
        truth_pairs = encode_pairs(self.tok, [f.prompt for f in batch], [f.continuation(f.object) for f in batch])
        debias = phase in ("debias", "both")
        if debias and cfg.debias_loss == "reinforce":
            pairs, rewards = _sample_rl(model, self.tok, batch, cfg, seed=cfg.seed * 7919 + step)
            logp = score_pairs(model, pairs, self.tok.pad_token_id).logp.view_as(rewards)
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
        s = score_pairs(model, truth_pairs + neg_pairs, self.tok.pad_token_id)
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
    out_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Continue training ``model`` in place under ``cfg``; see the module docstring for the phases.

    ``blocks`` are (n, block_size) corpus token blocks (:func:`scoring.make_blocks`). With a DPO debias
    phase and no ``ref_model``, a frozen copy of ``model`` as it is now becomes the reference.
    ``out_dir``: checkpoints (every ``log_every`` steps and at the end) and mined negatives; a rerun
    with the same folder resumes, ending as an unbroken run would. ``stop_after``: stop at that step.

    Raises:
        LongloreError: a fact objective without facts, or SFT facts without a question form.
    """
    from longlore.core.training import StepBatches, TrainingArgs, train_loop

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
    restrict_trainable(model, cfg.train_layers)
    out_dir = Path(out_dir) if out_dir is not None else None
    objective = _Objective(model, tokenizer, cfg, facts, ref_model, negatives, out_dir)
    fact_list = objective.facts

    def draw(rng: Any, step: int) -> list[tuple[str, int]]:
        """The step's batch: corpus blocks, then facts (continued NTP fills the fact slot with blocks)."""
        objective.before_step(step)
        phase = phase_at(step, cfg)
        extra = cfg.fact_batch_size if phase == "ntp" else 0
        items = [("block", rng.randrange(len(blocks))) for _ in range(cfg.batch_size + extra)]
        if phase != "ntp":
            picked = rng.sample(range(len(fact_list)), min(cfg.fact_batch_size, len(fact_list)))
            items += [("fact", j) for j in picked]
        return items

    def loss_fn(model: Any, items: list[tuple[str, int]], ctx: Any) -> tuple[torch.Tensor, dict[str, float]]:
        # Each term is a mean over the step's blocks or facts; a micro-batch holding part of them
        # returns its share scaled so that the loop's size weighting restores the full-batch loss.
        phase = phase_at(ctx.step, cfg)
        block_ids = [i for kind, i in items if kind == "block"]
        fact_ids = [i for kind, i in items if kind == "fact"]
        n_blocks = cfg.batch_size + (cfg.fact_batch_size if phase == "ntp" else 0)
        n_facts = max(ctx.global_size - n_blocks, 1)
        terms: dict[str, torch.Tensor] = {}
        if block_ids:
            share = len(block_ids) / n_blocks
            terms["ntp"] = share * cfg.ntp_weight * ntp_loss(model, blocks[torch.tensor(block_ids)])
        if fact_ids and phase != "ntp":
            share = len(fact_ids) / n_facts
            for name, value in objective.fact_terms(model, [fact_list[j] for j in fact_ids], phase, ctx.step).items():
                terms[name] = share * value
        scale = ctx.global_size / len(items)
        loss = scale * sum(terms.values())
        return loss, {name: scale * float(value.detach()) for name, value in terms.items()}

    args = TrainingArgs(
        steps=cfg.steps,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup,
        schedule="constant",
        grad_clip=cfg.grad_clip,
        checkpoint_every=cfg.log_every,
        log_every=0,
        seed=cfg.seed,
        stop_after=stop_after,
    )
    result = train_loop(
        model,
        loss_fn,
        StepBatches(draw, seed=cfg.seed),
        args,
        out_dir,
        description=f"training ({cfg.fact_objective})",
        progress=progress,
    )
    history = [
        {
            "step": row["step"],
            "phase": phase_at(row["step"], cfg),
            **{k: round(v, 4) for k, v in row.items() if k not in ("step", "lr", "loss")},
        }
        for row in result.history
        if row["step"] % cfg.log_every == 0 or row["step"] == cfg.steps - 1
    ]
    if progress:
        for row in history:
            console.log(row)
    model.eval()
    return TrainResult(
        history=history,
        negatives=objective.negatives or {},
        seconds=result.cost.get("wall_seconds", 0.0),
        cpu_seconds=result.cost.get("cpu_seconds", 0.0),
        mined_rounds=objective.mined_rounds,
        step=result.step,
        finished=result.finished,
    )
