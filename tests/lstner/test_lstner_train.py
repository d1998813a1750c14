"""Training on tiny-bert: fitting a handful of sentences, LST-NER's wiring, persistence and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from longlore.core.errors import LongloreError
from longlore.lstner import LSTNERConfig, NERPipeline, build_lstner, train_source, train_target
from longlore.lstner.cli import app
from longlore.lstner.data import LabelSet, batches, encode_sentence
from longlore.lstner.synth import TARGET_TYPES, source_corpus, target_corpus

# Tiny models need large learning rates to memorise a few sentences in a few dozen steps.
TINY = LSTNERConfig(encoder="tiny-bert", epochs=40, batch_size=6, lr=3e-3, head_lr=3e-2, dropout=0.0, warmup=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: extra threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def source_pipe(one_thread):
    return train_source(source_corpus(6, seed=0), TINY)


def test_tiny_source_tagger_fits_its_training_sentences(source_pipe):
    sents = source_corpus(6, seed=0)
    assert source_pipe.evaluate(sents)["f1"] == 100.0
    dist = torch.tensor(source_pipe.extra["source_dist"])
    torch.testing.assert_close(dist.sum(-1), torch.ones(len(source_pipe.labels)))


def test_lstner_fits_a_handful_of_target_sentences(source_pipe):
    tgt = target_corpus(6, seed=0)
    pipe = train_target(tgt, TINY, "lstner", source_pipe, labels=LabelSet(TARGET_TYPES))
    assert pipe.evaluate(tgt)["f1"] == 100.0
    hist = pipe.extra["history"]
    assert hist[-1]["ce"] < hist[0]["ce"] and hist[-1]["gw"] > 0


def test_label_dist_head_init_maps_the_source_head_through_label_distributions(source_pipe):
    tgt = target_corpus(8, seed=1)
    labels = LabelSet(TARGET_TYPES)
    model = build_lstner(source_pipe, tgt, labels, replace(TINY, head_init="label-dist")).eval()
    e_s = source_pipe.model.head.label_emb
    torch.testing.assert_close(model.head.label_emb, model.label_dist @ e_s)
    torch.testing.assert_close(model.label_dist.sum(-1), torch.ones(len(labels)))
    # Zero-initialised output projection: at step 0 the fused model equals the plain tagger.
    batch = batches(
        [encode_sentence(s, source_pipe.tokenizer, labels, 48) for s in tgt], 8, source_pipe.tokenizer.pad_token_id
    )[0]
    fused = model(batch["input_ids"], batch["attention_mask"])
    plain = model.head(model.encode(batch["input_ids"], batch["attention_mask"]))
    torch.testing.assert_close(fused, plain)


def test_gw_loss_reaches_target_label_embeddings_and_training_moves_them(source_pipe):
    tgt = target_corpus(8, seed=1)
    model = build_lstner(source_pipe, tgt, LabelSet(TARGET_TYPES), TINY)
    gw = model.gw_loss()
    (grad,) = torch.autograd.grad(gw, model.head.label_emb)
    assert gw.item() > 0 and grad.abs().sum() > 0
    # With only the GW term, gradient steps lower the distance between the two graphs.
    opt = torch.optim.SGD([model.head.label_emb], lr=0.5)
    before = gw.item()
    for _ in range(20):
        opt.zero_grad()
        model.gw_loss().backward()
        opt.step()
    assert model.gw_loss().item() < before


@pytest.mark.parametrize(
    "method, overrides",
    [
        ("target-only", {}),
        ("source-then-target", {}),
        ("multi-task", {}),
        ("lstner", {"use_graph": False, "l_gw": 0.0}),
    ],
)
def test_every_method_trains_and_round_trips_through_save_and_load(tmp_path, source_pipe, method, overrides):
    tgt = target_corpus(6, seed=2)
    cfg = replace(TINY, epochs=2, **overrides)
    pipe = train_target(tgt, cfg, method, source_pipe, source_corpus(6, seed=0), labels=LabelSet(TARGET_TYPES))
    before = pipe.predict_tags(tgt)
    pipe.save_pretrained(tmp_path / "m")
    with pytest.raises(LongloreError, match="already holds a model"):
        pipe.save_pretrained(tmp_path / "m")
    loaded = NERPipeline.from_pretrained(tmp_path / "m")
    assert loaded.kind == pipe.kind and loaded.labels.labels == pipe.labels.labels
    assert loaded.predict_tags(tgt) == before
    x = batches([encode_sentence(s, loaded.tokenizer, None, 48) for s in tgt], 6, loaded.tokenizer.pad_token_id)[0]
    torch.testing.assert_close(
        loaded.model(x["input_ids"], x["attention_mask"]), pipe.model(x["input_ids"], x["attention_mask"])
    )


def test_methods_that_need_a_source_say_so():
    with pytest.raises(LongloreError, match="needs a source tagger"):
        train_target(target_corpus(4), TINY, "lstner", None)
    with pytest.raises(LongloreError, match="method 'nope' is unknown"):
        train_target(target_corpus(4), TINY, "nope", None)


def test_cli_make_data_train_eval_predict(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"
    ok = runner.invoke(
        app,
        [
            "make-data",
            "--out",
            str(data),
            "--source-sentences",
            "6",
            "--target-sentences",
            "6",
            "--test-sentences",
            "6",
        ],
    )
    assert ok.exit_code == 0, ok.output
    common = ["--encoder", "tiny-bert", "--epochs", "2", "--lr", "3e-3", "--head-lr", "3e-2"]
    res = runner.invoke(
        app, ["train-source", "--train", str(data / "source_train.txt"), "--out", str(tmp_path / "src"), *common]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "train-target",
            "--train",
            str(data / "target_train.txt"),
            "--source",
            str(tmp_path / "src"),
            "--out",
            str(tmp_path / "tgt"),
            "--types",
            ",".join(TARGET_TYPES),
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(tmp_path / "tgt"),
            "--data",
            str(data / "target_test.txt"),
            "--out",
            str(tmp_path / "scores.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert 0.0 <= scores["f1"] <= 100.0 and scores["n_sentences"] == 6
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "tgt"), "Luwen wireless headphones from Japan ."])
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["text"].startswith("Luwen") and isinstance(line["entities"], list)
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tO\nb\tI-BRAND\n")
    res = runner.invoke(app, ["eval", "--model", str(tmp_path / "tgt"), "--data", str(bad)])
    assert isinstance(res.exception, LongloreError) and "bad.txt:2" in str(res.exception)
