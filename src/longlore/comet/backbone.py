"""Backbones for CoMeT experiments: any ``load_causal_lm`` spec, or a small from-scratch Llama.

``scratch-LxD`` (e.g. ``scratch-4x128``) builds a seeded random Llama with L layers and hidden D on
the tiny byte-level BPE tokenizer: the passkey benchmark trains CoMeT on it from scratch.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm

SCRATCH = re.compile(r"^scratch-(\d+)x(\d+)(?:@(\d+))?$")


def load_backbone(spec: str, seed: int = 0) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a core model spec or ``scratch-LxD[@seed]``."""
    match = SCRATCH.match(spec)
    if not match:
        return load_causal_lm(spec, seed=seed)
    from transformers import AutoModelForCausalLM, LlamaConfig

    layers, hidden = int(match.group(1)), int(match.group(2))
    if hidden % 32:
        raise LongloreError(f"backbone '{spec}': hidden size must be a multiple of 32 (heads of 32 dims)")
    _, tokenizer = load_causal_lm("tiny-llama")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=hidden // 32,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(int(match.group(3) or seed))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval(), tokenizer
