"""Shared-prefix reuse for a local model: compute a long common prompt prefix once.

Many bench requests begin with the same long text: the 2,646-token Chinese-SimpleQA judge template
(in SmolLM2's tokenizer), each ChineseEcomQA sub-concept's few-shot system prompt (PC: 5,637
tokens, shared by all 173 items), ECKGBench's 2-shot instructions, the four options of one
log-likelihood question. :class:`SharedPrefixModel` wraps a local :class:`HFTextModel`: requests
whose token ids share at least ``min_shared`` leading tokens form a cluster, the prefix's
key/value cache is computed once per cluster (``transformers``' documented prompt re-use: a
``DynamicCache`` filled by one forward, deep-copied per request), and each request then runs only
its own suffix. vLLM does the same automatically (``enable_prefix_caching``).

Requests in a cluster run in batches of the wrapped model's batch size on one copy of the prefix
cache (each suffix padded after the prefix, the padding masked); other requests go to the wrapped
model's batched path unchanged. A request for ``n > 1`` samples (the knowledge boundary's 5 at T=0.2) computes its
prompt once and repeats the cache ``n`` times instead of running the prompt ``n`` times. Outputs match the wrapped model up to float
rounding of the split computation (tested: the same greedy texts and log-likelihoods within 1e-4).
``model_id`` is the wrapped model's, so request-cache entries are shared with unwrapped runs.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import torch

from longlore.core.backends import GenerationRequest, HFTextModel, LoglikelihoodRequest, truncate_at_stop


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def prefix_clusters(sequences: Sequence[Sequence[int]], min_shared: int) -> list[tuple[list[int], int]]:
    """Clusters ``(indices, shared_length)`` of sequences sharing >= ``min_shared`` leading tokens.

    Sorting brings sequences with common prefixes together; a run of neighbours whose running common
    prefix stays >= ``min_shared`` is one cluster. Every index appears in exactly one cluster
    (singletons have ``shared_length`` 0). The shared length leaves each member at least one token.
    """
    order = sorted(range(len(sequences)), key=lambda i: tuple(sequences[i]))
    clusters: list[tuple[list[int], int]] = []
    members: list[int] = []
    shared = 0
    for i in order:
        if members:
            common = min(shared, _common_length(sequences[members[0]], sequences[i]))
            if common >= min_shared:
                members.append(i)
                shared = common
                continue
            clusters.append((members, shared if len(members) > 1 else 0))
        members, shared = [i], len(sequences[i])
    if members:
        clusters.append((members, shared if len(members) > 1 else 0))
    # Each member keeps at least one token of its own, whose logits start its continuation.
    return [(idx, min(length, min(len(sequences[i]) for i in idx) - 1) if length else 0) for idx, length in clusters]


def _cache_tensors(cache: Any) -> list[torch.Tensor]:
    """The key/value tensors of a ``DynamicCache`` (its layer layout differs across versions)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [
            t
            for layer in layers
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
            if t is not None
        ]
    return [*getattr(cache, "key_cache", []), *getattr(cache, "value_cache", [])]


def _cache_argument(model: Any) -> str:
    """The keyword that passes a KV cache: ``cache`` in recent ``transformers``, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


class SharedPrefixModel:
    """A :class:`~longlore.core.backends.TextModel` that reuses the KV cache of shared prefixes."""

    def __init__(self, inner: HFTextModel, min_shared: int = 256, max_cache_mb: float = 512.0) -> None:
        self.inner, self.min_shared, self.max_cache_mb = inner, min_shared, max_cache_mb
        self.model_id = inner.model_id
        self.prefix_tokens_saved = 0  # prompt tokens not recomputed thanks to the shared prefixes
        self._cache_arg = _cache_argument(inner.model)

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.inner.batch_size = value

    def format_chat(self, prompt: str | list[dict[str, str]], system: str | None = None) -> str:
        return self.inner.format_chat(prompt, system)

    @torch.no_grad()
    def _prefix_cache(self, ids: Sequence[int]) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache()
        with self.inner._lock:
            ids_tensor = torch.tensor([list(ids)], device=self.inner.model.device)
            self.inner.model(input_ids=ids_tensor, **{self._cache_arg: cache})
        return cache

    @torch.no_grad()
    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        tok = self.inner.tokenizer
        results: list[list[str] | None] = [None] * len(requests)
        rest: list[int] = []
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.params(), []).append(i)
        for indices in groups.values():
            if any(requests[i].json_schema is not None for i in indices):
                rest.extend(indices)  # schema-constrained rows decode through the wrapped model's filter
                continue
            if requests[indices[0]].n != 1:
                for i in indices:
                    results[i] = self._sample_set(requests[i])
                continue
            ids = [
                tok(self.inner._render(requests[i]), add_special_tokens=not requests[i].chat)["input_ids"]
                for i in indices
            ]
            for members, shared in prefix_clusters(ids, self.min_shared):
                if not shared:
                    rest.extend(indices[m] for m in members)
                    continue
                cache = self._prefix_cache(ids[members[0]][:shared])
                rows = self._rows_per_batch(cache)
                # Similar suffix lengths share a batch, as in the wrapped model's batching.
                members = sorted(members, key=lambda m: -len(ids[m]))
                for start in range(0, len(members), rows):
                    chunk = members[start : start + rows]
                    outs = self._generate_on_prefix(cache, shared, [ids[m] for m in chunk], requests[indices[chunk[0]]])
                    for m, text in zip(chunk, outs):
                        results[indices[m]] = [text]
                    self.prefix_tokens_saved += shared * len(chunk)
        if rest:
            for i, completions in zip(rest, self.inner.generate([requests[i] for i in rest])):
                results[i] = completions
        return results  # type: ignore[return-value]

    def _rows_per_batch(self, cache: Any) -> int:
        """The batch size for suffixes on one prefix: the model's, or fewer when the prefix cache
        repeated once per row would pass ``max_cache_mb`` (a 5.6K-token prefix of SmolLM2 is
        ~260 MB per row in float32, and every decoding step copies the whole cache)."""
        per_row = sum(t.numel() * t.element_size() for t in _cache_tensors(cache)) / 2**20
        return max(1, min(self.batch_size, int(self.max_cache_mb // max(per_row, 1e-9))))

    @torch.no_grad()
    def _generate_on_prefix(
        self, cache: Any, shared: int, rows: list[list[int]], request: GenerationRequest
    ) -> list[str]:
        """Greedy/sampled completions of ``rows`` (token ids that all start with the cached
        ``shared`` tokens), batched: each suffix is left-padded *after* the prefix, and the
        attention mask hides the padding (positions follow the mask, as with left padding)."""
        pad = self.inner.tokenizer.pad_token_id
        width = max(len(r) - shared for r in rows)
        input_ids = torch.tensor([r[:shared] + [pad] * (width - len(r) + shared) + r[shared:] for r in rows])
        mask = torch.tensor([[1] * shared + [0] * (width - len(r) + shared) + [1] * (len(r) - shared) for r in rows])
        batch_cache = copy.deepcopy(cache)
        if len(rows) > 1:
            batch_cache.batch_repeat_interleave(len(rows))
        prompt_len = shared + width
        kwargs = self.inner.generation_kwargs(request, prompt_len)
        device = self.inner.model.device
        with self.inner._lock:
            if request.temperature > 0:  # seeded under the lock, as HFTextModel.generate does
                torch.manual_seed(request.seed)
            out = self.inner.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                **{self._cache_arg: batch_cache},
                **kwargs,
            )
        texts = self.inner.tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
        return [truncate_at_stop(t, request.stop) for t in texts]

    @torch.no_grad()
    def _sample_set(self, request: GenerationRequest) -> list[str]:
        """``n`` samples of one prompt with its prefix computed once and repeated ``n`` times
        (``generate(num_return_sequences=n)`` would run the prompt n times). The rows and the
        random draws are those of ``num_return_sequences``: same seed, same samples."""
        tok = self.inner.tokenizer
        full = tok(self.inner._render(request), add_special_tokens=not request.chat)["input_ids"]
        if len(full) < 2:
            return self.inner.generate([request])[0]
        cache = self._prefix_cache(full[:-1])
        cache.batch_repeat_interleave(request.n)
        kwargs = self.inner.generation_kwargs(request, len(full))
        kwargs["num_return_sequences"] = 1
        input_ids = torch.tensor([full] * request.n, device=self.inner.model.device)
        with self.inner._lock:
            if request.temperature > 0:  # the seed the batched path sets, under the lock as HFTextModel does
                torch.manual_seed(request.seed)
            out = self.inner.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **{self._cache_arg: cache}, **kwargs
            )
        self.prefix_tokens_saved += (request.n - 1) * (len(full) - 1)
        return [
            truncate_at_stop(t, request.stop) for t in tok.batch_decode(out[:, len(full) :], skip_special_tokens=True)
        ]

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        """Each context's forward runs once for all its continuations (e.g. the options of one question)."""
        pairs = [self.inner._encode_pair(r) for r in requests]
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        by_context: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, _) in enumerate(pairs):
            by_context.setdefault(tuple(ctx), []).append(i)
        rest: list[int] = []
        device = self.inner.model.device
        for ctx, indices in by_context.items():
            if len(indices) < 2 or len(ctx) + max(len(pairs[i][1]) for i in indices) > self.inner.max_length:
                rest.extend(indices)
                continue
            cache = self._prefix_cache(ctx[:-1])
            for i in indices:
                cont = pairs[i][1]
                step = torch.tensor([[ctx[-1], *cont[:-1]]], device=device)  # predicts cont[0..]
                with self.inner._lock:
                    logits = self.inner.model(input_ids=step, **{self._cache_arg: copy.deepcopy(cache)}).logits
                logprobs = torch.log_softmax(logits[0].float(), dim=-1).cpu()  # (len(cont), V)
                target = torch.tensor(cont)
                score = logprobs.gather(-1, target[:, None]).sum().item()
                results[i] = (score, bool((logprobs.argmax(-1) == target).all()))
            self.prefix_tokens_saved += (len(indices) - 1) * len(ctx)
        if rest:
            for i, value in zip(rest, self.inner.loglikelihood([requests[i] for i in rest])):
                results[i] = value
        return results  # type: ignore[return-value]
