"""NER data: BIO readers with strict validation, label sets, sub-word alignment and batching.

Formats read:

* CoNLL-style columns: one token per line, the token in the first column and its IOB2 tag in the
  last; a blank line ends a sentence; ``-DOCSTART-`` lines are skipped. Columns may be separated
  by tabs or spaces, but every token line of a file must have the same number of columns.
* JSONL: one ``{"tokens": [...], "tags": [...]}`` object per line.
* A CrossNER-layout folder (``train.txt``, ``dev.txt``, ``test.txt`` in CoNLL columns) loads as is.

Validation is strict IOB2: an ``I-X`` must follow ``B-X`` or ``I-X`` (not ``O``, not another type,
not the sentence start); every tag is ``O``, ``B-<type>`` or ``I-<type>``; with a known label set,
unknown types are rejected. Each error is one line naming the file, the line and the fix.

Sub-word alignment: the first sub-token of each word carries the word's label; the other
sub-tokens, ``[CLS]``/``[SEP]`` and padding get ``-100`` and are ignored by the loss and the metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from longlore.core.errors import LongloreError
from longlore.core.io import iter_jsonl

IGNORE = -100  # torch.nn.CrossEntropyLoss's ignore_index


@dataclass
class Sentence:
    """One tagged sentence: words and their IOB2 tags (same length)."""

    tokens: list[str]
    tags: list[str]


# --- validation ---------------------------------------------------------------------------------
def check_tags(
    tags: Sequence[str], where: str, line_of: Sequence[int] | None = None, types: set[str] | None = None
) -> None:
    """Raise :class:`LongloreError` at the first tag that breaks IOB2.

    Args:
        tags: the sentence's tags.
        where: file name used in the message.
        line_of: the 1-based file line of each tag (CoNLL); None for one-line records (JSONL).
        types: the allowed entity types; None accepts any type.
    """
    prev = "O"
    for i, tag in enumerate(tags):
        loc = f"{where}:{line_of[i]}" if line_of is not None else f"{where} (token {i + 1})"
        if tag != "O":
            prefix, _, etype = tag.partition("-")
            if prefix not in ("B", "I") or not etype:
                raise LongloreError(f"{loc}: tag '{tag}' is not IOB2; use O, B-<TYPE> or I-<TYPE>")
            if types is not None and etype not in types:
                raise LongloreError(
                    f"{loc}: unknown entity type '{etype}' in tag '{tag}'; expected one of {sorted(types)}"
                )
            if prefix == "I" and prev[2:] != etype:
                raise LongloreError(
                    f"{loc}: '{tag}' follows '{prev}'; in IOB2 an entity starts with "
                    f"B-{etype} (convert IOB1 files to IOB2 first)"
                )
        prev = tag


# --- readers ------------------------------------------------------------------------------------
def read_conll(path: str | Path, types: set[str] | None = None) -> list[Sentence]:
    """Read a CoNLL-column IOB2 file (token first column, tag last column)."""
    path = Path(path)
    if not path.is_file():
        raise LongloreError(f"{path}: no such file; pass a CoNLL/BIO file, a .jsonl file or a CrossNER folder")
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    n_cols: int | None = None

    def flush() -> None:
        if tokens:
            check_tags(tags, str(path), lines, types)
            sentences.append(Sentence(list(tokens), list(tags)))
        tokens.clear()
        tags.clear()
        lines.clear()

    with path.open(encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                flush()
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if cols[0] == "-DOCSTART-":
                flush()
                continue
            if len(cols) < 2:
                raise LongloreError(f"{path}:{line_no}: expected 'TOKEN<tab>TAG' (at least 2 columns), got {len(cols)}")
            if n_cols is None:
                n_cols = len(cols)
            elif len(cols) != n_cols:
                raise LongloreError(
                    f"{path}:{line_no}: {len(cols)} columns, but the file's first token line has "
                    f"{n_cols}; every token line needs the same columns"
                )
            tokens.append(cols[0])
            tags.append(cols[-1])
            lines.append(line_no)
    flush()
    if not sentences:
        raise LongloreError(f"{path}: no sentences found; expected token lines separated by blank lines")
    return sentences


def read_jsonl_ner(path: str | Path, types: set[str] | None = None) -> list[Sentence]:
    """Read ``{"tokens": [...], "tags": [...]}`` records, validated like :func:`read_conll`."""
    sentences = []
    for line_no, record in enumerate(iter_jsonl(path), start=1):
        where = f"{path}:{line_no}"
        toks, tags = record.get("tokens"), record.get("tags")
        if not isinstance(toks, list) or not isinstance(tags, list):
            raise LongloreError(f"{where}: field 'tokens' and 'tags' must both be lists of strings")
        if len(toks) != len(tags):
            raise LongloreError(f"{where}: {len(toks)} tokens but {len(tags)} tags; give one tag per token")
        if not toks:
            raise LongloreError(f"{where}: field 'tokens' is empty")
        check_tags([str(t) for t in tags], where, None, types)
        sentences.append(Sentence([str(t) for t in toks], [str(t) for t in tags]))
    return sentences


def read_ner(path: str | Path, types: set[str] | None = None) -> list[Sentence]:
    """Read one NER file: ``.jsonl`` as JSONL, anything else as CoNLL columns."""
    path = Path(path)
    return read_jsonl_ner(path, types) if path.suffix == ".jsonl" else read_conll(path, types)


def read_crossner_folder(folder: str | Path, types: set[str] | None = None) -> dict[str, list[Sentence]]:
    """Read a CrossNER-layout folder: ``{split: sentences}`` for those of train/dev/test present."""
    folder = Path(folder)
    splits = {name: folder / f"{name}.txt" for name in ("train", "dev", "test")}
    found = {name: read_conll(p, types) for name, p in splits.items() if p.is_file()}
    if not found:
        raise LongloreError(f"{folder}: no train.txt, dev.txt or test.txt; expected a CrossNER-layout folder")
    return found


def load_split(path: str | Path, split: str = "train", types: set[str] | None = None) -> list[Sentence]:
    """A file, or the ``split`` of a CrossNER-layout folder."""
    path = Path(path)
    if path.is_dir():
        splits = read_crossner_folder(path, types)
        if split not in splits:
            raise LongloreError(f"{path}: no {split}.txt in this folder; it has {sorted(splits)}")
        return splits[split]
    return read_ner(path, types)


def write_conll(sentences: Iterable[Sentence]) -> str:
    """Sentences as CoNLL text (``token<TAB>tag`` lines, blank line between sentences)."""
    return "".join("".join(f"{t}\t{g}\n" for t, g in zip(s.tokens, s.tags)) + "\n" for s in sentences)


# --- labels -------------------------------------------------------------------------------------
@dataclass
class LabelSet:
    """Entity types and their IOB2 labels: ``O, B-T1, I-T1, B-T2, I-T2, ...``."""

    types: list[str]

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sentence]) -> LabelSet:
        return cls(sorted({tag[2:] for s in sentences for tag in s.tags if tag != "O"}))

    @property
    def labels(self) -> list[str]:
        return ["O"] + [f"{p}-{t}" for t in self.types for p in ("B", "I")]

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def __len__(self) -> int:
        return len(self.labels)


# --- encoding -----------------------------------------------------------------------------------
@dataclass
class Encoded:
    """One sentence as model inputs; ``word_pos[k]`` is the sub-token position of word k."""

    input_ids: list[int]
    label_ids: list[int]
    word_pos: list[int]
    type_ids: list[int]  # entity types present (indices into LabelSet.types), for the auxiliary task


def _special_ids(tokenizer) -> tuple[int, int]:
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls_id is None or sep_id is None:
        raise LongloreError("tokenizer has neither [CLS]/[SEP] nor BOS/EOS tokens; use a BERT-family encoder")
    return cls_id, sep_id


def encode_sentence(sentence: Sentence, tokenizer, labels: LabelSet | None, max_len: int) -> Encoded:
    """Tokenise word by word; the first sub-token of each word carries its label.

    Words that do not fit in ``max_len`` (including [CLS]/[SEP]) are dropped from the input;
    their ``word_pos`` is -1 and prediction gives them ``O``.
    """
    cls_id, sep_id = _special_ids(tokenizer)
    ids, lab, pos = [cls_id], [IGNORE], []
    for k, word in enumerate(sentence.tokens):
        pieces = tokenizer.encode(word, add_special_tokens=False) or [tokenizer.unk_token_id]
        if len(ids) + len(pieces) > max_len - 1:
            pos.extend([-1] * (len(sentence.tokens) - k))
            break
        pos.append(len(ids))
        lab.append(labels.index(sentence.tags[k]) if labels is not None else IGNORE)
        lab.extend([IGNORE] * (len(pieces) - 1))
        ids.extend(pieces)
    ids.append(sep_id)
    lab.append(IGNORE)
    types = []
    if labels is not None:
        types = sorted({labels.types.index(t[2:]) for t in sentence.tags if t != "O"})
    return Encoded(ids, lab, pos, types)


def collate(batch: Sequence[Encoded], pad_id: int, n_types: int = 0) -> dict[str, torch.Tensor]:
    """Pad a batch: ``input_ids``/``attention_mask``/``labels`` (B, T) and ``types`` (B, n_types)."""
    T = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    labels = torch.full((len(batch), T), IGNORE, dtype=torch.long)
    types = torch.zeros((len(batch), n_types))
    for b, e in enumerate(batch):
        n = len(e.input_ids)
        ids[b, :n] = torch.tensor(e.input_ids)
        mask[b, :n] = 1
        labels[b, :n] = torch.tensor(e.label_ids)
        if n_types:
            types[b, e.type_ids] = 1.0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "types": types}


def batches(
    encoded: Sequence[Encoded], batch_size: int, pad_id: int, n_types: int = 0, generator: torch.Generator | None = None
) -> list[dict[str, torch.Tensor]]:
    """Split into padded batches, shuffled with ``generator`` if given (else in order)."""
    order = torch.randperm(len(encoded), generator=generator).tolist() if generator is not None else range(len(encoded))
    order = list(order)
    return [
        collate([encoded[i] for i in order[s : s + batch_size]], pad_id, n_types)
        for s in range(0, len(order), batch_size)
    ]
