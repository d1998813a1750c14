"""A trained tagger with its tokenizer and labels: prediction, evaluation, save and load.

``NERPipeline.save_pretrained(dir)`` writes ``encoder/`` (the fine-tuned encoder and tokenizer,
Hugging Face format), ``heads.safetensors`` (everything that is not the encoder: label heads,
fusion layers, graph buffers) and ``lstner.json`` (kind, labels, config, format version);
``from_pretrained(dir)`` rebuilds it offline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from longlore.core.devices import module_device_dtype
from longlore.core.errors import LongloreError
from longlore.core.models import load_encoder
from longlore.core.saving import find_model_folder, write_folder_atomically
from longlore.lstner.config import LSTNERConfig
from longlore.lstner.data import LabelSet, Sentence, batches, encode_sentence
from longlore.lstner.model import LSTNERModel, MultiTaskTagger, Tagger

FORMAT_VERSION = 1
KINDS = ("tagger", "multitask", "lstner")


@dataclass
class NERPipeline:
    """``model`` (a Tagger subclass) + ``tokenizer`` + target ``labels`` (+ source labels if any)."""

    model: Tagger
    tokenizer: object
    labels: LabelSet
    config: LSTNERConfig
    kind: str = "tagger"
    source_labels: LabelSet | None = None
    extra: dict = field(default_factory=dict)  # e.g. the source graph's label distributions

    # --- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def predict_tags(self, sentences: list[Sentence], batch_size: int = 64) -> list[list[str]]:
        """IOB2 tags per word (argmax at each word's first sub-token; truncated words get ``O``)."""
        self.model.eval()
        device = module_device_dtype(self.model)[0]
        enc = [encode_sentence(s, self.tokenizer, None, self.config.max_len) for s in sentences]
        out: list[list[str]] = []
        names = self.labels.labels
        for start in range(0, len(enc), batch_size):
            chunk = enc[start : start + batch_size]
            batch = batches(chunk, len(chunk), self.tokenizer.pad_token_id)[0]
            batch = {k: v.to(device) for k, v in batch.items()}
            pred = self.model(batch["input_ids"], batch["attention_mask"]).argmax(-1)  # (B, T)
            for b, e in enumerate(chunk):
                out.append([names[int(pred[b, p])] if p >= 0 else "O" for p in e.word_pos])
        return out

    def evaluate(self, sentences: list[Sentence]) -> dict:
        """Strict span F1 (seqeval, IOB2, mode='strict'): micro P/R/F1 and per-type scores, in %."""
        return {**span_scores([s.tags for s in sentences], self.predict_tags(sentences)), "n_sentences": len(sentences)}

    def predict_text(self, text: str) -> list[dict]:
        """Entity spans in raw text: ``[{"text", "type", "start", "end"}]`` (word indices, end exclusive)."""
        words = tokenize_words(text)
        if not words:
            return []
        tags = self.predict_tags([Sentence(words, ["O"] * len(words))])[0]
        return [{"text": " ".join(words[s:e]), "type": t, "start": s, "end": e} for t, s, e in strict_spans(tags)]

    # --- persistence ----------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write ``encoder/`` (HF format, with the tokenizer), ``heads.safetensors`` and
        ``lstner.json`` into ``out_dir``, assembled in a temporary folder and swapped in."""
        out_dir = Path(out_dir)
        if (out_dir / "lstner.json").exists() and not overwrite:
            raise LongloreError(f"{out_dir}: already holds a model; pass --overwrite to replace it")
        heads = {
            k: v.detach().to("cpu").contiguous()
            for k, v in self.model.state_dict().items()
            if not k.startswith("encoder.")
        }
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "types": self.labels.types,
            "source_types": self.source_labels.types if self.source_labels else None,
            "config": self.config.to_dict(),
            "extra": self.extra,
        }

        def fill(tmp: Path) -> None:
            self.model.encoder.save_pretrained(tmp / "encoder")
            self.tokenizer.save_pretrained(tmp / "encoder")
            save_file(heads, str(tmp / "heads.safetensors"))
            (tmp / "lstner.json").write_text(json.dumps(meta, indent=2))

        return write_folder_atomically(out_dir, fill, overwrite=True)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str = "cpu", dtype: str = "float32") -> NERPipeline:
        """Load a folder written by :meth:`save_pretrained` (a run folder resolves to its ``final/``)
        onto ``device`` in ``dtype``. The folder holds the fine-tuned encoder itself (every method
        fine-tunes all of it), so no base model is passed."""
        model_dir = find_model_folder(model_dir, "lstner.json", what="LST-NER model")
        meta_path = model_dir / "lstner.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("kind") not in KINDS:
            raise LongloreError(f"{meta_path}: field 'kind' is {meta.get('kind')!r}; expected one of {list(KINDS)}")
        config = LSTNERConfig.from_dict(meta["config"])
        encoder, tokenizer = load_encoder(str(model_dir / "encoder"), device=device, dtype=dtype)
        labels = LabelSet(meta["types"])
        source_labels = LabelSet(meta["source_types"]) if meta.get("source_types") else None
        model = build_model(meta["kind"], encoder, labels, source_labels, config)
        heads = load_file(str(model_dir / "heads.safetensors"))
        missing, unexpected = model.load_state_dict(heads, strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise LongloreError(
                f"{model_dir}/heads.safetensors does not match a '{meta['kind']}' model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); retrain or use a matching version"
            )
        return cls(model.eval(), tokenizer, labels, config, meta["kind"], source_labels, meta.get("extra", {}))


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Strict span scores (seqeval, IOB2, ``mode="strict"``), in %: ``f1``, ``precision``,
    ``recall`` (micro) and ``per_type`` F1. Strict means a span counts only when it opens with
    ``B-X``: a predicted ``I-X`` that does not continue an ``X`` span is no entity (the default
    conlleval reading would accept it as one)."""
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_type = {t: round(100 * float(v["f1-score"]), 2) for t, v in report.items() if not t.endswith("avg")}
    micro = report["micro avg"]
    f1 = float(f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0))
    return {
        "f1": round(100 * f1, 2),
        "precision": round(100 * float(micro["precision"]), 2),
        "recall": round(100 * float(micro["recall"]), 2),
        "per_type": per_type,
    }


def build_model(kind: str, encoder, labels: LabelSet, source_labels: LabelSet | None, config: LSTNERConfig) -> Tagger:
    """An untrained model of ``kind`` around ``encoder``."""
    if kind == "tagger":
        return Tagger(encoder, len(labels), config.dropout)
    if source_labels is None:
        raise LongloreError(f"a '{kind}' model needs the source label set")
    if kind == "multitask":
        return MultiTaskTagger(encoder, len(labels), len(source_labels), config.dropout)
    return LSTNERModel(encoder, len(labels), len(labels.types), len(source_labels), config)


def tokenize_words(text: str) -> list[str]:
    """Split raw text into words and punctuation (the same convention as the synthetic corpora)."""
    return re.findall(r"[\w'&.-]+|[^\w\s]", text)


def strict_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) spans under strict IOB2: B-X opens, I-X continues; a stray I-X is dropped."""
    spans, cur = [], None
    for i, tag in enumerate(tags + ["O"]):
        if cur is not None and tag != f"I-{cur[0]}":
            spans.append((cur[0], cur[1], i))
            cur = None
        if tag.startswith("B-"):
            cur = (tag[2:], i)
    return spans
