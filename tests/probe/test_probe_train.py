"""Training: a resumed run reaches the unbroken run's weights; continued pre-training moves the model."""

from __future__ import annotations

import json
import random

import pytest
import torch

from longlore.probe.config import TrainArgs
from longlore.probe.model import ProbeAutoencoder
from longlore.probe.trainer import continue_pretrain, train_autoencoder


def _sampler(rng: random.Random, batch_size: int) -> list[list[int]]:
    return [[rng.randrange(10, 1000) for _ in range(rng.randint(5, 12))] for _ in range(batch_size)]


class _Interrupted(Exception):
    pass


def test_resumed_training_equals_unbroken(tiny, tiny_config, tmp_path):
    decoder, tokenizer = tiny
    args = TrainArgs(steps=4, batch_size=2, lr=5e-3, warmup_steps=1, checkpoint_every=2, seed=7)

    torch.manual_seed(0)
    unbroken = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    summary = train_autoencoder(unbroken, _sampler, tmp_path / "a", args)

    calls = {"n": 0}

    def failing(rng: random.Random, batch_size: int) -> list[list[int]]:
        calls["n"] += 1
        if calls["n"] == 4:  # dies during step 3, after the step-2 checkpoint
            raise _Interrupted
        return _sampler(rng, batch_size)

    torch.manual_seed(0)
    first = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    with pytest.raises(_Interrupted):
        train_autoencoder(first, failing, tmp_path / "b", args)
    torch.manual_seed(123)  # a different initialisation: the checkpoint must overwrite it
    resumed = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    train_autoencoder(resumed, _sampler, tmp_path / "b", args)

    for (name, a), (_, b) in zip(unbroken.trainable_state().items(), resumed.trainable_state().items()):
        assert torch.equal(a, b), f"{name} differs after resume"
    history_a = json.loads((tmp_path / "a" / "train_summary.json").read_text())["history"]
    history_b = json.loads((tmp_path / "b" / "train_summary.json").read_text())["history"]
    assert history_a == history_b and len(history_a) == 4
    assert summary["finished"] and summary["cpu_seconds"] >= 0
    assert (tmp_path / "b" / "final" / "probe_config.json").exists()


def test_stop_after_then_resume_finishes_the_run(tiny, tiny_config, tmp_path):
    decoder, tokenizer = tiny
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    args = TrainArgs(steps=3, batch_size=2, lr=5e-3, warmup_steps=1, checkpoint_every=5, stop_after=1)
    summary = train_autoencoder(probe, _sampler, tmp_path, args)
    assert not summary["finished"] and summary["steps"] == 1 and not (tmp_path / "final").exists()
    args.stop_after = None
    summary = train_autoencoder(ProbeAutoencoder(decoder, tokenizer, tiny_config), _sampler, tmp_path, args)
    assert summary["finished"] and len(summary["history"]) == 3 and (tmp_path / "final").exists()


def test_training_lowers_the_reconstruction_loss(tiny, tiny_config, tmp_path):
    decoder, tokenizer = tiny
    torch.manual_seed(0)
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    fixed = [list(range(100, 112)), list(range(300, 306))]
    with torch.no_grad():
        before = probe(fixed)["loss"].item()
    train_autoencoder(
        probe, lambda rng, n: fixed, tmp_path / "run", TrainArgs(steps=15, batch_size=2, lr=1e-2, warmup_steps=1)
    )
    with torch.no_grad():
        after = probe(fixed)["loss"].item()
    # A random tiny decoder is nearly uniform whatever its input (loss ~ log vocab), so the room is
    # small; the step must still go downhill (a detached memory or a flipped sign would not).
    assert after < before - 0.03


@pytest.mark.parametrize("lora_r", [4, None])
def test_continue_pretrain_changes_the_copy_and_lowers_its_loss(tiny, tmp_path, lora_r):
    import copy

    from longlore.core.models import load_causal_lm

    decoder, tokenizer = tiny
    text = [list(range(200, 216))] * 2
    model = copy.deepcopy(decoder)
    with torch.no_grad():
        before = model(input_ids=torch.tensor(text), labels=torch.tensor(text)).loss.item()
    model = continue_pretrain(
        model,
        tokenizer,
        lambda rng, n: text,
        tmp_path / "cpt",
        TrainArgs(steps=6, batch_size=2, lr=1e-2, warmup_steps=1),
        lora_r=lora_r,
    )
    assert not any("lora_" in name for name, _ in model.named_parameters())  # merged into a plain LM
    with torch.no_grad():
        after = model(input_ids=torch.tensor(text), labels=torch.tensor(text)).loss.item()
    assert after < before
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, decoder.model.layers[0].mlp.up_proj.weight)
    reloaded = load_causal_lm(str(tmp_path / "cpt" / "final"))[0]
    assert torch.equal(reloaded.model.layers[1].self_attn.q_proj.weight, model.model.layers[1].self_attn.q_proj.weight)


def test_continued_pretraining_resumes_to_the_unbroken_weights(tiny, tmp_path):
    import copy

    decoder, tokenizer = tiny

    def run(out_dir, stop_after):
        args = TrainArgs(steps=3, batch_size=2, lr=1e-2, warmup_steps=1, checkpoint_every=5, stop_after=stop_after)
        window = lambda rng, n: [[rng.randrange(10, 1000) for _ in range(8)] for _ in range(n)]
        return continue_pretrain(copy.deepcopy(decoder), tokenizer, window, out_dir, args, lora_r=4)

    torch.manual_seed(5)
    unbroken = run(tmp_path / "a", None)
    torch.manual_seed(99)  # another global RNG state: the adapters' initialisation must not depend on it
    run(tmp_path / "b", 1)
    assert not (tmp_path / "b" / "final").exists()
    resumed = run(tmp_path / "b", None)
    expected = unbroken.state_dict()
    assert all(torch.equal(t, expected[k]) for k, t in resumed.state_dict().items())
    assert not torch.equal(unbroken.model.layers[0].mlp.up_proj.weight, decoder.model.layers[0].mlp.up_proj.weight)
    assert (tmp_path / "b" / "final" / "config.json").exists()
