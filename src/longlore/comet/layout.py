"""Chunk layout: where text, beacons and memory slots go, and how a batch of chunks is padded.

Chunk i of one example (official ``InputBuilder``)::

    [G global placeholders (i > 0)][T temporary placeholders][text with a <beacon> after every
    `stride` tokens][G global beacons]

T = min(beacons emitted so far, budget). Labels are the *next text token of the whole stream*
(so the last text token of chunk i predicts the first of chunk i + 1); placeholders and beacons
carry -100. Position ids restart at 0 in every chunk. While generating, the last chunk has no
trailing beacon after its last group and no global beacons (nothing is written to memory then).

A batch chunk pads the rows of one chunk index to a common shape so memory injection is a slice::

    [G][pad.. T_b temporary][text_b + beacons, pad..][G global beacons]

Padding is masked as attention keys and skipped by position ids, so a row's values equal those of
the same example run alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from longlore.comet.config import CometConfig

IGNORE = -100


@dataclass(frozen=True)
class SpecialIds:
    """Token ids of the tokens CoMeT adds: ``<|memory|>``, ``<beacon>``, ``<beacon_0..G-1>``."""

    placeholder: int
    temp_beacon: int
    global_beacons: tuple[int, ...]


@dataclass
class ChunkLayout:
    """One example's chunk (the parts that differ per example; the G slots are shared)."""

    body_ids: list[int]  # text with temporary beacons
    body_labels: list[int]
    body_weights: list[float]  # loss weight of each label (0 where the label is -100)
    temp_beacon_offsets: list[int]  # offsets of <beacon> inside body_ids
    n_global_in: int  # G placeholders in front (0 in the first chunk)
    n_temp_in: int  # temporary-memory placeholders in front
    global_out: bool  # G global beacons at the end (False only for a generating last chunk)
    n_text: int  # text tokens in this chunk


def build_layouts(
    ids: list[int],
    sizes: list[int],
    config: CometConfig,
    special: SpecialIds,
    labels: list[int] | None = None,
    generating: bool = False,
    weights: list[float] | None = None,
) -> list[ChunkLayout]:
    """Lay out one example's chunks (see module docstring). ``labels`` (aligned with ``ids``,
    -100 = no loss) default to ``ids``; they are shifted here so each token predicts the next.
    ``weights`` (aligned with ``ids``, default 1) scale each label's loss term and shift with it."""
    if sum(sizes) != len(ids) or any(s < 1 for s in sizes):
        raise ValueError(f"chunk sizes {sizes} do not partition {len(ids)} tokens")
    labels = list(ids if labels is None else labels)
    if weights is not None and len(weights) != len(ids):
        raise ValueError(f"{len(weights)} loss weights for {len(ids)} tokens")
    shifted = labels[1:] + [IGNORE]
    shifted_w = (list(weights[1:]) if weights is not None else [1.0] * (len(ids) - 1)) + [0.0]
    stride, budget = config.temp_stride, config.temp_budget
    layouts, start, emitted = [], 0, 0
    for i, size in enumerate(sizes):
        text, lab = ids[start : start + size], shifted[start : start + size]
        wts = [w if y != IGNORE else 0.0 for w, y in zip(shifted_w[start : start + size], lab)]
        last = i == len(sizes) - 1
        body, body_labels, body_weights, offsets = [], [], [], []
        if config.uses_temp:
            for beg in range(0, size, stride):
                body += text[beg : beg + stride]
                body_labels += lab[beg : beg + stride]
                body_weights += wts[beg : beg + stride]
                if generating and last and beg + stride >= size:
                    break  # the generator inserts the next beacon itself
                offsets.append(len(body))
                body.append(special.temp_beacon)
                body_labels.append(IGNORE)
                body_weights.append(0.0)
        else:
            body, body_labels, body_weights = list(text), list(lab), wts
        layouts.append(
            ChunkLayout(
                body_ids=body,
                body_labels=body_labels,
                body_weights=body_weights,
                temp_beacon_offsets=offsets,
                n_global_in=config.num_global if i > 0 else 0,
                n_temp_in=min(emitted, budget) if config.uses_temp else 0,
                global_out=config.num_global > 0 and not (generating and last),
                n_text=size,
            )
        )
        emitted += len(offsets)
        start += size
    return layouts


@dataclass
class BatchChunk:
    """One chunk index over the rows that have it, padded to a common shape.

    Shapes: R rows, L = G_in + T + N + G_out positions.
    """

    rows: list[int]  # batch indices of the rows present
    input_ids: torch.Tensor  # (R, L); placeholders hold the <|memory|> id
    labels: torch.Tensor  # (R, L)
    weights: torch.Tensor | None  # (R, L) float loss weight per label; None when every weight is 1
    position_ids: torch.Tensor  # (R, L), 0.. over real tokens of each row
    key_valid: torch.Tensor  # (R, L) bool, False on padding
    n_global_in: int  # G or 0 (width of the global region)
    global_rows: list[bool]  # per row: has global memory to inject
    temp_width: int  # T = max temporary entries over rows
    temp_counts: list[int]  # per row
    body_width: int  # N
    n_global_out: int  # G or 0
    beacon_index: torch.Tensor  # (R, nb) positions of temporary beacons (padded with 0)
    beacon_counts: list[int]  # per row


def collate_chunk(rows: list[int], layouts: list[ChunkLayout], special: SpecialIds, pad_id: int) -> BatchChunk:
    """Pad the ``layouts`` of one chunk index (one per row in ``rows``) into a :class:`BatchChunk`."""
    g_in = max(lay.n_global_in for lay in layouts)
    g_out = len(special.global_beacons) if layouts[0].global_out else 0
    if any(lay.global_out != layouts[0].global_out for lay in layouts):
        raise ValueError(
            "rows of one batch chunk disagree on global beacons; generating and training chunks cannot mix"
        )
    if g_out and any(lay.n_global_in != g_in for lay in layouts):
        # a row would update a gate state it does not have: only generating last chunks may mix
        raise ValueError("rows of one memory-writing chunk must all have (or all lack) global memory")
    t_width = max(lay.n_temp_in for lay in layouts)
    n_width = max(len(lay.body_ids) for lay in layouts)
    nb = max(1, max(len(lay.temp_beacon_offsets) for lay in layouts))
    length = g_in + t_width + n_width + g_out
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    weights = torch.zeros((len(rows), length), dtype=torch.float32)
    valid = torch.zeros((len(rows), length), dtype=torch.bool)
    beacon_index = torch.zeros((len(rows), nb), dtype=torch.long)
    for r, lay in enumerate(layouts):
        ids[r, :g_in] = special.placeholder
        valid[r, : lay.n_global_in] = True  # a row without memory yet keeps its global region masked
        t0 = g_in + t_width - lay.n_temp_in  # temporary entries are right-aligned in their region
        ids[r, t0 : g_in + t_width] = special.placeholder
        valid[r, t0 : g_in + t_width] = True
        b0 = g_in + t_width
        ids[r, b0 : b0 + len(lay.body_ids)] = torch.tensor(lay.body_ids, dtype=torch.long)
        labels[r, b0 : b0 + len(lay.body_ids)] = torch.tensor(lay.body_labels, dtype=torch.long)
        weights[r, b0 : b0 + len(lay.body_ids)] = torch.tensor(lay.body_weights, dtype=torch.float32)
        valid[r, b0 : b0 + len(lay.body_ids)] = True
        if g_out:
            ids[r, length - g_out :] = torch.tensor(special.global_beacons, dtype=torch.long)
            valid[r, length - g_out :] = True
        if lay.temp_beacon_offsets:
            beacon_index[r, : len(lay.temp_beacon_offsets)] = torch.tensor(lay.temp_beacon_offsets) + b0
    if bool(((weights == 1) | (labels == IGNORE)).all()):
        weights = None  # the plain mean: no per-token multiply
    # Positions restart at 0 in every chunk and count only real tokens (official init_position_ids).
    position_ids = (valid.long().cumsum(dim=1) - 1).clamp(min=0)
    return BatchChunk(
        rows=list(rows),
        input_ids=ids,
        labels=labels,
        weights=weights,
        position_ids=position_ids,
        key_valid=valid,
        n_global_in=g_in,
        global_rows=[lay.n_global_in > 0 for lay in layouts],
        temp_width=t_width,
        temp_counts=[lay.n_temp_in for lay in layouts],
        body_width=n_width,
        n_global_out=g_out,
        beacon_index=beacon_index,
        beacon_counts=[len(lay.temp_beacon_offsets) for lay in layouts],
    )


def collate_batch(per_example: list[list[ChunkLayout]], special: SpecialIds, pad_id: int) -> list[BatchChunk]:
    """Batch chunks for ragged examples: chunk c holds the rows that have at least c + 1 chunks."""
    n_chunks = max(len(chunks) for chunks in per_example)
    batch = []
    for c in range(n_chunks):
        rows = [b for b, chunks in enumerate(per_example) if len(chunks) > c]
        batch.append(collate_chunk(rows, [per_example[b][c] for b in rows], special, pad_id))
    return batch


def attention_bias(key_valid: torch.Tensor, dtype: torch.dtype, past_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Additive mask (R, 1, Q, K): causal inside the chunk, padding keys hidden.

    Works for both eager and SDPA attention. A padded query still sees itself, so no row is all
    -inf (that would put NaN into the backward pass). ``past_valid`` (R, P) are cached keys in
    front (decoding): all visible when valid.
    """
    q = key_valid.shape[1]
    causal = torch.ones(q, q, dtype=torch.bool).tril()
    allowed = causal[None] & key_valid[:, None, :]
    allowed |= torch.eye(q, dtype=torch.bool)[None]
    if past_valid is not None:
        allowed = torch.cat([past_valid[:, None, :].expand(-1, q, -1), allowed], dim=2)
    bias = torch.zeros(allowed.shape, dtype=dtype)
    bias.masked_fill_(~allowed, torch.finfo(dtype).min)
    return bias[:, None]  # (R, 1, Q, K)
