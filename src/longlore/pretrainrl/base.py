"""Models for the synthetic experiment: a small Llama to pretrain from scratch, and checkpoint I/O.

``small-llama`` is core's ``tiny-llama`` tokenizer (1,024-token byte-level BPE) with a somewhat
larger decoder (d 128, 4 layers, ~0.9M parameters) so that it can memorise the frequent facts of a
synthetic world within minutes of CPU pretraining. Any other spec goes through
:func:`longlore.core.models.load_causal_lm`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm

SMALL_LLAMA = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    tie_word_embeddings=True,
)


def load_model(spec: str, seed: int = 0) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``small-llama[@SEED]`` (fresh, seeded) or any core model spec."""
    name, _, spec_seed = spec.partition("@")
    if name != "small-llama":
        return load_causal_lm(spec, seed=seed)
    from transformers import AutoModelForCausalLM, LlamaConfig

    _, tokenizer = load_causal_lm("tiny-llama")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **SMALL_LLAMA,
    )
    with torch.random.fork_rng():
        torch.manual_seed(int(spec_seed) if spec_seed.isdigit() else seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval(), tokenizer


def save_model(model: Any, tokenizer: Any, folder: str | Path, overwrite: bool = False) -> Path:
    """Save a checkpoint folder atomically (temp folder + rename); reload with :func:`load_model`."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise LongloreError(f"{folder}: already exists; pass --overwrite (overwrite=True) or choose another folder")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
