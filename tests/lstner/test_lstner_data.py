"""BIO readers (strict IOB2 with file:line errors), label sets, sub-word alignment, synthetic data."""

from __future__ import annotations

import json

import pytest

from longlore.core.errors import LongloreError
from longlore.core.models import load_encoder
from longlore.lstner.data import IGNORE, LabelSet, Sentence, encode_sentence, load_split, read_conll, read_jsonl_ner
from longlore.lstner.synth import SOURCE_TYPES, TARGET_TYPES, kjv_names, source_corpus, target_corpus

GOOD = "-DOCSTART- -X- O\n\nJohn\tNNP\tB-PER\nSmith\tNNP\tI-PER\nvisited\tVBD\tO\nParis\tNNP\tB-LOC\n\nHi\tUH\tO\n"


def test_conll_reader_skips_docstart_and_splits_sentences(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(GOOD)
    sents = read_conll(path)
    assert [s.tokens for s in sents] == [["John", "Smith", "visited", "Paris"], ["Hi"]]
    assert sents[0].tags == ["B-PER", "I-PER", "O", "B-LOC"]


@pytest.mark.parametrize(
    "body, line, needle",
    [
        ("a\tO\nb\tI-PER\n", 2, "follows 'O'"),  # I-X after O
        ("a\tI-PER\n", 1, "follows 'O'"),  # I-X at the sentence start
        ("a\tB-LOC\nb\tI-PER\n", 2, "follows 'B-LOC'"),  # I-X after another type
        ("a\tO\n\nb\tX-PER\n", 3, "not IOB2"),  # bad prefix
        ("a\tB-\n", 1, "not IOB2"),  # empty type
        ("a\tPOS\tO\nb\tB-PER\n", 2, "columns"),  # column count changes
        ("lonely\n", 1, "at least 2 columns"),  # one column
    ],
)
def test_conll_reader_rejects_invalid_bio_with_its_line(tmp_path, body, line, needle):
    path = tmp_path / "bad.txt"
    path.write_text(body)
    with pytest.raises(LongloreError, match=rf"bad\.txt:{line}: .*{needle}"):
        read_conll(path)


def test_conll_reader_rejects_unknown_labels(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a\tO\nb\tB-GENE\n")
    with pytest.raises(LongloreError, match=r"t\.txt:2: unknown entity type 'GENE'"):
        read_conll(path, types={"PER", "LOC"})


def test_jsonl_reader_validates_each_record_with_its_line(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"tokens": ["a", "b"], "tags": ["B-X", "I-X"]}, {"tokens": ["a"], "tags": ["O", "O"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(LongloreError, match=r"d\.jsonl:2: 1 tokens but 2 tags"):
        read_jsonl_ner(path)
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O", "I-X"]}))
    with pytest.raises(LongloreError, match=r"d\.jsonl:1 \(token 2\): 'I-X' follows 'O'"):
        read_jsonl_ner(path)
    path.write_text(json.dumps(rows[0]))
    assert read_jsonl_ner(path) == [Sentence(["a", "b"], ["B-X", "I-X"])]


def test_crossner_folder_loads_as_is(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.txt").write_text(f"{split}\tB-misc\nword\tO\n\n")
    assert load_split(tmp_path, "dev")[0].tokens == ["dev", "word"]
    with pytest.raises(LongloreError, match="no such file"):
        load_split(tmp_path / "nope.txt")


def test_label_set_orders_bio_labels():
    labels = LabelSet.from_sentences([Sentence(["a", "b"], ["B-PER", "B-LOC"])])
    assert labels.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_first_subtoken_carries_the_label_and_the_rest_are_ignored():
    _, tok = load_encoder("tiny-bert")
    sent = Sentence(["Zebulunites", "visited", "Kadeshbarnea"], ["B-MISC", "O", "B-LOC"])
    labels = LabelSet(["LOC", "MISC"])
    enc = encode_sentence(sent, tok, labels, max_len=64)
    pieces = [len(tok.encode(w, add_special_tokens=False)) for w in sent.tokens]
    assert pieces[0] > 1  # the test needs a word split into several sub-tokens
    assert enc.input_ids[0] == tok.cls_token_id and enc.input_ids[-1] == tok.sep_token_id
    assert enc.word_pos == [1, 1 + pieces[0], 1 + pieces[0] + pieces[1]]
    labelled = [i for i, lab in enumerate(enc.label_ids) if lab != IGNORE]
    assert labelled == enc.word_pos
    assert [labels.labels[enc.label_ids[p]] for p in enc.word_pos] == sent.tags
    assert enc.type_ids == [0, 1]
    # Truncation drops whole words: their position is -1.
    short = encode_sentence(sent, tok, labels, max_len=2 + pieces[0])
    assert short.word_pos == [1, -1, -1] and len(short.input_ids) == 2 + pieces[0]


def test_synthetic_corpora_are_valid_iob2_with_disjoint_train_test_names():
    names = kjv_names()
    assert "Egypt" in names.places and "Boaz" in names.persons and not set(names.persons) & set(names.places)
    src = source_corpus(200, seed=0)
    train_sample = target_corpus(200, split="train")
    # Every template slot is filled (a slot left as "{BRAND2}" would leak into the tokens).
    assert not any(ch in tok for s in src + train_sample for tok in s.tokens for ch in "{}")
    assert set(LabelSet.from_sentences(src).types) == set(SOURCE_TYPES)
    train, test = target_corpus(300, split="train"), target_corpus(300, split="test")
    assert set(LabelSet.from_sentences(train).types) == set(TARGET_TYPES)

    def brands(sents):
        return {t for s in sents for t, g in zip(s.tokens, s.tags) if g == "B-BRAND" and t[:1].isupper()}

    assert brands(train) and brands(test) and not brands(train) & brands(test)
    assert target_corpus(5, seed=3) == target_corpus(5, seed=3) != target_corpus(5, seed=4)


def test_strict_spans_drop_stray_inside_tags_like_seqeval_strict():
    from longlore.lstner.pipeline import strict_spans, tokenize_words

    assert strict_spans(["B-A", "I-A", "O", "I-B", "B-B", "B-B", "I-A"]) == [("A", 0, 2), ("B", 4, 5), ("B", 5, 6)]
    assert tokenize_words("the Vomar 256GB phone, worth it?") == [
        "the",
        "Vomar",
        "256GB",
        "phone",
        ",",
        "worth",
        "it",
        "?",
    ]
