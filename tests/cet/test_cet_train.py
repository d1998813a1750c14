"""The trainer with a tiny seeded BERT: every method trains, settings really reach the loss,
RecAdam and EWC behave as their equations say, save/load round-trips, the CLI works."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from longlore.cet.cli import app
from longlore.cet.config import CETConfig
from longlore.cet.data import MCQuestion, save_questions
from longlore.cet.model import MCScorer, load_scorer, predict
from longlore.cet.recadam import RecAdam, anneal_lambda
from longlore.cet.trainer import Trainer, estimate_fisher, train
from longlore.core.errors import LongloreError
from longlore.core.models import load_encoder

WORDS = ["red", "blue", "green", "cat", "dog", "bird", "river", "hill", "stone", "tree"]


def toy_questions(n: int = 12) -> list[MCQuestion]:
    qs = []
    for i in range(n):
        opts = tuple(WORDS[(i + j) % len(WORDS)] for j in range(3))
        qs.append(MCQuestion(f"q{i}", f"which word goes with {WORDS[(i + 1) % len(WORDS)]} number {i % 4}", opts, 1))
    return qs


def tiny(method: str, **kw) -> CETConfig:
    base = dict(
        method=method,
        encoder="tiny-bert",
        epochs=1,
        batch_size=4,
        max_len=24,
        k=2,
        theta=-1.0,
        lr=1e-3,
        head_lr=1e-2,
        fisher_samples=4,
        recadam_gamma=10.0,
    )
    base.update(kw)
    return CETConfig(**base)


@pytest.mark.parametrize("method", ["cet", "vanilla", "ewc", "recadam", "r3f", "mixout", "childtune", "frozen"])
def test_every_method_trains_the_parameters_it_should(method):
    qs = toy_questions()
    trainer = Trainer(tiny(method), qs)
    query = trainer.scorer.encoder.encoder.layer[0].attention.self.query
    trainer.scorer.eval()  # (Mixout's parametrised weight reads as the plain weight in eval mode)
    query_before = query.weight.detach().clone()
    head_before = {n: p.detach().clone() for n, p in trainer.scorer.head.named_parameters()}
    result = trainer.fit({"dev": qs[:4]}, progress=False)
    assert len(result.history) == 1 and 0.0 <= result.history[0]["dev_acc"] <= 1.0
    # every head weight moves (the last bias shifts all option scores alike: softmax gives it no gradient)
    assert all(not torch.equal(p, head_before[n]) for n, p in result.scorer.head.named_parameters() if p.ndim > 1)
    changed = not torch.equal(query.weight.detach(), query_before)
    assert changed == (method != "frozen")


def batch_loss(config: CETConfig, qs: list[MCQuestion], ids=(0, 1, 2, 3)) -> float:
    trainer = Trainer(config, qs)
    trainer.scorer.eval()  # no dropout: the loss is a deterministic function of the settings
    with torch.no_grad():
        return trainer.batch_loss(list(ids))[0].item()


def test_w0_k_and_theta_reach_the_training_loss():
    """The released code ignored its W0 key and kept only identical answers at theta = 1.0;
    here each setting passed to the config changes the loss the optimiser sees."""
    qs = toy_questions()
    ref = batch_loss(tiny("cet", w0=0.9, k=2, theta=-1.0), qs)
    assert batch_loss(tiny("cet", w0=0.5, k=2, theta=-1.0), qs) != pytest.approx(ref, rel=1e-6)
    assert batch_loss(tiny("cet", w0=0.9, k=1, theta=-1.0), qs) != pytest.approx(ref, rel=1e-6)
    assert batch_loss(tiny("cet", w0=0.9, k=2, theta=0.9999), qs) != pytest.approx(ref, rel=1e-6)
    # w0 = 1 and "no neighbour passes theta" both reduce CET to vanilla cross-entropy
    vanilla = batch_loss(tiny("vanilla"), qs)
    assert batch_loss(tiny("cet", w0=1.0), qs) == pytest.approx(vanilla, rel=1e-5)
    assert batch_loss(tiny("cet", theta=1.0), qs) == pytest.approx(vanilla, rel=1e-5)
    assert batch_loss(tiny("cet", variant="joint", w0=0.5), qs) != pytest.approx(vanilla, rel=1e-6)


def test_unknown_config_key_is_an_error_not_silently_ignored():
    with pytest.raises(LongloreError, match="unknown CET config key.*CET_weight"):
        CETConfig.from_dict({"method": "cet", "CET_weight": 0.97})
    assert CETConfig.from_dict({"w0": 0.97}).w0 == 0.97
    with pytest.raises(LongloreError, match="`w0` is 1.5"):
        CETConfig(w0=1.5)
    with pytest.raises(LongloreError, match="`method` is 'sgd'"):
        CETConfig(method="sgd")


def test_recadam_pulls_annealed_weights_back_and_leaves_the_head_alone():
    enc = torch.nn.Parameter(torch.zeros(3))
    head = torch.nn.Parameter(torch.zeros(3))
    opt = RecAdam([{"params": [enc]}, {"params": [head], "anneal": False}], lr=0.1, gamma=5.0, k=1.0, t0=100.0)
    with torch.no_grad():
        enc.add_(1.0)
        head.add_(1.0)
    enc.grad, head.grad = torch.zeros(3), torch.zeros(3)
    opt.step()
    lam = anneal_lambda(1, 1.0, 100.0)
    # zero task gradient: only the quadratic pull acts, 1 - lr (1 - lambda) gamma of the gap is left
    assert torch.allclose(enc.detach(), torch.full((3,), 1.0 - 0.1 * (1 - lam) * 5.0), atol=1e-6)
    assert torch.allclose(head.detach(), torch.ones(3))
    assert anneal_lambda(100, 1.0, 100.0) == pytest.approx(0.5)


def test_recadam_rejects_an_overshooting_pull():
    with pytest.raises(LongloreError, match="overshoot"):
        Trainer(tiny("recadam", lr=1e-3, recadam_gamma=5000.0), toy_questions())


def test_fisher_is_the_mean_of_squared_per_question_gradients():
    import torch.nn.functional as F

    from longlore.cet.model import encode_pairs

    qs = toy_questions(3)
    trainer = Trainer(tiny("vanilla"), qs)
    fisher = estimate_fisher(trainer.scorer, trainer.tokenizer, qs, 24)
    trainer.scorer.eval()
    name = "encoder.layer.1.output.dense.weight"
    param = dict(trainer.scorer.encoder.named_parameters())[name]
    manual = torch.zeros_like(param)
    for q in qs:
        batch = encode_pairs(trainer.tokenizer, [q], 24)
        (grad,) = torch.autograd.grad(F.cross_entropy(trainer.scorer(batch), batch.labels), param)
        manual += grad.pow(2) / len(qs)
    ratio = fisher[name] / manual.clamp(min=1e-30)
    nonzero = manual > 1e-20
    assert torch.allclose(ratio[nonzero], ratio[nonzero].mean(), rtol=1e-3)  # same up to the global scale
    assert sum(f.sum() for f in fisher.values()) / sum(f.numel() for f in fisher.values()) == pytest.approx(
        1.0, rel=1e-4
    )


@pytest.mark.parametrize("method", ["vanilla", "frozen"])
def test_save_pretrained_and_from_pretrained_give_identical_predictions(tmp_path, method):
    qs = toy_questions()
    result = train(tiny(method), qs, progress=False)
    result.scorer.save_pretrained(tmp_path / "run" / "final")
    scorer, tokenizer, config = load_scorer(tmp_path / "run")  # a run folder resolves to final/
    assert config == result.config
    assert predict(scorer, tokenizer, qs, 24) == predict(result.scorer, result.tokenizer, qs, 24)
    # PEFT style: the saved tensors on a freshly loaded base encoder
    base, tok = load_encoder("tiny-bert", seed=config.seed)
    again = MCScorer.from_pretrained(base, tok, tmp_path / "run" / "final")
    for (name, a), b in zip(result.scorer.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    # a frozen encoder is not saved at all (the base is what it was)
    saved = load_file(str(tmp_path / "run" / "final" / "cet_model.safetensors"))
    assert any(k.startswith("encoder.") for k in saved) == (method != "frozen")
    with pytest.raises(LongloreError, match="pass the cet model subfolder you want: .*run/final"):
        load_scorer(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LongloreError, match="not a cet model folder"):
        load_scorer(tmp_path / "empty")


def test_cli_train_then_eval(tmp_path):
    qs = toy_questions()
    save_questions(tmp_path / "train.jsonl", qs)
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "--train",
            str(tmp_path / "train.jsonl"),
            "--eval",
            str(tmp_path / "train.jsonl"),
            "--method",
            "cet",
            "--encoder",
            "tiny-bert",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-len",
            "24",
            "--k",
            "2",
            "--theta",
            "-1",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["method"] == "cet" and len(metrics["history"]) == 1
    res = runner.invoke(app, ["eval", "--model", str(out), "--data", str(tmp_path / "train.jsonl")])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output
    res = runner.invoke(
        app, ["train", "--train", str(tmp_path / "train.jsonl"), "--encoder", "tiny-bert", "--out", str(out)]
    )
    assert isinstance(res.exception, LongloreError) and "pass --overwrite" in str(res.exception)
    res = runner.invoke(
        app,
        [
            "train",
            "--train",
            str(tmp_path / "train.jsonl"),
            "--method",
            "nope",
            "--encoder",
            "tiny-bert",
            "--out",
            str(tmp_path / "other"),
        ],
    )
    # --method is a choice generated from CETConfig's Literal type: a usage error naming the option
    assert res.exit_code == 2 and "--method" in res.output and "nope" in res.output
