"""The probe's text autoencoder: LoRA encoder -> group-merge pooling -> alignment layer -> frozen decoder.

Notation used for tensor shapes: B batch, T input tokens, M = ceil(T / ratio) memory slots,
P reconstruction-prompt tokens, L decoder sequence length, D hidden size.

The encoder is a copy of the first ``k`` layers of a causal LM (``encoder_base``) with LoRA adapters
(peft); its last hidden states are mean-pooled in consecutive groups of ``ratio`` tokens
(group merge), passed through one transformer layer copied from the decoder (alignment), and fed to
the frozen decoder as input embeddings, followed by a fixed prompt; the decoder is trained to
nothing, the encoder and alignment block are trained so that the decoder reproduces the text
(teacher-forced NLL). Reconstruction quality then measures how much of the text survived
compression.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from longlore.core.devices import module_device_dtype
from longlore.core.errors import LongloreError
from longlore.probe.config import ProbeConfig

_KIND = "probe"
_FORMAT_VERSION = 1
_CONFIG_FILE = f"{_KIND}_config.json"
_ENCODER_DIR = "encoder_lora"


def memory_length(n_tokens: int, ratio: int) -> int:
    """Number of memory slots for ``n_tokens`` input tokens: ceil(n / ratio)."""
    return -(-n_tokens // ratio)


def group_merge_pool(hidden: torch.Tensor, mask: torch.Tensor, ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of each run of ``ratio`` consecutive valid tokens (the last run may be shorter).

    Args:
        hidden: (B, T, D) token states, valid tokens first in each row (right padding).
        mask: (B, T) 1 for valid tokens.
        ratio: group size.
    Returns:
        slots (B, M, D) with M = ceil(T / ratio), and slot_mask (B, M): 1 where the group holds a valid token.
    """
    B, T, D = hidden.shape
    M = memory_length(T, ratio)
    pad = M * ratio - T
    mask = mask.to(hidden.dtype)
    if pad:
        hidden = torch.nn.functional.pad(hidden, (0, 0, 0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad))
    groups = hidden.view(B, M, ratio, D)  # (B, M, ratio, D)
    weights = mask.view(B, M, ratio, 1)  # (B, M, ratio, 1)
    counts = weights.sum(2)  # (B, M, 1)
    slots = (groups * weights).sum(2) / counts.clamp(min=1)  # (B, M, D)
    return slots, (counts.squeeze(-1) > 0).long()


def _truncated_config(config: Any, layers: int) -> Any:
    config = copy.deepcopy(config)
    config.num_hidden_layers = layers
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:layers]
    return config


def build_encoder(encoder_base: nn.Module, config: ProbeConfig) -> nn.Module:
    """The first ``config.encoder_layers`` layers of ``encoder_base`` (a causal LM) with LoRA adapters.

    The base weights are copied (``encoder_base`` itself is not modified) and frozen by peft; only
    the LoRA matrices train.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    total = encoder_base.config.num_hidden_layers
    if config.encoder_layers > total:
        raise LongloreError(
            f"ProbeConfig.encoder_layers={config.encoder_layers} but the encoder base has {total} layers"
        )
    trunk = AutoModel.from_config(
        _truncated_config(encoder_base.config, config.encoder_layers), dtype=encoder_base.dtype
    )
    missing, _ = trunk.load_state_dict(encoder_base.base_model.state_dict(), strict=False)
    if missing:
        raise LongloreError(f"encoder base is missing weights for the truncated encoder: {missing[:3]}")
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        bias="none",
    )
    # The adapters follow the backbone's device and dtype (peft would otherwise keep them in float32
    # under a bf16 base): one dtype per model, as every longlore wrapper.
    device, dtype = module_device_dtype(encoder_base)
    return get_peft_model(trunk, lora, autocast_adapter_dtype=False).to(device=device, dtype=dtype)


class AlignmentBlock(nn.Module):
    """One transformer layer copied from the decoder, then an RMSNorm into the decoder's embedding space.

    The norm's weight starts at the RMS of the decoder's input-embedding table, so memory slots start
    at the scale of the token embeddings the decoder was trained on (why: the encoder's states are
    about 1 per unit after its final norm, token embeddings are far smaller; a mismatch of scale
    would make the early steps spend themselves on rescaling).
    """

    def __init__(self, decoder: nn.Module, init_layer: int) -> None:
        super().__init__()
        from transformers import AutoModel

        layers = decoder.config.num_hidden_layers
        if not 0 <= init_layer < layers:
            raise LongloreError(f"ProbeConfig.align_init_layer={init_layer} is outside the decoder's 0..{layers - 1}")
        config = _truncated_config(decoder.config, 1)
        config.vocab_size, config.pad_token_id = 1, None  # the block reads embeddings, never token ids
        self.block = AutoModel.from_config(config, dtype=decoder.dtype)
        self.block.embed_tokens.requires_grad_(False)  # a 1-row placeholder, never read nor saved
        source = decoder.base_model.layers[init_layer].state_dict()
        self.block.layers[0].load_state_dict(source)
        embed = decoder.get_input_embeddings().weight
        with torch.no_grad():
            self.block.norm.weight.fill_(float(embed.float().pow(2).mean().sqrt()))
        device, dtype = module_device_dtype(decoder)
        self.to(device=device, dtype=dtype)

    def forward(self, slots: torch.Tensor, slot_mask: torch.Tensor) -> torch.Tensor:
        """(B, M, D), (B, M) -> (B, M, D) memory in the decoder's input-embedding space."""
        return self.block(inputs_embeds=slots, attention_mask=slot_mask).last_hidden_state


class ProbeAutoencoder(nn.Module):
    """Encoder (LoRA) + group-merge pooling + alignment block in front of a frozen decoder.

    Build one with ``ProbeAutoencoder(decoder, tokenizer, config, encoder_base=None)``; the encoder's
    base defaults to the decoder itself (the matched pair). Save with :meth:`save_pretrained`, load
    with :meth:`from_pretrained` (PEFT-style: the caller supplies the decoder and the encoder base).
    """

    def __init__(
        self, decoder: nn.Module, tokenizer: Any, config: ProbeConfig, encoder_base: nn.Module | None = None
    ) -> None:
        super().__init__()
        encoder_base = decoder if encoder_base is None else encoder_base
        if encoder_base.config.vocab_size != decoder.config.vocab_size:
            raise LongloreError(
                "encoder base and decoder must share a tokenizer (vocab sizes "
                f"{encoder_base.config.vocab_size} vs {decoder.config.vocab_size})"
            )
        if encoder_base.config.hidden_size != decoder.config.hidden_size:
            raise LongloreError(
                "encoder base and decoder must share the hidden size (the alignment block is one decoder layer): "
                f"{encoder_base.config.hidden_size} vs {decoder.config.hidden_size}"
            )
        self.config, self.tokenizer = config, tokenizer
        self.encoder = build_encoder(encoder_base, config)
        self.align = AlignmentBlock(decoder, config.align_init_layer)
        # The decoder is held outside the module tree: it is frozen, never saved with the probe, and
        # shared between several probes (the study trains more than one against one decoder).
        self._decoder = [decoder.requires_grad_(False).eval()]
        self._prompt_ids = tokenizer(config.reconstruction_prompt, add_special_tokens=False)["input_ids"]

    @property
    def decoder(self) -> nn.Module:
        return self._decoder[0]

    @property
    def device(self) -> torch.device:
        return self.decoder.device

    def train(self, mode: bool = True) -> ProbeAutoencoder:
        super().train(mode)
        self.decoder.eval()  # frozen: never in training mode
        return self

    # ----------------------------------------------------------------------------------------- encode
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory slots for a right-padded batch: (B, T), (B, T) -> memory (B, M, D), memory mask (B, M)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        slots, slot_mask = group_merge_pool(hidden, attention_mask, self.config.ratio)
        return self.align(slots, slot_mask), slot_mask

    def _batch(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        sequences = [s[: self.config.max_tokens] for s in sequences]
        if any(not s for s in sequences):
            raise LongloreError("probe: cannot compress an empty text (0 tokens)")
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=self.device)
        return ids, mask

    def _decoder_inputs(
        self, memory: torch.Tensor, slot_mask: torch.Tensor, targets: list[list[int]] | None, left_pad: bool
    ) -> dict[str, torch.Tensor]:
        """Per row: [memory slots][prompt][target + eos]; labels only on the target part."""
        embed = self.decoder.get_input_embeddings()
        prompt = embed(torch.tensor(self._prompt_ids, device=self.device))  # (P, D)
        rows, labels = [], []
        for b in range(memory.shape[0]):
            parts = [memory[b, slot_mask[b].bool()], prompt]
            row_labels = [-100] * (int(slot_mask[b].sum()) + len(self._prompt_ids))
            if targets is not None:
                target = targets[b][: self.config.max_tokens] + [self.tokenizer.eos_token_id]
                parts.append(embed(torch.tensor(target, device=self.device)))
                row_labels += target
            rows.append(torch.cat(parts))  # (L_b, D)
            labels.append(row_labels)
        width = max(r.shape[0] for r in rows)
        D = memory.shape[-1]
        embeds = memory.new_zeros(len(rows), width, D)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        label_ids = torch.full((len(rows), width), -100, dtype=torch.long, device=self.device)
        for b, row in enumerate(rows):
            span = slice(width - row.shape[0], width) if left_pad else slice(0, row.shape[0])
            embeds[b, span], mask[b, span] = row, 1
            label_ids[b, span] = torch.tensor(labels[b], device=self.device)
        return {"inputs_embeds": embeds, "attention_mask": mask, "labels": label_ids}

    # --------------------------------------------------------------------------------------- training
    def forward(
        self, sequences: list[list[int]], memory_from: list[list[int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced reconstruction NLL of ``sequences`` (mean over target tokens incl. the final eos).

        ``memory_from``: rebuild each sequence from the memory of another text instead of its own (a
        control: the gap to the own-memory NLL is what the memory says about its own text). Returns
        ``loss`` and ``nll_per_sequence`` (B,).
        """
        if memory_from is not None and len(memory_from) != len(sequences):
            raise LongloreError(f"memory_from has {len(memory_from)} texts for {len(sequences)} sequences")
        ids, mask = self._batch(memory_from if memory_from is not None else sequences)
        memory, slot_mask = self.encode(ids, mask)
        inputs = self._decoder_inputs(memory, slot_mask, [s[: self.config.max_tokens] for s in sequences], False)
        out = self.decoder(inputs_embeds=inputs["inputs_embeds"], attention_mask=inputs["attention_mask"])
        logits = out.logits[:, :-1].float()  # (B, L-1, V): position t predicts token t+1
        labels = inputs["labels"][:, 1:]  # (B, L-1)
        token_nll = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        counted = (labels != -100).sum(1)  # (B,)
        loss = token_nll.sum() / counted.sum()
        return {"loss": loss, "nll_per_sequence": token_nll.sum(1) / counted}

    # ------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def reconstruct(self, sequences: list[list[int]], max_new_tokens: int | None = None) -> list[list[int]]:
        """Greedy reconstruction of each token sequence from its memory slots alone; eos stripped."""
        ids, mask = self._batch(sequences)
        memory, slot_mask = self.encode(ids, mask)
        inputs = self._decoder_inputs(memory, slot_mask, None, left_pad=True)
        limit = max_new_tokens if max_new_tokens is not None else int(mask.sum(1).max()) + 8
        out = self.decoder.generate(
            inputs_embeds=inputs["inputs_embeds"],
            attention_mask=inputs["attention_mask"],
            max_new_tokens=limit,
            do_sample=False,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        result = []
        for row in out.tolist():  # generate() returns only the new tokens when given embeddings
            if self.tokenizer.eos_token_id in row:
                row = row[: row.index(self.tokenizer.eos_token_id)]
            result.append(row)
        return result

    # ------------------------------------------------------------------------------------ save / load
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The probe's trained tensors (LoRA matrices + alignment block), by name."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def save_pretrained(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the probe's own state (atomically): ``probe_config.json`` (versioned config),
        ``probe_model.safetensors`` (the alignment block) and ``encoder_lora/`` (the encoder's peft adapter,
        loadable with peft alone). The decoder and the encoder's base weights are never saved."""
        from longlore.core.saving import save_pretrained_folder

        align = {k: v for k, v in self.state_dict().items() if k.startswith("align.") and "embed_tokens" not in k}
        return save_pretrained_folder(
            path,
            kind=_KIND,
            version=_FORMAT_VERSION,
            config=self.config.to_dict(),
            tensors=align,
            extra={"class": type(self).__name__, "hidden_size": int(self.decoder.config.hidden_size)},
            also=lambda tmp: self.encoder.save_pretrained(tmp / _ENCODER_DIR),
            overwrite=overwrite,
        )

    @classmethod
    def from_pretrained(
        cls,
        base_model: nn.Module,
        tokenizer: Any,
        path: str | Path,
        encoder_base: nn.Module | None = None,
        is_trainable: bool = False,
    ) -> ProbeAutoencoder:
        """Rebuild a saved probe on ``base_model`` (the frozen decoder) and ``encoder_base`` (default: the
        decoder). A run folder resolves to its ``final/``."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        from longlore.core.saving import find_model_folder, load_pretrained_folder, load_state_checked

        folder = find_model_folder(path, _CONFIG_FILE, what="probe")
        meta = json.loads((folder / _CONFIG_FILE).read_text(encoding="utf-8"))
        if "format_version" in meta:
            folder, meta, align = load_pretrained_folder(folder, kind=_KIND, version=_FORMAT_VERSION)
        else:  # the first layout (before the shared convention): align.safetensors beside the config
            align = {f"align.{k}": v for k, v in load_file(str(folder / "align.safetensors")).items()}
        probe = cls(base_model, tokenizer, ProbeConfig.from_dict(meta["config"]), encoder_base=encoder_base)
        adapter_file = folder / _ENCODER_DIR / "adapter_model.safetensors"
        if not adapter_file.is_file():
            raise LongloreError(f"{folder}: {_ENCODER_DIR}/adapter_model.safetensors is missing; save the probe again")
        adapter = load_file(str(adapter_file), device=str(probe.device))
        result = set_peft_model_state_dict(probe.encoder, adapter)
        if getattr(result, "unexpected_keys", None):
            raise LongloreError(
                f"{folder}: the encoder adapter has tensors this encoder lacks: {result.unexpected_keys[:3]}"
            )
        load_state_checked(
            probe, {k: v.to(probe.device) for k, v in align.items()}, folder / f"{_KIND}_model.safetensors"
        )
        probe.train(is_trainable)
        if not is_trainable:
            probe.requires_grad_(False)
        return probe

    def adapted_encoder_lm(self, encoder_base: nn.Module) -> nn.Module:
        """A full-depth causal LM: ``encoder_base`` with this probe's LoRA merged into its first k layers.

        The encoder's own view of a text as a language model, used to measure entropy "under the
        encoder" after training (its untrained base is ``encoder_base`` itself).
        """
        lm = copy.deepcopy(encoder_base).eval().requires_grad_(False)
        merged = copy.deepcopy(self.encoder).merge_and_unload()
        for i, layer in enumerate(merged.layers):
            lm.base_model.layers[i].load_state_dict(layer.state_dict())
        return lm
