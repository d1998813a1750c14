"""CometModel: CoMeT memory around any transformers decoder-only causal LM (Llama, Qwen2, Qwen3, ...).

The wrapper never edits the backbone: it keeps it as ``base_model``, calls its decoder layers one
(layer, chunk) at a time, and keeps its own parameters in two prefixed submodules: ``memory``
(one :class:`LayerMemoryNets` per layer) and ``token_embed`` (the rows of the new tokens,
mean-initialised). The new tokens are added to the tokenizer; they are never predicted, so the
LM head is unchanged.

Shape legend: B batch rows, R rows present in a chunk, L chunk length, D hidden, V vocabulary.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from longlore.comet.chunking import BOUNDARY_TEXTS, plan_chunks
from longlore.comet.config import CometConfig
from longlore.comet.layout import (
    BatchChunk,
    SpecialIds,
    attention_bias,
    build_layouts,
    collate_batch,
    collate_chunk,
)
from longlore.comet.loss import token_ce_sum
from longlore.comet.memory import LayerMemory, LayerMemoryNets, MemoryState, enqueue
from longlore.core.errors import LongloreError

PLACEHOLDER, TEMP_BEACON = "<|memory|>", "<beacon>"
WEIGHTS_NAME, CONFIG_NAME, BACKBONE_DIR = "comet_model.safetensors", "comet_config.json", "backbone"
FORMAT_VERSION = 1  # of the versioned layout (core.saving); the unversioned 0.1 layout is still read


def _decoder_parts(base_model: nn.Module) -> tuple[Any, Any, Any, Any]:
    """(layers, final norm, rotary embedding, lm head) of a HF causal LM, or a one-line error."""
    decoder = base_model.get_decoder() if hasattr(base_model, "get_decoder") else None
    parts = [getattr(decoder, name, None) for name in ("layers", "norm", "rotary_emb")]
    head = base_model.get_output_embeddings() if hasattr(base_model, "get_output_embeddings") else None
    if decoder is None or any(p is None for p in parts) or head is None:
        raise LongloreError(
            f"CometModel: {type(base_model).__name__} is not a supported decoder-only LM; it needs "
            "model.layers, model.norm, model.rotary_emb and an LM head (Llama, Qwen2, Qwen3, "
            "Mistral, SmolLM2 families)"
        )
    if "cache" not in inspect.signature(parts[0][0].forward).parameters:
        import transformers

        raise LongloreError(
            f"CometModel needs transformers>=5 (decoder layers called with `cache=`); found "
            f"{transformers.__version__}: pip install -U 'transformers>=5'"
        )
    types = set(getattr(base_model.config, "layer_types", None) or ["full_attention"])
    if types != {"full_attention"}:
        raise LongloreError(
            f"CometModel: layer types {sorted(types)} found; only full-attention layers are supported "
            "(turn sliding-window attention off in the backbone config)"
        )
    return parts[0], parts[1], parts[2], head


@dataclass
class CometOutput:
    """Loss over text tokens (mean), its parts, and optional per-chunk logits (R, L, V)."""

    loss: torch.Tensor | None
    loss_sum: torch.Tensor
    n_tokens: int
    logits: list[torch.Tensor] | None
    state: MemoryState


class CometModel(nn.Module):
    """A causal LM with CoMeT memory: ``forward`` (training), ``stream``/``generate`` (inference)."""

    def __init__(self, base_model: nn.Module, tokenizer: Any, config: CometConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.config = config = config or CometConfig()
        self.base_model, self.tokenizer = base_model, tokenizer
        self.layers, self.norm, self.rotary, self.lm_head = _decoder_parts(base_model)
        self.special = self._add_tokens(tokenizer, config.num_global)
        base_embed = base_model.get_input_embeddings()
        hidden, dtype = base_embed.weight.shape[1], base_embed.weight.dtype
        n_new = 2 + config.num_global
        self.token_embed = nn.Embedding(n_new, hidden, dtype=dtype)
        with torch.no_grad():  # mean init, as resize_token_embeddings(mean_resizing=True) does
            self.token_embed.weight.copy_(base_embed.weight.float().mean(0).to(dtype).expand(n_new, -1))
        self.memory = nn.ModuleList(
            LayerMemoryNets(hidden, config.rank, config.num_global > 0, config.uses_temp, config.gate_bias)
            for _ in range(len(self.layers))
        )
        std = float(getattr(base_model.config, "initializer_range", 0.02))
        generator = torch.Generator().manual_seed(seed)  # same weights in every process (pipeline ranks)
        for module in self.memory.modules():  # the official _init_weights: normal(0, initializer_range)
            if isinstance(module, nn.Linear):
                with torch.no_grad():
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
        self.memory.to(device=base_embed.weight.device, dtype=dtype)
        self.token_embed.to(device=base_embed.weight.device)
        self.set_mode(config.mode)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.boundary_ids: set[int] = set()  # single-token boundaries for semantic chunk cuts
        for text in BOUNDARY_TEXTS:
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(piece) == 1:
                self.boundary_ids.add(piece[0])

    # ----- setup -----
    @staticmethod
    def _add_tokens(tokenizer: Any, num_global: int) -> SpecialIds:
        new = [PLACEHOLDER, TEMP_BEACON] + [f"<beacon_{i}>" for i in range(num_global)]
        tokenizer.add_tokens(new, special_tokens=True)  # no-op for tokens it already has
        ids = tokenizer.convert_tokens_to_ids(new)
        if ids != list(range(ids[0], ids[0] + len(new))):
            raise LongloreError(
                "CometModel: the tokenizer already holds some CoMeT tokens with other ids; pass the "
                "backbone's original tokenizer (or the one saved beside this CoMeT model)"
            )
        return SpecialIds(placeholder=ids[0], temp_beacon=ids[1], global_beacons=tuple(ids[2:]))

    def set_mode(self, mode: str) -> None:
        """'full': everything trains; 'memory-only': the backbone is frozen."""
        self.config.mode = mode
        self.base_model.requires_grad_(mode == "full")

    @property
    def first_new_id(self) -> int:
        return self.special.placeholder

    @property
    def device(self) -> torch.device:
        return self.token_embed.weight.device

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings; the CoMeT tokens come from ``token_embed``. (R, L) -> (R, L, D)."""
        is_new = ids >= self.first_new_id
        base = self.base_model.get_input_embeddings()(ids.masked_fill(is_new, 0))
        new = self.token_embed((ids - self.first_new_id).clamp(min=0))
        return torch.where(is_new[..., None], new, base)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def new_state(self, batch_size: int = 1) -> MemoryState:
        return MemoryState(len(self.layers), batch_size)

    # ----- the (layer, chunk) step every code path shares -----
    def chunk_context(self, chunk: BatchChunk) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """(embeddings, rotary (cos, sin), additive attention mask) of one batch chunk."""
        h = self.embed(chunk.input_ids.to(self.device))
        rope = self.rotary(h, chunk.position_ids.to(self.device))
        return h, rope, attention_bias(chunk.key_valid, h.dtype).to(self.device)

    def layer_chunk(
        self,
        index: int,
        h: torch.Tensor,
        chunk: BatchChunk,
        mem: LayerMemory,
        rope: tuple[torch.Tensor, torch.Tensor],
        bias: torch.Tensor,
        cache: Any = None,
        write_memory: bool = True,
    ) -> tuple[torch.Tensor, LayerMemory]:
        """Inject memory into the placeholders, run decoder layer ``index`` on the chunk, read the
        beacons into new memory. h (R, L, D) -> (R, L, D)."""
        if self.training and self.config.gradient_checkpointing and cache is None:
            flat = checkpoint(
                self._layer_chunk_flat,
                index,
                h,
                chunk,
                mem.global_mem,
                mem.global_state,
                mem.temp,
                tuple(mem.temp_counts),
                rope,
                bias,
                write_memory,
                use_reentrant=False,
            )
            out, gm, gs, temp, counts = flat
            return out, LayerMemory(gm, gs, temp, list(counts))
        out, gm, gs, temp, counts = self._layer_chunk_flat(
            index,
            h,
            chunk,
            mem.global_mem,
            mem.global_state,
            mem.temp,
            tuple(mem.temp_counts),
            rope,
            bias,
            write_memory,
            cache,
        )
        return out, LayerMemory(gm, gs, temp, list(counts))

    def _layer_chunk_flat(
        self, index, h, chunk, global_mem, global_state, temp, counts, rope, bias, write_memory, cache=None
    ):
        g_in, t_width = chunk.n_global_in, chunk.temp_width
        if list(counts or [0] * len(chunk.rows)) != chunk.temp_counts and t_width:
            raise RuntimeError(f"temporary memory counts {counts} do not match the chunk layout {chunk.temp_counts}")
        parts = []
        if g_in:
            parts.append(global_mem)  # (R, G, D) into the G placeholders
        if t_width:
            parts.append(temp[:, -t_width:])  # (R, T, D) right-aligned, as the layout expects
        if parts:
            h = torch.cat(parts + [h[:, g_in + t_width :]], dim=1)
        out = self.layers[index](
            h,
            attention_mask=bias,
            position_ids=chunk.position_ids.to(h.device),
            position_embeddings=rope,
            cache=cache,
            use_cache=cache is not None,
        )
        out = out[0] if isinstance(out, tuple) else out
        nets: LayerMemoryNets = self.memory[index]
        counts = list(counts) if counts else [0] * len(chunk.rows)
        if write_memory and chunk.n_global_out and nets.global_net is not None:
            global_mem, global_state = nets.global_net(out[:, -chunk.n_global_out :], global_state)
        if write_memory and nets.temp_net is not None and max(chunk.beacon_counts) > 0:
            index_ = chunk.beacon_index.to(out.device)[..., None].expand(-1, -1, out.shape[-1])
            beacons = nets.temp_net(out.gather(1, index_))  # (R, nb, D)
            temp, counts = enqueue(temp, counts, beacons, chunk.beacon_counts, self.config.temp_budget)
        return out, global_mem, global_state, temp, tuple(counts)

    # ----- training / full forward -----
    def prepare(
        self,
        ids: list[list[int]],
        labels: list[list[int]] | None = None,
        sizes: list[list[int]] | None = None,
        rng: Any = None,
        weights: list[list[float]] | None = None,
    ) -> list[BatchChunk]:
        """Chunk, lay out and batch token sequences (ragged allowed). ``rng`` turns on chunk-boundary
        augmentation (when the config allows it); ``sizes`` fixes the chunk sizes per example;
        ``weights`` (aligned with ``ids``) scale each token's loss term."""
        per_example = []
        size = self.config.chunk_size
        max_len = max(size, -(-max(len(x) for x in ids) // size) * size)  # the planner's K = max_len / C
        for b, seq in enumerate(ids):
            if not seq:
                raise LongloreError(f"CometModel: example {b} is empty; every sequence needs at least one token")
            aug = rng if self.config.augment_chunks else None
            given = sizes[b] if sizes is not None else None
            plan = given if given is not None else plan_chunks(seq, size, aug, self.boundary_ids, max_len)
            per_example.append(
                build_layouts(
                    seq,
                    plan,
                    self.config,
                    self.special,
                    labels[b] if labels else None,
                    weights=weights[b] if weights else None,
                )
            )
        return collate_batch(per_example, self.special, self.pad_id)

    def forward(
        self, chunks: list[BatchChunk], state: MemoryState | None = None, return_logits: bool = False
    ) -> CometOutput:
        """All chunks of a batch, layer-major (each layer runs every chunk in order, memory flowing
        chunk to chunk, as the official plugin does). Gradients flow through the memory."""
        batch = max(r for c in chunks for r in c.rows) + 1
        if state is not None and any(state.chunks_seen):
            raise LongloreError(
                "CometModel.forward starts new streams from prepare(); continue a used state with "
                "stream_chunk() or read(), or call state.reset() first"
            )
        state = state or self.new_state(batch)
        contexts = [self.chunk_context(c) for c in chunks]
        hs = [ctx[0] for ctx in contexts]
        for index in range(len(self.layers)):
            for ci, chunk in enumerate(chunks):
                mem = state.get(index, chunk.rows)
                hs[ci], mem = self.layer_chunk(index, hs[ci], chunk, mem, contexts[ci][1], contexts[ci][2])
                state.put(index, chunk.rows, mem)
        return self._head(chunks, hs, state, return_logits)

    def _head(self, chunks, hs, state, return_logits) -> CometOutput:
        total = hs[0].new_zeros(())
        count, logits = 0, [] if return_logits else None
        for chunk, h in zip(chunks, hs):
            labels = chunk.labels.to(h.device)
            h = self.norm(h)
            s, n = token_ce_sum(h, labels, self.lm_head, chunk.weights)
            total, count = total + s, count + n
            if return_logits:
                logits.append(self.lm_head(h))
        for c in chunks:
            state.chunks_seen = [s + (i in c.rows) for i, s in enumerate(state.chunks_seen)]
            for r, n in zip(c.rows, c.beacon_counts):
                state.beacons_seen[r] += n
        loss = total / count if count else None
        return CometOutput(loss=loss, loss_sum=total, n_tokens=count, logits=logits, state=state)

    def loss(
        self,
        ids: list[list[int]],
        labels: list[list[int]] | None = None,
        rng: Any = None,
        weights: list[list[float]] | None = None,
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over text tokens of a (ragged) batch: the sum of each
        labelled token's CE (times its weight, when ``weights`` are given) over the labelled count."""
        out = self.forward(self.prepare(ids, labels, rng=rng, weights=weights))
        if out.loss is None:
            raise LongloreError("CometModel.loss: no text token carries a label")
        return out.loss

    # ----- streaming inference -----
    def _next_layout(self, ids: list[int], state: MemoryState, row: int, generating: bool):
        layout = build_layouts(ids, [len(ids)], self.config, self.special, generating=generating)[0]
        layout.n_global_in = self.config.num_global if state.chunks_seen[row] > 0 else 0
        layout.n_temp_in = min(state.beacons_seen[row], self.config.temp_budget) if self.config.uses_temp else 0
        return layout

    @torch.no_grad()
    def stream_chunk(self, ids: list[list[int]], state: MemoryState, rows: list[int] | None = None) -> MemoryState:
        """Write one chunk per row (each at most chunk_size tokens) into ``state``, chunk-major and
        without any KV cache: the memory stays O(layers x (2G + B) x D) whatever was read before."""
        rows = list(range(len(ids))) if rows is None else rows
        if any(len(x) > self.config.chunk_size or not x for x in ids):
            raise LongloreError(f"stream_chunk: each chunk needs 1..{self.config.chunk_size} tokens")
        chunk = collate_chunk(
            rows, [self._next_layout(x, state, r, False) for x, r in zip(ids, rows)], self.special, self.pad_id
        )
        h, rope, bias = self.chunk_context(chunk)
        for index in range(len(self.layers)):
            h, mem = self.layer_chunk(index, h, chunk, state.get(index, rows), rope, bias)
            state.put(index, rows, mem)
        for r, n in zip(rows, chunk.beacon_counts):
            state.chunks_seen[r] += 1
            state.beacons_seen[r] += n
        return state

    @torch.no_grad()
    def read(self, ids: list[list[int]], state: MemoryState | None = None) -> MemoryState:
        """Stream whole sequences into memory, one chunk at a time (ragged rows allowed)."""
        state = state or self.new_state(len(ids))
        size = self.config.chunk_size
        for c in range(max(-(-len(x) // size) for x in ids)):
            rows = [r for r, x in enumerate(ids) if len(x) > c * size]
            self.stream_chunk([ids[r][c * size : (c + 1) * size] for r in rows], state, rows)
        return state

    @torch.no_grad()
    def generate_ids(
        self,
        prompts: list[list[int]],
        max_new_tokens: int = 32,
        state: MemoryState | None = None,
        eos_id: int | None = None,
        share_prefix: bool = False,
    ) -> list[list[int]]:
        """Greedy decoding after streaming each prompt; only the last prompt chunk keeps a KV cache.

        All chunks but the last go through memory (``stream_chunk``); the last one is pre-filled
        with a KV cache; a ``<beacon>`` is fed after every ``temp_stride`` text tokens of that
        chunk, prompt and answer alike, as the official generator forces it. ``share_prefix``
        streams the whole chunks that every prompt starts with once and copies that memory to
        every row (rows are independent, so the answers are those of separate streams).
        """
        from transformers import DynamicCache

        size = self.config.chunk_size
        n_chunks = [-(-len(p) // size) for p in prompts]  # fixed-size chunks, the remainder last
        first = 0
        if share_prefix and state is None and len(prompts) > 1:
            limit = min(n_chunks) - 1  # never share a prompt's last chunk (it is decoded with a cache)
            while first < limit and all(
                p[first * size : (first + 1) * size] == prompts[0][first * size : (first + 1) * size] for p in prompts
            ):
                first += 1
            if first:
                shared = self.new_state(1)
                for c in range(first):
                    self.stream_chunk([prompts[0][c * size : (c + 1) * size]], shared)
                state = shared.repeat(len(prompts))
        state = state or self.new_state(len(prompts))
        for c in range(first, max(n_chunks) - 1):
            rows = [r for r, n in enumerate(n_chunks) if n - 1 > c]
            self.stream_chunk([prompts[r][c * size : (c + 1) * size] for r in rows], state, rows)
        rows = list(range(len(prompts)))
        lasts = [prompts[r][(n_chunks[r] - 1) * size :] for r in rows]
        chunk = collate_chunk(
            rows, [self._next_layout(x, state, r, True) for x, r in zip(lasts, rows)], self.special, self.pad_id
        )
        cache = DynamicCache(config=self.base_model.config)
        h, rope, bias = self.chunk_context(chunk)
        for index in range(len(self.layers)):
            h, _ = self.layer_chunk(
                index, h, chunk, state.get(index, rows), rope, bias, cache=cache, write_memory=False
            )
        # bodies are left-aligned (padding after them), so read each row's last real token
        last_pos = [int(chunk.key_valid[r].nonzero().max()) for r in rows]
        logits = self.lm_head(self.norm(h[torch.arange(len(rows)), last_pos]))
        past_valid = chunk.key_valid.clone()
        next_pos = chunk.position_ids.max(dim=1).values + 1
        text_count = [len(x) for x in lasts]
        stride = self.config.temp_stride
        need_beacon = [self.config.uses_temp and n % stride == 0 for n in text_count]
        pending = logits.argmax(-1).tolist()
        outputs: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)
        while not all(done):
            feed = []
            for r in rows:
                if need_beacon[r]:
                    feed.append(self.special.temp_beacon)
                else:
                    feed.append(pending[r])
                    if not done[r]:
                        outputs[r].append(pending[r])
                        done[r] = len(outputs[r]) >= max_new_tokens or (eos_id is not None and pending[r] == eos_id)
            if all(done):
                break
            ids = torch.tensor(feed, device=self.device)[:, None]
            step_bias = attention_bias(torch.ones(len(rows), 1, dtype=torch.bool), h.dtype, past_valid).to(self.device)
            x = self.embed(ids)
            rope = self.rotary(x, next_pos[:, None].to(self.device))
            for index in range(len(self.layers)):
                x = self.layers[index](
                    x,
                    attention_mask=step_bias,
                    position_ids=next_pos[:, None].to(self.device),
                    position_embeddings=rope,
                    cache=cache,
                    use_cache=True,
                )
                x = x[0] if isinstance(x, tuple) else x
            step_logits = self.lm_head(self.norm(x))[:, -1]
            past_valid = torch.cat([past_valid, torch.ones(len(rows), 1, dtype=torch.bool)], dim=1)
            next_pos = next_pos + 1
            for r in rows:
                if need_beacon[r]:
                    need_beacon[r] = False  # the logits after a beacon are not used: the pending token follows
                else:
                    text_count[r] += 1
                    need_beacon[r] = self.config.uses_temp and text_count[r] % stride == 0
                    pending[r] = int(step_logits[r].argmax())
        return outputs

    def generate(
        self,
        prompts: str | list[str],
        max_new_tokens: int = 32,
        state: MemoryState | None = None,
        stop_at_eos: bool = True,
    ) -> list[str]:
        """Greedy completions of text prompts of any length (see :meth:`generate_ids`)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        ids = [self.encode(p) for p in prompts]
        if any(not x for x in ids):
            raise LongloreError("CometModel.generate: empty prompt")
        eos = self.tokenizer.eos_token_id if stop_at_eos else None
        out = self.generate_ids(ids, max_new_tokens, state, eos)
        return [self.tokenizer.decode([t for t in o if t != eos], skip_special_tokens=True) for o in out]

    # ----- parameters, save / load -----
    def memory_parameters(self) -> list[nn.Parameter]:
        return list(self.memory.parameters())

    def comet_state_dict(self) -> dict[str, torch.Tensor]:
        """Only CoMeT's own tensors (memory nets + new-token embeddings)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("memory.", "token_embed."))}

    def save_pretrained(self, path: str | Path, include_backbone: bool | None = None) -> Path:
        """Write the memory modules + config (``comet_model.safetensors``, ``comet_config.json``,
        versioned, atomically), and the backbone + tokenizer under ``backbone/`` (default: when mode
        is 'full', since it was trained)."""
        from longlore.core.saving import save_pretrained_folder

        include = self.config.mode == "full" if include_backbone is None else include_backbone

        def add_backbone(tmp: Path) -> None:
            if include:
                self.base_model.save_pretrained(tmp / BACKBONE_DIR)
                self.tokenizer.save_pretrained(tmp / BACKBONE_DIR)

        extra = {
            "class": type(self).__name__,
            "backbone_class": type(self.base_model).__name__,
            "hidden_size": self.token_embed.weight.shape[1],
            "num_layers": len(self.layers),
            "includes_backbone": include,
            "special_ids": {"placeholder": self.special.placeholder, "temp_beacon": self.special.temp_beacon},
        }
        return save_pretrained_folder(
            path,
            kind="comet",
            version=FORMAT_VERSION,
            config=self.config.to_dict(),
            tensors=self.comet_state_dict(),
            extra=extra,
            also=add_backbone,
        )

    @staticmethod
    def _read_folder(path: str | Path) -> tuple[Path, dict, dict[str, torch.Tensor]]:
        """(folder, meta with the config under "config", tensors); also reads the unversioned
        layout of longlore 0.1 (config under "comet")."""
        from safetensors.torch import load_file

        from longlore.core.io import read_json
        from longlore.core.saving import find_model_folder, load_pretrained_folder

        folder = find_model_folder(path, CONFIG_NAME, what="CoMeT model")
        meta = read_json(folder / CONFIG_NAME)
        if "format_version" not in meta and "comet" in meta:  # the first, unversioned layout
            return folder, {**meta, "config": meta["comet"]}, load_file(str(folder / WEIGHTS_NAME))
        return load_pretrained_folder(folder, kind="comet", version=FORMAT_VERSION)

    @classmethod
    def from_pretrained(
        cls,
        base_model: nn.Module | str | Path | None,
        tokenizer: Any = None,
        path: str | Path | None = None,
        dtype: torch.dtype | str = "float32",
        device: torch.device | str = "cpu",
    ) -> CometModel:
        """``CometModel.from_pretrained(base_model, tokenizer, path)`` (PEFT order: the backbone it
        was trained on, then the folder). A folder saved with its backbone also loads alone:
        ``CometModel.from_pretrained(None, None, path)`` or ``CometModel.from_pretrained(path)``
        (then ``dtype`` / ``device`` apply to the loaded backbone). A run folder finds its ``final/``."""
        if path is None and isinstance(base_model, (str, Path)):
            base_model, path = None, base_model
        if path is None:
            raise LongloreError("CometModel.from_pretrained(base_model, tokenizer, path): give the folder path")
        folder, meta, tensors = cls._read_folder(path)
        if base_model is None:
            if not meta.get("includes_backbone"):
                raise LongloreError(
                    f"{folder}: saved without its backbone; pass base_model and tokenizer (or --model on the CLI)"
                )
            from longlore.core.models import load_causal_lm

            base_model, tokenizer = load_causal_lm(str(folder / BACKBONE_DIR), dtype=dtype, device=device)
        elif tokenizer is None:
            raise LongloreError("CometModel.from_pretrained: pass the backbone's tokenizer with base_model")
        model = cls(base_model, tokenizer, CometConfig.from_dict(meta["config"]))
        if model.token_embed.weight.shape[1] != meta["hidden_size"] or len(model.layers) != meta["num_layers"]:
            raise LongloreError(
                f"{folder}: saved for hidden {meta['hidden_size']} x {meta['num_layers']} layers, but the "
                f"backbone has {model.token_embed.weight.shape[1]} x {len(model.layers)}; pass the "
                "backbone it was trained on"
            )
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if k.startswith(("memory.", "token_embed."))]
        if missing or unexpected:
            raise LongloreError(
                f"{folder}/{WEIGHTS_NAME}: missing {missing[:3]} unexpected {unexpected[:3]}; "
                "the file does not match this CometConfig"
            )
        return model.eval()
