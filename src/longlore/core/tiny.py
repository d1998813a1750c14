"""Tiny and from-scratch models, built offline from a seed (no weights are ever downloaded).

* ``tiny-llama``, ``tiny-qwen``, ``tiny-qwen3``: 2-layer, d 64 decoders for tests;
* ``tiny-bert``: a 2-layer, d 32 BERT encoder for tests;
* ``scratch-LxD``: a Llama with L layers of width D (heads of 32 dims, MLP 4D) to train from scratch
  (CoMeT's passkey experiments);
* ``small-llama``: a Llama with d 128, 4 layers (~0.9M parameters), big enough to memorise the
  frequent facts of a synthetic world in minutes of CPU pretraining (PretrainRL's experiment).

All decoders share one small byte-level BPE tokenizer (1,024 tokens, ChatML chat template) and
tiny-bert a WordPiece one, both trained once on the shipped public-domain text and cached under
``$LONGLORE_HOME/tokenizers``. Weights are drawn in float32 under ``torch.manual_seed(seed)``
(then cast), so a spec + seed names the same model on every machine and in every dtype.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from longlore.core.assets import longlore_home
from longlore.core.errors import LongloreError

# ChatML, the format SmolLM2 and Qwen use; tiny decoders get it so chat code paths run in tests.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_TOKENIZER_VERSION = "v1"


def _tokenizer_corpus() -> list[str]:
    from longlore.core.text import EcomWorld, public_domain_text

    text = public_domain_text()[:300_000]
    world = EcomWorld.generate(0)
    ecom = [world.describe(p, lang) for p in world.products[:120] for lang in ("en", "zh")]
    digits = [" ".join(str(i) for i in range(j, j + 50)) for j in range(0, 2000, 50)]
    return text.split("\n\n") + ecom + digits


def cached_tokenizer(kind: str) -> Path:
    """Train (once) and cache a small tokenizer; kind is 'bpe' (decoders) or 'wordpiece' (BERT)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    folder = longlore_home() / "tokenizers" / f"tiny-{kind}-{_TOKENIZER_VERSION}"
    if (folder / "tokenizer.json").exists():
        return folder
    if kind == "bpe":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=1024,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(_tokenizer_corpus(), trainer)
        hf = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|im_start|>",
            eos_token="<|im_end|>",
            unk_token="<|endoftext|>",
            pad_token="<|pad|>",
        )
        hf.chat_template = CHATML_TEMPLATE
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(
            _tokenizer_corpus(),
            trainers.WordPieceTrainer(vocab_size=1024, special_tokens=specials, show_progress=False),
        )
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        hf = BertTokenizerFast(
            tokenizer_object=tok,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hf.save_pretrained(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process won the race: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def tiny_tokenizer(kind: str = "bpe") -> Any:
    """The cached tiny tokenizer: 'bpe' (decoders, left padding, ChatML) or 'wordpiece' (tiny-bert)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cached_tokenizer(kind))
    if kind == "bpe":
        tokenizer.padding_side = "left"
    return tokenizer


def _decoder_ids(tokenizer: Any) -> dict[str, Any]:
    return dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def tiny_causal_config(name: str, tokenizer: Any) -> Any:
    """The transformers config of ``tiny-llama`` / ``tiny-qwen`` / ``tiny-qwen3``."""
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    common = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        **_decoder_ids(tokenizer),
    )
    if name == "tiny-llama":
        return LlamaConfig(**common)
    if name == "tiny-qwen":
        return Qwen2Config(**common)
    if name == "tiny-qwen3":
        return Qwen3Config(head_dim=16, **common)
    raise LongloreError(f"unknown tiny decoder '{name}'; expected tiny-llama, tiny-qwen or tiny-qwen3")


def scratch_llama_config(layers: int, hidden: int, tokenizer: Any) -> Any:
    """``scratch-LxD``: L layers of width D, heads of 32 dims, MLP 4D, 8,192 positions."""
    from transformers import LlamaConfig

    if layers < 1 or hidden < 32 or hidden % 32:
        raise LongloreError(
            f"scratch-{layers}x{hidden}: need >= 1 layer and a hidden size that is a multiple of 32 (heads of 32 dims)"
        )
    return LlamaConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=hidden // 32,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        **_decoder_ids(tokenizer),
    )


# small-llama: d 128, 4 layers, 512 positions (PretrainRL's from-scratch world model).
SMALL_LLAMA = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    tie_word_embeddings=True,
)


def small_llama_config(tokenizer: Any) -> Any:
    """``small-llama``: :data:`SMALL_LLAMA` on the tiny BPE tokenizer."""
    from transformers import LlamaConfig

    return LlamaConfig(**_decoder_ids(tokenizer), **SMALL_LLAMA)


def seeded_causal_lm(config: Any, seed: int) -> Any:
    """A randomly initialised causal LM for ``config``, drawn in float32 under ``seed``."""
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def tiny_bert(seed: int) -> tuple[Any, Any]:
    """``tiny-bert``: ``(AutoModel, tokenizer)``, 2 layers of width 32, drawn under ``seed``."""
    from transformers import AutoModel, BertConfig

    tokenizer = tiny_tokenizer("wordpiece")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    return model, tokenizer
