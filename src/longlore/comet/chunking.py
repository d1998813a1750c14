"""Chunk-boundary augmentation: how a training sequence is cut into chunks.

Written from a reading of the official planner (``DefaultChunkPlanner`` and its strategies). A
sequence of n tokens in a run whose longest sequence is ``max_len`` (a multiple of the chunk size
C, so at most K = max_len / C chunks) is cut by one strategy drawn with probabilities that depend
on its length:

=================  =======  =============  ======  =======  ========
regime             fixed    right-aligned  random  uniform  semantic
=================  =======  =============  ======  =======  ========
n < C              0.8      0.1            0.1     -        -
n < 0.75 max_len   0.6      0.1            0.2     0.05     0.05
otherwise          0.6      0.1            0.1     0.2      -
=================  =======  =============  ======  =======  ========

* fixed: ``[C, C, ..., remainder]``; right-aligned: ``[remainder, C, ..., C]`` (the text ends on a
  chunk boundary);
* uniform: K chunks whose sizes differ by at most 1, the larger ones first;
* random: a chunk count drawn uniformly from [ceil(n / C), min(n // 4, K)], every chunk at least 4
  tokens and at most C, the slack spread one token at a time over the chunks still below C, then the
  order shuffled;
* semantic: greedy windows of at most C cut after the last boundary token (newline, full stop,
  comma) that leaves either nothing or >= 4 tokens, at most K chunks, oversized chunks split or
  merged back and chunks under 4 tokens merged into the previous one when they fit.

Where this differs from the official code: it draws from the ``random.Random`` it is given (not the
global ``random``); where a strategy has no valid answer (random sizes for n < 4, uniform for
n < K, a semantic cut that would lose tokens or exceed C) it returns the fixed plan instead of
raising or dropping tokens; ``max_len`` defaults to the batch's longest sequence rounded up to a
multiple of C (the official code takes it from the data arguments).
"""

from __future__ import annotations

import math
import random

BOUNDARY_TEXTS = ("\n", "\n\n", ".", ",", "。")  # single-token ones become semantic cut points
MIN_CHUNK = 4  # the official min_chunk_size of the random and semantic strategies

# (strategy, cumulative probability) per regime; the order is the official draw order.
MIX_SHORT = (("fixed", 0.8), ("right_aligned", 0.9), ("random", 1.0))
MIX_MEDIUM = (("fixed", 0.6), ("right_aligned", 0.7), ("random", 0.9), ("uniform", 0.95), ("semantic", 1.0))
MIX_LONG = (("fixed", 0.6), ("right_aligned", 0.7), ("uniform", 0.9), ("random", 1.0))


def fixed_sizes(n: int, chunk: int) -> list[int]:
    """``[chunk] * (n // chunk) + [n % chunk]`` (the remainder only when non-zero)."""
    return [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])


def right_aligned_sizes(n: int, chunk: int) -> list[int]:
    """The remainder first, then full chunks."""
    return ([n % chunk] if n % chunk else []) + [chunk] * (n // chunk)


def uniform_sizes(n: int, num_chunks: int) -> list[int]:
    """``num_chunks`` sizes differing by at most one, the larger first (13, 3 -> [5, 4, 4])."""
    base, extra = divmod(n, num_chunks)
    return [base + 1] * extra + [base] * (num_chunks - extra)


def random_sizes(
    n: int, max_chunks: int, rng: random.Random, min_size: int = MIN_CHUNK, max_size: int = 2048
) -> list[int] | None:
    """Random count and sizes in [min_size, max_size], shuffled; None when no such plan exists."""
    fewest, most = math.ceil(n / max_size), min(n // min_size, max_chunks)
    if max_size < min_size or fewest > most:
        return None
    k = rng.randint(fewest, most)
    sizes = [min_size] * k
    open_ = list(range(k))  # chunks that can still grow
    for _ in range(n - k * min_size):
        pick = rng.randrange(len(open_))
        sizes[open_[pick]] += 1
        if sizes[open_[pick]] == max_size:
            open_.pop(pick)
    rng.shuffle(sizes)
    return sizes


def semantic_sizes(
    ids: list[int], max_size: int, boundary_ids: set[int], max_chunks: int | None = None, min_size: int = MIN_CHUNK
) -> list[int] | None:
    """Cut after boundary tokens (see the module docstring); at most ``max_chunks`` chunks. None
    where the official repair would drop tokens (more than ``max_chunks`` x ``max_size`` of them)."""
    n = len(ids)
    max_chunks = max_chunks if max_chunks is not None else n
    sizes: list[int] = []
    start = 0
    while start < n and len(sizes) < max_chunks:
        window_end = min(start + max_size, n)
        if len(sizes) == max_chunks - 1:
            end = n  # the last allowed chunk takes the rest (fixed in the repair below)
        else:
            end = next(
                (
                    cut
                    for cut in range(window_end, start + min_size - 1, -1)
                    if cut > 0 and ids[cut - 1] in boundary_ids and (cut == n or n - cut >= min_size)
                ),
                None,
            )
            if end is None:  # no boundary: take the window, but never leave a tail under min_size
                end = n - min_size if 0 < n - window_end < min_size else window_end
        if end <= start:
            end = window_end if window_end > start else n
        sizes.append(end - start)
        start = end
    for _ in range(len(sizes)):  # repair passes, as many as there are chunks
        changed = False
        for i in range(len(sizes)):  # as the official loop, the range is fixed when the pass starts
            if sizes[i] > max_size:
                changed = True
                spill, sizes[i] = sizes[i] - max_size, max_size
                if len(sizes) < max_chunks:
                    sizes.insert(i + 1, spill)
                elif i > 0:
                    sizes[i - 1] += spill
                else:
                    return None  # the official code drops the spill here
        for i in range(len(sizes) - 1, 0, -1):
            if sizes[i] < min_size and sizes[i - 1] + sizes[i] <= max_size:
                changed = True
                sizes[i - 1] += sizes.pop(i)
        if not changed:
            break
    return sizes


def regime_mix(n: int, chunk: int, max_len: int) -> tuple[tuple[str, float], ...]:
    """The strategy probabilities for a sequence of ``n`` tokens (module docstring table)."""
    if n < chunk:
        return MIX_SHORT
    if n < 0.75 * max_len:
        return MIX_MEDIUM
    return MIX_LONG


def choose_strategy(n: int, chunk: int, max_len: int, u: float) -> str:
    """The strategy that a uniform draw ``u`` in [0, 1) selects."""
    return next(name for name, upto in regime_mix(n, chunk, max_len) if u < upto)


def plan_with_strategy(
    ids: list[int],
    chunk: int,
    rng: random.Random,
    max_len: int | None = None,
    boundary_ids: set[int] | None = None,
) -> tuple[str, list[int]]:
    """(strategy drawn, chunk sizes) for one training sequence; see :func:`plan_chunks`."""
    n = len(ids)
    max_len = max(chunk, math.ceil(n / chunk) * chunk) if max_len is None else max_len
    if max_len % chunk or n > max_len:
        raise ValueError(f"max_len {max_len} must be a multiple of the chunk size {chunk} and >= {n}")
    max_chunks = max_len // chunk
    strategy = choose_strategy(n, chunk, max_len, rng.random())
    sizes: list[int] | None
    if strategy == "fixed":
        sizes = fixed_sizes(n, chunk)
    elif strategy == "right_aligned":
        sizes = right_aligned_sizes(n, chunk)
    elif strategy == "uniform":
        sizes = uniform_sizes(n, max_chunks) if n >= max_chunks else None
    elif strategy == "random":
        sizes = random_sizes(n, max_chunks, rng, MIN_CHUNK, chunk)
    else:
        sizes = semantic_sizes(ids, chunk, boundary_ids or set(), max_chunks)
    if sizes is None or sum(sizes) != n or any(not 1 <= s <= chunk for s in sizes) or len(sizes) > max_chunks:
        return strategy, fixed_sizes(n, chunk)  # no valid plan of this kind: the plain cut
    return strategy, sizes


def plan_chunks(
    ids: list[int],
    chunk: int,
    rng: random.Random | None = None,
    boundary_ids: set[int] | None = None,
    max_len: int | None = None,
) -> list[int]:
    """Chunk sizes for one sequence. Without ``rng``: fixed sizes. With it: chunk-boundary
    augmentation with the official length-dependent mix (module docstring)."""
    if rng is None or len(ids) <= 1:
        return fixed_sizes(len(ids), chunk)
    return plan_with_strategy(ids, chunk, rng, max_len, boundary_ids)[1]
