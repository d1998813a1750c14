"""Training: the source tagger, the few-shot target baselines and LST-NER.

Methods for the target domain (``METHODS``):

* ``target-only``: the pretrained encoder and a fresh head, trained on the target sentences.
* ``source-then-target``: the source tagger's encoder, a fresh target head, fine-tuned.
* ``multi-task``: the pretrained encoder with a source head and a target head, each step one
  target batch plus one source batch.
* ``lstner``: the source tagger's encoder and a fresh target head (``head_init="label-dist"``
  starts it at ``E_t = P E_s`` instead); the target label graph from the label distributions is
  fused into the token states, and the loss is ``CE + l_aux * BCE + l_gw * GW`` (GW on the
  fused label nodes). Ablations by config: ``l_gw=0`` (no graph matching), ``adjacency=
  "identity"`` or ``"shuffled"`` (the same fusion module on a graph without, or with wrong,
  edges: capacity-matched), ``use_graph=False`` (no fusion module at all).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch

from longlore.core.checkpoint import seed_everything
from longlore.core.devices import module_device_dtype
from longlore.core.errors import LongloreError
from longlore.core.models import load_encoder
from longlore.core.progress import console
from longlore.core.training import EpochBatches, StepContext, TrainingArgs, train_loop
from longlore.lstner.config import LSTNERConfig
from longlore.lstner.data import Encoded, LabelSet, Sentence, batches, collate, encode_sentence
from longlore.lstner.graph import build_adjacency, label_distributions, normalize_adjacency
from longlore.lstner.gw import cosine_cost
from longlore.lstner.loss import aux_bce, token_ce, total_loss
from longlore.lstner.model import LSTNERModel, MultiTaskTagger, Tagger, source_node_features
from longlore.lstner.pipeline import NERPipeline

METHODS = ("target-only", "source-then-target", "multi-task", "lstner")


def _param_groups(model: torch.nn.Module, cfg: LSTNERConfig) -> list[dict]:
    """AdamW groups: the encoder at ``lr``, everything new (heads, fusion) at ``head_lr``."""
    enc = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    new = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    return [g for g in ({"params": enc, "lr": cfg.lr}, {"params": new, "lr": cfg.head_lr}) if g["params"]]


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def fit(
    model: torch.nn.Module,
    encoded: list[Encoded],
    n_types: int,
    pad_id: int,
    cfg: LSTNERConfig,
    step_loss: Callable[[dict, StepContext], tuple[torch.Tensor, dict]],
    desc: str,
    out_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> list[dict]:
    """Optimise ``step_loss`` over shuffled epochs of ``encoded`` with the shared training loop
    (AdamW, linear warm-up then linear decay, gradient clipping at 1, checkpoints in ``out_dir``
    that a rerun resumes from). Returns the mean of each logged term per epoch."""
    per_epoch = -(-len(encoded) // cfg.batch_size)
    steps = cfg.epochs * per_epoch
    device = module_device_dtype(model)[0]

    def loss_fn(m: torch.nn.Module, items: list[Encoded], ctx: StepContext):
        return step_loss(_to(collate(items, pad_id, n_types), device), ctx)

    args = TrainingArgs(
        steps=steps,
        lr=cfg.lr,
        weight_decay=0.01,
        warmup_steps=max(1, int(cfg.warmup * steps)),
        schedule="linear",
        grad_clip=1.0,
        checkpoint_every=max(1, steps),
        log_every=0,
        seed=cfg.seed,
        stop_after=stop_after,
    )
    groups = [{**g, "weight_decay": 0.01} for g in _param_groups(model, cfg)]
    result = train_loop(
        model,
        loss_fn,
        EpochBatches(encoded, cfg.batch_size, seed=cfg.seed),
        args,
        out_dir,
        param_groups=groups,
        description=desc,
        progress=False,
    )
    history = []
    for epoch in range(cfg.epochs):
        rows = [r for r in result.history if r["step"] // per_epoch == epoch]
        if rows:
            keys = [k for k in rows[0] if k not in ("step", "lr", "loss")]
            history.append({"epoch": epoch + 1, **{k: round(sum(r[k] for r in rows) / len(rows), 5) for k in keys}})
    model.eval()
    return history


def _encode(sentences: list[Sentence], tokenizer, labels: LabelSet, cfg: LSTNERConfig) -> list:
    return [encode_sentence(s, tokenizer, labels, cfg.max_len) for s in sentences]


def train_source(
    sentences: list[Sentence],
    cfg: LSTNERConfig,
    dev: list[Sentence] | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    out_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> NERPipeline:
    """Train the source tagger and record the source label graph's distributions p(Y_s | y_s).

    The distributions are measured on ``dev`` (held-out source sentences) when given, else on
    the training sentences. ``out_dir`` holds the training checkpoint (a rerun resumes from it).
    """
    seed_everything(cfg.seed)
    labels = LabelSet.from_sentences(sentences)
    encoder, tokenizer = load_encoder(cfg.encoder, device=device, dtype=dtype, seed=cfg.seed)
    model = Tagger(encoder, len(labels), cfg.dropout)
    enc = _encode(sentences, tokenizer, labels, cfg)
    pipe = NERPipeline(model, tokenizer, labels, cfg, "tagger")
    pipe.extra["history"] = fit(
        model,
        enc,
        0,
        tokenizer.pad_token_id,
        cfg,
        lambda b, ctx: _ce_step(model, b),
        "train source tagger",
        out_dir,
        stop_after,
    )
    dist_on = _encode(dev or sentences, tokenizer, labels, cfg)
    dist = label_distributions(model, batches(dist_on, 64, tokenizer.pad_token_id), len(labels), cfg.temperature)
    pipe.extra["source_dist"] = dist.float().tolist()
    return pipe


def _ce_step(model: Tagger, batch: dict) -> tuple[torch.Tensor, dict]:
    loss = token_ce(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    return loss, {"ce": loss.detach()}


def _check_source(source: NERPipeline | None, method: str) -> NERPipeline:
    if source is None:
        raise LongloreError(
            f"method '{method}' needs a source tagger; run `longlore lstner train-source` and pass --source"
        )
    if "source_dist" not in source.extra:
        raise LongloreError(
            "the source model has no label distributions (extra.source_dist); retrain it with train-source"
        )
    return source


def target_adjacency(dist_t: torch.Tensor, cfg: LSTNERConfig) -> torch.Tensor:
    """(L, L) edge weights of the graph the fusion's GCN runs on, per ``cfg.adjacency``.

    ``label-dist``: edges from the label distributions (the method). ``identity``: no edges, so
    the GCN transforms each label node on its own. ``shuffled``: the same edge weights between
    labels permuted at random (seeded by ``cfg.seed``; never the identity permutation), so the
    graph keeps its density and weights but links the wrong labels. The last two keep every
    parameter of the fusion module: they are the capacity-matched ablations of the graph.
    """
    adj = build_adjacency(dist_t, cfg.edge_rule, cfg.edge_threshold, cfg.edge_k)
    if cfg.adjacency == "identity":
        return torch.zeros_like(adj)
    if cfg.adjacency == "shuffled":
        gen = torch.Generator().manual_seed(cfg.seed)
        n = adj.shape[0]
        perm = torch.randperm(n, generator=gen)
        while n > 1 and torch.equal(perm, torch.arange(n)):
            perm = torch.randperm(n, generator=gen)
        return adj[perm][:, perm]
    return adj


def build_lstner(source: NERPipeline, train: list[Sentence], labels: LabelSet, cfg: LSTNERConfig) -> LSTNERModel:
    """LST-NER model initialised from the source tagger and the target sentences' label graph.

    The target label distributions ``p(Y_s | y_t)`` come from the source tagger's predictions
    on ``train`` (softened by ``cfg.temperature``); the target graph's edges from them; the
    source graph's cost from the source head's label embeddings propagated over the source
    graph (built from ``source.extra["source_dist"]`` with the same edge rule).
    """
    src_model, tok = source.model, source.tokenizer
    model = LSTNERModel(copy.deepcopy(src_model.encoder), len(labels), len(labels.types), len(source.labels), cfg)
    enc = _encode(train, tok, labels, cfg)
    dist_t = label_distributions(src_model, batches(enc, 64, tok.pad_token_id), len(labels), cfg.temperature)  # (L, S)
    e_s, b_s = src_model.head.label_emb.detach(), src_model.head.bias.detach()
    dist_s = torch.tensor(source.extra["source_dist"], device=e_s.device)  # (S, S)
    with torch.no_grad():
        if cfg.head_init == "label-dist":
            # Target label embeddings start as the distribution-weighted source embeddings: a
            # target label the source tagger reads as "mostly LOC" starts next to LOC. (Labels
            # the source reads as "O" all start next to O, which few-shot training struggles
            # to pull apart; hence not the default.)
            model.head.label_emb.copy_(dist_t.float() @ e_s.float())
            model.head.bias.copy_(dist_t.float() @ b_s.float())
        model.label_dist.copy_(dist_t)
        adj_t = target_adjacency(dist_t.float(), cfg)
        model.adj.copy_(adj_t)
        model.adj_hat.copy_(normalize_adjacency(adj_t))
        adj_s = build_adjacency(dist_s, cfg.edge_rule, cfg.edge_threshold, cfg.edge_k)
        model.source_cost.copy_(cosine_cost(source_node_features(e_s.float(), adj_s.float())))
    return model


def lstner_loss(model: LSTNERModel, batch: dict, cfg: LSTNERConfig) -> tuple[torch.Tensor, dict]:
    """LST-NER's loss on one batch, ``CE + l_aux * BCE + l_gw * GW``, and its parts (detached).

    ``batch["types"]`` (B, K) is the multi-hot "which entity types occur" target; GW compares
    the source graph with the target graph of this batch's fused label nodes.
    """
    logits, type_logits, nodes = model.forward_all(batch["input_ids"], batch["attention_mask"])
    ce = token_ce(logits, batch["labels"])
    bce = aux_bce(type_logits, batch["types"].to(type_logits.dtype))
    gw = model.gw_loss(nodes) if cfg.l_gw > 0 else torch.zeros((), device=ce.device)
    parts = {"ce": ce.detach(), "bce": bce.detach(), "gw": gw.detach()}
    return total_loss(ce, bce, gw, cfg.l_aux, cfg.l_gw), parts


def train_target(
    train: list[Sentence],
    cfg: LSTNERConfig,
    method: str = "lstner",
    source: NERPipeline | None = None,
    source_sentences: list[Sentence] | None = None,
    labels: LabelSet | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    out_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> NERPipeline:
    """Train a target-domain tagger with ``method`` (see ``METHODS``) on the few-shot ``train``.

    Args:
        train: target sentences.
        cfg: hyper-parameters (``l_gw``, ``adjacency`` and ``use_graph`` select LST-NER's ablations).
        method: one of ``METHODS``.
        source: the source tagger (all methods except ``target-only``); the target model starts
            from (a copy of) its encoder, on its device and dtype.
        source_sentences: source training sentences (``multi-task`` only).
        labels: the target label set; defaults to the types seen in ``train``.
        device, dtype: where ``target-only`` / ``multi-task`` load the pretrained encoder.
        out_dir: training checkpoint folder (a rerun with the same settings resumes from it).
        stop_after: stop after this many optimiser steps (with a checkpoint), e.g. to test resume.
    """
    if method not in METHODS:
        raise LongloreError(f"method '{method}' is unknown; use one of {list(METHODS)}")
    seed_everything(cfg.seed)
    labels = labels or LabelSet.from_sentences(train)
    loop = {"out_dir": out_dir, "stop_after": stop_after}
    if method == "target-only":
        encoder, tok = load_encoder(cfg.encoder, device=device, dtype=dtype, seed=cfg.seed)
        model = Tagger(encoder, len(labels), cfg.dropout)
        pipe = NERPipeline(model, tok, labels, cfg, "tagger")
        enc = _encode(train, tok, labels, cfg)
        step = lambda b, ctx: _ce_step(model, b)
        pipe.extra["history"] = fit(model, enc, 0, tok.pad_token_id, cfg, step, "train target-only", **loop)
        return pipe
    source = _check_source(source, method)
    tok = source.tokenizer
    enc = _encode(train, tok, labels, cfg)
    if method == "source-then-target":
        model = Tagger(copy.deepcopy(source.model.encoder), len(labels), cfg.dropout)
        pipe = NERPipeline(model, tok, labels, cfg, "tagger")
        step = lambda b, ctx: _ce_step(model, b)
        pipe.extra["history"] = fit(model, enc, 0, tok.pad_token_id, cfg, step, "train source-then-target", **loop)
        return pipe
    if method == "multi-task":
        if not source_sentences:
            raise LongloreError("method 'multi-task' needs the source training sentences (--source-data)")
        # Same starting point as target-only: the pretrained encoder, both heads fresh.
        encoder, _ = load_encoder(cfg.encoder, device=device, dtype=dtype, seed=cfg.seed)
        model = MultiTaskTagger(encoder, len(labels), len(source.labels), cfg.dropout)
        src_batches = EpochBatches(_encode(source_sentences, tok, source.labels, cfg), cfg.batch_size, cfg.seed + 1)
        device_of = module_device_dtype(model)[0]

        def mt_step(batch: dict, ctx: StepContext) -> tuple[torch.Tensor, dict]:
            # one source batch per target step, a function of the step (so a resumed run sees the same)
            src = _to(collate(src_batches(ctx.step), tok.pad_token_id), device_of)
            ce_t = token_ce(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
            ce_s = token_ce(model.source_logits(src["input_ids"], src["attention_mask"]), src["labels"])
            return ce_t + ce_s, {"ce": ce_t.detach(), "ce_source": ce_s.detach()}

        pipe = NERPipeline(model, tok, labels, cfg, "multitask", source.labels)
        pipe.extra["history"] = fit(model, enc, 0, tok.pad_token_id, cfg, mt_step, "train multi-task", **loop)
        return pipe
    model = build_lstner(source, train, labels, cfg)
    pipe = NERPipeline(model, tok, labels, cfg, "lstner", source.labels)
    step = lambda b, ctx: lstner_loss(model, b, cfg)
    pipe.extra["history"] = fit(model, enc, len(labels.types), tok.pad_token_id, cfg, step, "train LST-NER", **loop)
    console.log(f"LST-NER trained: final epoch {pipe.extra['history'][-1]}")
    return pipe
