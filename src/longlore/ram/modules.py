"""RAM's own copies of the backbone: the truncated encoder and the decoder view it adapts.

Neither ever writes into the model the caller passed in. Both are *structural* copies: new module
objects whose frozen parameters share storage with the caller's (no memory doubled) and whose
trainable parameters are RAM's own clones. So wrapping a decoder leaves its weights, its
``requires_grad`` flags and its ``.grad`` untouched, and ``RAMModel.from_pretrained`` loads the
trained q/k/v into RAM's clones, not into the caller's model. With LoRA (``peft``), the adapters
are injected into RAM's copy; the shared base weights stay frozen.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from longlore.core.errors import LongloreError


def base_model_of(decoder: Any) -> nn.Module:
    """The decoder's transformer body (embeddings + layers + final norm), without the LM head."""
    if hasattr(decoder, "get_decoder"):
        return decoder.get_decoder()
    if hasattr(decoder, "model"):
        return decoder.model
    raise LongloreError(f"{type(decoder).__name__}: cannot find the transformer body (no get_decoder() or .model)")


def structural_copy(module: nn.Module, own: Callable[[str], bool], skip: tuple[nn.Module, ...] = ()) -> nn.Module:
    """A copy of ``module`` with new module objects: parameters named so that ``own(name)`` holds
    are cloned and trainable, every other parameter is a frozen view of the original storage.
    Sub-modules in ``skip`` are not copied (they come back as ``None``; the caller removes them)."""
    memo: dict[int, Any] = {id(m): None for m in skip}
    for name, param in module.named_parameters(remove_duplicate=False):
        if id(param) in memo:
            continue  # tied weights (embeddings = LM head) stay tied in the copy
        mine = own(name)
        memo[id(param)] = nn.Parameter(param.detach().clone() if mine else param.detach(), requires_grad=mine)
    return copy.deepcopy(module, memo)


def truncated_encoder(decoder: Any, n_layers: int, trainable: bool = True) -> nn.Module:
    """RAM's encoder: the decoder's body cut to its first ``n_layers`` layers, as its own copy.

    ``trainable=True`` (the paper) clones every weight; ``False`` keeps frozen views of the
    decoder's weights (for the LoRA form, where only adapters train).
    """
    base = base_model_of(decoder)
    if n_layers > len(base.layers):
        raise LongloreError(f"RAMConfig.encoder_layers={n_layers} but the decoder has {len(base.layers)} layers")
    encoder = structural_copy(base, lambda _name: trainable, skip=tuple(base.layers[n_layers:]))
    encoder.layers = nn.ModuleList(list(encoder.layers)[:n_layers])  # (k layers; the rest were never copied)
    encoder.config = copy.deepcopy(base.config)
    encoder.config.num_hidden_layers = n_layers
    if getattr(encoder.config, "layer_types", None):
        encoder.config.layer_types = encoder.config.layer_types[:n_layers]
    return encoder


def decoder_view(decoder: Any, trainable: tuple[str, ...], full: bool) -> nn.Module:
    """The decoder as RAM adapts it: ``full`` clones the parameters whose names contain a part of
    ``trainable`` (they train); all other weights are frozen views of the caller's decoder."""
    return structural_copy(decoder, lambda name: full and any(part in name for part in trainable))


def add_lora(module: nn.Module, targets: tuple[str, ...], r: int, alpha: float) -> nn.Module:
    """Inject LoRA adapters (peft) of rank ``r`` into the modules named by ``targets``, in place;
    only the adapters train afterwards."""
    from peft import LoraConfig, inject_adapter_in_model

    for param in module.parameters():
        param.requires_grad = False
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets), bias="none")
    try:
        inject_adapter_in_model(config, module)
    except ValueError as err:
        raise LongloreError(f"LoRA targets {list(targets)} not found in {type(module).__name__}: {err}") from None
    for name, param in module.named_parameters():
        param.requires_grad = "lora_" in name
    return module


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``module`` that train (full clones or LoRA adapters), by name."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


__all__ = ["add_lora", "base_model_of", "decoder_view", "structural_copy", "trainable_state"]
