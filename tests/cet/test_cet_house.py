"""CET in the shared house: bf16 on the test device, resume equal to an unbroken run (with the
method's own state: neighbours, RecAdam's theta0, Mixout's masks), the CLI built from CETConfig."""

from __future__ import annotations

import math

import pytest
import torch

from longlore.cet.config import CETConfig
from longlore.cet.data import MCQuestion
from longlore.cet.model import encode_pairs
from longlore.cet.trainer import Trainer, train
from longlore.core.config_cli import CONFIG_COMMANDS, check_config_command

WORDS = ["red", "blue", "green", "cat", "dog", "bird", "river", "hill", "stone", "tree"]


def toy_questions(n: int = 12) -> list[MCQuestion]:
    return [
        MCQuestion(
            f"q{i}",
            f"which word goes with {WORDS[(i + 1) % 10]} number {i % 4}",
            tuple(WORDS[(i + j) % 10] for j in range(3)),
            1,
        )
        for i in range(n)
    ]


def tiny(method: str, **kw) -> CETConfig:
    base = dict(method=method, encoder="tiny-bert", epochs=2, batch_size=4, max_len=24, k=2, theta=-1.0)
    base.update(lr=1e-3, head_lr=1e-2, fisher_samples=4, recadam_gamma=10.0, recadam_t0=2.0)
    base.update(kw)
    return CETConfig(**base)


@pytest.mark.parametrize("method", ["cet", "ewc"])
def test_cet_bf16_forward_and_training_step(test_device: str, method: str) -> None:
    qs = toy_questions()
    trainer = Trainer(tiny(method, epochs=1), qs, device=test_device, dtype="bfloat16")
    scorer = trainer.scorer
    assert {p.dtype for p in scorer.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in scorer.parameters()} == {torch.device(test_device).type}
    batch = encode_pairs(trainer.tokenizer, qs[:4], 24).to(test_device)
    hidden = scorer.encoder(**batch.encoding).last_hidden_state
    assert hidden.dtype == torch.bfloat16 and scorer(batch).dtype == torch.bfloat16
    loss, _ = trainer.batch_loss([0, 1, 2, 3])
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())  # losses run in float32
    before = scorer.head[1].weight.detach().clone()
    result = trainer.fit(progress=False)
    assert math.isfinite(result.history[-1]["train_loss"])
    assert {p.dtype for p in scorer.parameters()} == {torch.bfloat16}
    assert not torch.equal(before, scorer.head[1].weight)


@pytest.mark.parametrize("method", ["cet", "recadam", "mixout"])
def test_resume_equals_an_unbroken_run(tmp_path, method: str) -> None:
    qs = toy_questions()
    cfg = tiny(method)  # 6 steps; dropout on, so the RNG must be restored as well
    unbroken = train(cfg, qs, progress=False, out_dir=tmp_path / "a").scorer.state_dict()
    train(cfg, qs, progress=False, out_dir=tmp_path / "b", stop_after=4)
    resumed = train(cfg, qs, progress=False, out_dir=tmp_path / "b").scorer.state_dict()
    assert unbroken.keys() == resumed.keys()
    for name in unbroken:
        assert torch.equal(unbroken[name], resumed[name]), name


def test_cli_options_come_from_cet_config() -> None:
    import longlore.cet.cli  # noqa: F401  (registers its commands)

    entries = [e for e in CONFIG_COMMANDS if e.config_class is CETConfig]
    assert [e.command.__name__ for e in entries] == ["train_cmd"]
    assert check_config_command(entries[0]) == []
