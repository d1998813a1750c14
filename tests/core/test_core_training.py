"""The shared training loop: the update it makes (against a plain PyTorch loop written here),
gradient accumulation, resume == unbroken run, and 2 gloo ranks == 1 process on the combined batch."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from longlore.core.checkpoint import load_checkpoint
from longlore.core.errors import LongloreError
from longlore.core.testing import check_ranks_match_single, check_resume_matches_unbroken, trainable_tensors
from longlore.core.training import EpochBatches, StepBatches, TrainingArgs, lr_factor, train_loop


def make_model(dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Dropout(dropout), torch.nn.Linear(8, 1)
    ).double()


def make_items(n: int = 10) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(n, 4, generator=g, dtype=torch.float64)
    ys = xs @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]], dtype=torch.float64) + 0.1
    return [(xs[i], ys[i]) for i in range(n)]


def mse(model, items, ctx):
    x = torch.stack([i[0] for i in items])
    y = torch.stack([i[1] for i in items])
    return ((model(x) - y) ** 2).mean(), {"n": float(len(items))}


def mse_share(model, items, ctx):
    """A model-parallel style loss: this rank's share of the batch mean (shares add up over ranks)."""
    x = torch.stack([i[0] for i in items])
    y = torch.stack([i[1] for i in items])
    mine = torch.tensor([i % ctx.world_size == ctx.rank for i in range(len(items))], dtype=torch.float64)
    return (((model(x) - y) ** 2).squeeze(-1) * mine).sum() / len(items)


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


ARGS = dict(lr=0.05, weight_decay=0.1, warmup_steps=2, grad_clip=0.5, log_every=0)


def test_lr_schedule_by_hand() -> None:
    args = TrainingArgs(steps=10, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, args) == pytest.approx(0.5) and lr_factor(1, args) == pytest.approx(1.0)
    # step 6: progress (6-2)/8 = 0.5 -> cosine 0.5 -> 0.1 + 0.9 * 0.5
    assert lr_factor(6, args) == pytest.approx(0.55)
    assert lr_factor(10, args) == pytest.approx(0.1)
    linear = TrainingArgs(steps=10, warmup_steps=0, schedule="linear")
    assert lr_factor(4, linear) == pytest.approx(0.6)
    assert lr_factor(3, TrainingArgs(steps=10, schedule="constant")) == 1.0


def test_epoch_batches_cover_each_epoch_once() -> None:
    source = EpochBatches(list(range(10)), batch_size=4, seed=3)
    assert source.per_epoch == 3
    epoch0 = [x for s in range(3) for x in source(s)]
    epoch1 = [x for s in range(3, 6) for x in source(s)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(10))
    assert epoch0 != epoch1 and len(source(2)) == 2
    again = EpochBatches(list(range(10)), batch_size=4, seed=3)
    assert again(4) == source(4)  # a function of the step: what a resumed run sees
    draws = StepBatches(lambda rng, step: [rng.random()], seed=1)
    assert draws(5) == draws(5) != draws(6)


def test_update_matches_a_plain_pytorch_loop_and_accumulation() -> None:
    items, steps = make_items(), 5
    args = TrainingArgs(steps=steps, **ARGS)
    batches = EpochBatches(items, batch_size=5, seed=0)
    model = make_model()
    train_loop(model, mse, batches, args, progress=False)
    accum = make_model()
    train_loop(accum, mse, batches, TrainingArgs(steps=steps, grad_accum=3, **ARGS), progress=False)

    # reference: AdamW, decay on matrices only, warm-up + cosine written out, clip, full batch
    ref = make_model()
    mats = [p for p in ref.parameters() if p.ndim > 1]
    vecs = [p for p in ref.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": mats, "weight_decay": 0.1}, {"params": vecs, "weight_decay": 0.0}], lr=0.05)
    for step in range(steps):
        factor = (step + 1) / 2 if step < 2 else 0.5 * (1 + math.cos(math.pi * (step - 2) / (steps - 2)))
        for g in opt.param_groups:
            g["lr"] = 0.05 * factor
        opt.zero_grad()
        mse(ref, batches(step), None)[0].backward()
        torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 0.5)
        opt.step()
    assert torch.allclose(weights(model), weights(ref), atol=1e-12)
    # 3 uneven micro-batches (2+2+1) weighted by size == the whole batch at once
    assert torch.allclose(weights(accum), weights(ref), atol=1e-12)


def test_resume_reproduces_the_unbroken_run(tmp_path: Path) -> None:
    items = make_items()
    batches = EpochBatches(items, batch_size=3, seed=0)
    # dropout draws from torch's RNG: equal weights need its state restored too
    unbroken = make_model(dropout=0.3)
    full = train_loop(unbroken, mse, batches, TrainingArgs(steps=7, **ARGS), tmp_path / "a", progress=False)
    first = make_model(dropout=0.3)
    cut = train_loop(first, mse, batches, TrainingArgs(steps=7, stop_after=3, **ARGS), tmp_path / "b", progress=False)
    assert (cut.step, cut.finished) == (3, False)
    cost_at_cut = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["cost"]
    resumed_model = make_model(dropout=0.3)  # fresh weights: everything must come from the checkpoint
    resumed = train_loop(resumed_model, mse, batches, TrainingArgs(steps=7, **ARGS), tmp_path / "b", progress=False)
    assert resumed.resumed_from == 3 and resumed.finished
    assert torch.equal(weights(resumed_model), weights(unbroken))
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    saved = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert saved["step"] == 7 and saved["cost"]["cpu_seconds"] > cost_at_cut["cpu_seconds"] > 0
    assert saved["cost"]["wall_seconds"] > cost_at_cut["wall_seconds"]  # summed over both invocations
    with pytest.raises(LongloreError, match="data order"):
        train_loop(make_model(), mse, EpochBatches(items, 4), TrainingArgs(steps=9), tmp_path / "b", progress=False)


def test_resume_check_helper_passes_a_good_trainer_and_fails_one_that_drops_optimizer_state(tmp_path: Path) -> None:
    batches = EpochBatches(make_items(), batch_size=3, seed=0)

    def train(model, out, stop_after):
        train_loop(model, mse, batches, TrainingArgs(steps=5, stop_after=stop_after, **ARGS), out, progress=False)

    check_resume_matches_unbroken(lambda: make_model(dropout=0.3), train, tmp_path / "good", stop_at=2)

    def drops_optimizer(model, out, stop_after):  # a trainer whose checkpoint forgets AdamW's moments
        ckpt = out / "checkpoint.pt"
        if stop_after is None and ckpt.exists():
            payload = torch.load(ckpt, weights_only=False)
            torch.save({**payload, "optimizer": None}, ckpt)
        train(model, out, stop_after)

    with pytest.raises(AssertionError, match=r"resumed run differs from the unbroken one: 0.bias: max \|diff\|"):
        check_resume_matches_unbroken(make_model, drops_optimizer, tmp_path / "bad", stop_at=2)


def recipe_unbroken(out: Path) -> dict:
    model = make_model()
    train_loop(model, mse, EpochBatches(make_items(), batch_size=5), TrainingArgs(steps=4, **ARGS), out, progress=False)
    return trainable_tensors(model)


def recipe_cut_and_resumed(out: Path) -> dict:
    """Stopped after 2 steps, then resumed on a fresh model (and with 2 micro-batches per rank)."""
    batches = EpochBatches(make_items(), batch_size=5)  # 5 items: rank shares of 3 and 2
    train_loop(make_model(), mse, batches, TrainingArgs(steps=4, stop_after=2, **ARGS), out, progress=False)
    resumed = make_model()
    train_loop(resumed, mse, batches, TrainingArgs(steps=4, grad_accum=2, **ARGS), out, progress=False)
    return trainable_tensors(resumed)


def recipe_loss_shares(out: Path) -> dict:
    """Every rank sees the whole batch and returns its share of the loss (shard_batch=False)."""
    model = make_model()
    batches = EpochBatches(make_items(), batch_size=5)
    train_loop(model, mse_share, batches, TrainingArgs(steps=4, **ARGS), None, progress=False, shard_batch=False)
    return trainable_tensors(model)


def test_two_gloo_ranks_equal_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    # float64 model: the only difference is the order of the gradient sum (tolerance 1e-10);
    # the helper also fails if a rank other than 0 writes a file
    check_ranks_match_single([recipe_unbroken, recipe_cut_and_resumed, recipe_loss_shares], tmp_path, atol=1e-10)
    saved = load_checkpoint(tmp_path / "ranks" / "recipe1" / "checkpoint.pt")
    assert saved["extra"]["world_size"] == 2 and len(saved["rng"]) == 2 and saved["step"] == 4


def recipe_that_cheats(out: Path) -> dict:
    from longlore.core.distributed import dist_info
    from longlore.core.io import write_json

    rank = dist_info().rank
    write_json(out / f"by-rank-{rank}.json", {}, overwrite=True)
    return {"w": torch.tensor([float(rank)])}


def test_the_rank_check_catches_differences_and_writes_off_rank_0(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as info:
        check_ranks_match_single([recipe_that_cheats], tmp_path)
    assert "recipe_that_cheats rank 1: w: max |diff| 1" in str(info.value)
    assert "ranks other than 0 wrote files: rank 1 wrote" in str(info.value)


def test_a_model_without_trainable_parameters_is_refused() -> None:
    frozen = make_model().requires_grad_(False)
    with pytest.raises(LongloreError, match="no trainable parameters"):
        train_loop(frozen, mse, EpochBatches(make_items(), 2), TrainingArgs(steps=1), progress=False)
