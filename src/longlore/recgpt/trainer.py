"""Build tower inputs from a dataset, train the three-tower retriever, and serve scores from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text
from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.data import Dataset, Split, descriptor_tags, frequent_attributes
from longlore.recgpt.loss import multi_positive_softmax, recgpt_loss, sampled_softmax
from longlore.recgpt.model import ThreeTower, fuse

MAX_ATTRS = 64  # attributes kept per item (actor lists are long; the mean of 64 is stable)


def user_feature_tokens(feats: dict[str, Any]) -> list[str]:
    """Categorical user features as tokens; ages are bucketed by decade."""
    out = []
    for key, value in feats.items():
        if key == "zip_code":
            continue
        if key == "age" and str(value).isdigit():
            value = f"{int(value) // 10 * 10}s"
        out.append(f"{key}={value}")
    return out


@dataclass
class Features:
    """Tensors the towers read, derived once from a dataset (and saved with the model)."""

    user_ids: list[str]
    item_ids: list[str]
    genres: list[str]
    user_vocab: list[str]
    attr_vocab: list[str]
    user_feats: torch.Tensor  # (U, F) padded with len(user_vocab)
    item_genres: torch.Tensor  # (N, G)
    item_attrs: torch.Tensor  # (N, MAX_ATTRS) padded with len(attr_vocab)

    @classmethod
    def build(cls, data: Dataset) -> Features:
        user_tokens = {u: user_feature_tokens(data.users.get(u, {})) for u in data.user_ids}
        user_vocab = sorted({t for ts in user_tokens.values() for t in ts})
        vi = {t: i for i, t in enumerate(user_vocab)}
        width = max([len(ts) for ts in user_tokens.values()] + [1])
        user_feats = torch.full((data.n_users, width), len(user_vocab), dtype=torch.long)
        for row, u in enumerate(data.user_ids):
            for col, tok in enumerate(user_tokens[u]):
                user_feats[row, col] = vi[tok]
        gi = {g: i for i, g in enumerate(data.genres)}
        item_genres = torch.zeros(data.n_items, max(len(data.genres), 1))
        attr_vocab = frequent_attributes(data)
        ai = {a: i for i, a in enumerate(attr_vocab)}
        item_attrs = torch.full((data.n_items, MAX_ATTRS), len(attr_vocab), dtype=torch.long)
        for row, iid in enumerate(data.item_ids):
            item = data.items[iid]
            for g in item.genres:
                item_genres[row, gi[g]] = 1.0
            known = [ai[a] for a in item.attributes if a in ai][:MAX_ATTRS]
            item_attrs[row, : len(known)] = torch.tensor(known, dtype=torch.long)
        return cls(
            data.user_ids, data.item_ids, data.genres, user_vocab, attr_vocab, user_feats, item_genres, item_attrs
        )


def history_window(indices: list[int], length: int, pad: int) -> list[int]:
    """The last ``length`` item indices, left-padded with ``pad``."""
    tail = indices[-length:]
    return [pad] * (length - len(tail)) + tail


def embed_texts(embedder: Any, texts: list[str]) -> torch.Tensor:
    return torch.from_numpy(np.asarray(embedder.embed(list(texts)), dtype=np.float32))


class Retriever:
    """A trained three-tower model with its features and tag encoder; scores users against all items."""

    def __init__(self, model: ThreeTower, features: Features, config: RecGPTConfig, embedder: Any) -> None:
        self.model, self.features, self.config, self.embedder = model.eval(), features, config, embedder
        self.item_index = {iid: i for i, iid in enumerate(features.item_ids)}
        self.user_index = {uid: i for i, uid in enumerate(features.user_ids)}
        self._text_cache: dict[str, torch.Tensor] = {}  # tag text -> frozen embedding (serving reuses tags)
        with torch.no_grad():
            self.item_vectors = model.item()  # (N, D), cached for serving

    @torch.no_grad()
    def user_vectors(self, users: list[str], histories: list[list[str]]) -> torch.Tensor:
        """(B, D) user vectors given each user's item-id history (oldest first)."""
        pad = len(self.features.item_ids)
        for u in users:
            if u not in self.user_index:
                raise LongloreError(f"unknown user id '{u}': the retriever was trained on {len(self.user_index)} users")
        rows = [self.user_index[u] for u in users]
        hist = torch.tensor(
            [
                history_window([self.item_index[i] for i in h if i in self.item_index], self.config.history_len, pad)
                for h in histories
            ],
            dtype=torch.long,
        )
        return self.model.user(torch.tensor(rows), self.features.user_feats[rows], hist)

    @torch.no_grad()
    def tag_vectors(self, tags: list[str]) -> torch.Tensor:
        """(T, D) tag-tower vectors; text embeddings are cached per tag string."""
        if not tags:
            return torch.zeros(0, self.config.dim)
        new = [t for t in dict.fromkeys(tags) if t not in self._text_cache]
        if new:
            self._text_cache.update(zip(new, embed_texts(self.embedder, new)))
        return self.model.tag(torch.stack([self._text_cache[t] for t in tags]))

    @torch.no_grad()
    def scores(
        self,
        user: str,
        history: list[str],
        tags: list[str] | None = None,
        beta: float | None = None,
        merge: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused scores over all items (N,) and, with tags, the index of the tag that retrieved each item (N,).

        ``merge`` (default ``config.tag_merge``): 'max' scores an item by its closest tag;
        'round_robin' ranks each tag's own list (b*y_col + (1-b)*y_sem_t, history items skipped)
        and interleaves them, so every tag (interest) gets an equal share of the top of the list;
        the merged items score above all others in merge order.
        """
        beta = self.config.beta if beta is None else beta
        merge = merge or self.config.tag_merge
        y_col = self.user_vectors([user], [history])[0] @ self.item_vectors.T  # (N,)
        if not tags:
            return y_col, None
        per_tag = self.tag_vectors(tags) @ self.item_vectors.T  # (T, N)
        y_sem, best = per_tag.max(dim=0)  # an item is retrieved by the tag closest to it
        fused = fuse(y_col, y_sem, beta)
        if merge == "max":
            return fused, best
        if merge != "round_robin":
            raise LongloreError(f"unknown tag merge '{merge}': use 'max' or 'round_robin'")
        seen = {self.item_index[i] for i in history if i in self.item_index}
        orders = torch.argsort(fuse(y_col.unsqueeze(0), per_tag, beta), dim=1, descending=True).tolist()  # (T, N)
        depth = min(self.config.merge_depth, len(fused) - len(seen))
        picked: list[int] = []
        taken = set(seen)
        best = best.clone()
        pointers = [0] * len(orders)
        while len(picked) < depth:
            for t, order in enumerate(orders):
                while order[pointers[t]] in taken:
                    pointers[t] += 1
                item = order[pointers[t]]
                taken.add(item)
                picked.append(item)
                best[item] = t
                if len(picked) == depth:
                    break
        merged = fused.clone()
        top = float(fused.max()) + 1.0
        merged[torch.tensor(picked)] = top + torch.arange(len(picked), 0, -1, dtype=fused.dtype)
        return merged, best

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        f = self.features
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(folder / "model.safetensors"))
        meta = {
            "config": self.config.to_dict(),
            "user_ids": f.user_ids,
            "item_ids": f.item_ids,
            "genres": f.genres,
            "user_vocab": f.user_vocab,
            "attr_vocab": f.attr_vocab,
            "text_dim": self.model.tag_mlp[0].in_features,
            "user_feats": f.user_feats.tolist(),
            "item_attrs": f.item_attrs.tolist(),
            "item_genres": f.item_genres.tolist(),
        }
        atomic_write_text(folder / "retriever.json", json.dumps(meta), overwrite=True)

    @classmethod
    def load(cls, folder: Path, embedder: Any = None) -> Retriever:
        if not (folder / "retriever.json").exists():
            raise LongloreError(f"{folder}: no retriever.json; train one with `longlore recgpt train`")
        meta = json.loads((folder / "retriever.json").read_text())
        config = RecGPTConfig.from_dict(meta["config"])
        feats = Features(
            meta["user_ids"],
            meta["item_ids"],
            meta["genres"],
            meta["user_vocab"],
            meta["attr_vocab"],
            torch.tensor(meta["user_feats"]),
            torch.tensor(meta["item_genres"]),
            torch.tensor(meta["item_attrs"]),
        )
        model = _new_model(feats, meta["text_dim"], config.dim)
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        if embedder is None:
            from longlore.core.models import load_embedder

            embedder = load_embedder(config.tag_embedder)
        return cls(model, feats, config, embedder)


def _new_model(f: Features, text_dim: int, dim: int) -> ThreeTower:
    return ThreeTower(
        len(f.user_ids),
        len(f.item_ids),
        len(f.user_vocab),
        f.item_genres,
        f.item_attrs,
        len(f.attr_vocab),
        text_dim,
        dim,
    )


def batch_losses(
    model: ThreeTower,
    feats: Features,
    users: torch.Tensor,
    items: torch.Tensor,
    histories: torch.Tensor,
    tag_texts: torch.Tensor,
    categories: torch.Tensor,
    has_tag: torch.Tensor,
    negatives: torch.Tensor,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_col, L_tag and L_cate of one batch of (user, next item, item tag) pairs.

    users, items (B,); histories (B, L); tag_texts (B, E) frozen text embeddings of each pair's
    descriptor tag; categories (B,) the tag's category index (-1: none); has_tag (B,) bool;
    negatives (K,) sampled item indices. Candidates are the B positives then the K negatives; a
    candidate equal to a row's own positive elsewhere in the list (an accidental hit) is masked
    out of that row's softmax. L_cate counts every candidate of the tag's category as positive.
    """
    cand_ids = torch.cat([items, negatives])  # (C,) = B + K
    cand = model.item(cand_ids)  # (C, D)
    positive = torch.arange(len(items))
    hit = cand_ids[None, :] == items[:, None]  # (B, C) accidental hits
    hit[positive, positive] = False
    h_u = model.user(users, feats.user_feats[users], histories)
    l_col = sampled_softmax(h_u, cand, positive, tau, hit)
    h_t = model.tag(tag_texts[has_tag])
    l_tag = sampled_softmax(h_t, cand, positive[has_tag], tau, hit[has_tag])
    cat_ok = categories[has_tag] >= 0
    same_cat = feats.item_genres[cand_ids][:, categories[has_tag].clamp(min=0)].T > 0  # (B', C)
    l_cate = multi_positive_softmax(h_t[cat_ok], cand, same_cat[cat_ok], tau)
    return l_col, l_tag, l_cate


def train_retriever(
    data: Dataset,
    split: Split,
    config: RecGPTConfig,
    embedder: Any = None,
    log_every: int = 0,
    out_dir: str | Path | None = None,
    stop_after: int | None = None,
) -> tuple[Retriever, dict]:
    """Train on every (user, next item) pair of the training logs; each pair also draws one of the
    item's descriptor tags for L_tag / L_cate. Returns the retriever and a summary with per-epoch
    losses and CPU seconds.

    Runs on the shared loop (:func:`longlore.core.training.train_loop`): shuffled epochs of
    ``config.batch_size`` pairs, AdamW at a constant ``config.lr``. With ``out_dir`` a checkpoint
    is written there every epoch (and at ``stop_after``) and a rerun resumes from it, ending with
    the same weights as an unbroken run."""
    from longlore.core.training import EpochBatches, TrainingArgs, train_loop

    if embedder is None:
        from longlore.core.models import load_embedder

        embedder = load_embedder(config.tag_embedder)
    torch.manual_seed(config.seed)
    feats = Features.build(data)
    item_index = {iid: i for i, iid in enumerate(feats.item_ids)}
    gi = {g: i for i, g in enumerate(feats.genres)}
    pad = len(feats.item_ids)
    tag_vocab: dict[str, int] = {}
    item_tags: list[list[tuple[int, int]]] = []
    for iid in feats.item_ids:
        item_tags.append(
            [
                (tag_vocab.setdefault(t, len(tag_vocab)), gi.get(c, -1) if c else -1)
                for t, c in descriptor_tags(data.items[iid], data.domain_plural)
            ]
        )
    tag_text = embed_texts(embedder, list(tag_vocab))  # (T, E), frozen
    users, items, hists = [], [], []
    for uid, seq in split.train.items():
        idx = [item_index[x.item_id] for x in seq]
        for k, v in enumerate(idx):
            users.append(data.user_index[uid])
            items.append(v)
            hists.append(history_window(idx[:k], config.history_len, pad))
    if not items:
        raise LongloreError("no training interactions: every user needs at least one training event")
    users_t, items_t, hists_t = torch.tensor(users), torch.tensor(items), torch.tensor(hists)
    model = _new_model(feats, tag_text.shape[1], config.dim)

    def loss_fn(model: ThreeTower, pairs: list[int], ctx: Any) -> tuple[torch.Tensor, dict[str, float]]:
        b = torch.tensor(pairs)
        v = items_t[b]
        # the pair's descriptor tag and the shared negatives come from ctx.rng: a resumed run redraws them
        choices = [ctx.rng.choice(item_tags[i]) if item_tags[i] else (-1, -1) for i in v.tolist()]
        has_tag = torch.tensor([t >= 0 for t, _ in choices])
        tags = torch.tensor([max(t, 0) for t, _ in choices])
        cats = torch.tensor([c for _, c in choices])
        gen = torch.Generator().manual_seed(ctx.rng.randrange(2**62))
        negatives = torch.randint(0, len(feats.item_ids), (config.n_negatives,), generator=gen)
        l_col, l_tag, l_cate = batch_losses(
            model, feats, users_t[b], v, hists_t[b], tag_text[tags], cats, has_tag, negatives, config.temperature
        )
        loss = recgpt_loss(l_col, l_tag, l_cate, config.alpha, config.semantic_weight)
        return loss, {"col": l_col.item(), "tag": l_tag.item(), "cate": l_cate.item()}

    batches = EpochBatches(list(range(len(items))), config.batch_size, seed=config.seed)
    args = TrainingArgs(
        steps=config.epochs * batches.per_epoch,
        lr=config.lr,
        weight_decay=config.weight_decay,
        schedule="constant",
        grad_clip=0.0,
        checkpoint_every=batches.per_epoch,
        log_every=batches.per_epoch * log_every,
        seed=config.seed,
        stop_after=stop_after,
    )
    result = train_loop(
        model,
        loss_fn,
        batches,
        args,
        out_dir,
        description="RecGPT: training the three towers",
        progress=bool(log_every),
    )
    history = []
    for epoch in range(-(-len(result.history) // batches.per_epoch)):
        rows = result.history[epoch * batches.per_epoch : (epoch + 1) * batches.per_epoch]
        means = {k: sum(r[k] for r in rows) / len(rows) for k in ("loss", "col", "tag", "cate")}
        history.append({"epoch": epoch + 1, **{k: round(v, 4) for k, v in means.items()}})
    summary = {
        "pairs": len(items),
        "epochs": config.epochs,
        "steps": result.step,
        "finished": result.finished,
        "seconds": round(result.cost.get("wall_seconds", 0.0), 1),
        "cpu_seconds": round(result.cost.get("cpu_seconds", 0.0), 1),
        "descriptor_tags": len(tag_vocab),
        "history": history,
    }
    return Retriever(model, feats, config, embedder), summary
