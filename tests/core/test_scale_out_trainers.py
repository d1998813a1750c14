"""Issue #21: the four trainers (RAM, CoMeT, PretrainRL, CET) under data parallelism.

For each trainer, training on 2 gloo ranks (CPU processes, ``core.distributed.spawn_gloo`` inside
pytest) through the trainer's own public API ends with the weights of one process training on the
combined batch; ranks other than 0 write no file; and a 2-rank run stopped part-way and resumed on
freshly built models ends with the weights of an unbroken single-process run. All four trainers run
in ONE spawn (the ranks import torch/transformers once); the four tests read its outcome per trainer.
A trainer not yet on the shared loop is skipped with the reason.

Tolerance: 1e-5 absolute on every trainable tensor (float32 models). The only difference between
the runs is floating-point summation order (each rank's mean over half the batch, averaged by DDP,
vs one mean over the whole batch); measured max |diff|: RAM 1.5e-6, CoMeT 7e-7, PretrainRL 4e-8,
CET 1e-7 (without the one tensor it leaves out, see ``_cet_compared``), while a rank training on its own shard without gradient sync, or a lost micro-batch
weight, moves weights by ~lr = 1e-3 or more.

Every batch here is built so that the trainer's loss is a mean over items with equal weight (equal
token counts, every RAM example with an evidence segment), which is the condition under which "N ranks
== one process on the combined batch" holds exactly for any data-parallel trainer.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import torch

from longlore.core.testing import check_ranks_match_single, trainable_tensors
from longlore.core.training import CHECKPOINT_NAME

ATOL = 1e-5


def _outcome(model: torch.nn.Module, out_dir: Path) -> dict[str, torch.Tensor]:
    """The trained tensors, plus the per-step loss history of every checkpoint the run left. AdamW
    barely sees a gradient's scale, so a rank that counted the whole batch's loss (2x) would end
    with nearly the same weights; the recorded losses (means over the global batch) show it."""
    from longlore.core.checkpoint import load_checkpoint

    tensors = trainable_tensors(model)
    for path in sorted(out_dir.rglob(CHECKPOINT_NAME)):
        history = load_checkpoint(path)["history"]
        tensors[f"loss history of {path.relative_to(out_dir)}"] = torch.tensor([row["loss"] for row in history])
    return tensors


# --- RAM ------------------------------------------------------------------------------------


def _ram_model():
    from longlore.core.models import load_causal_lm
    from longlore.ram.config import RAMConfig
    from longlore.ram.model import RAMModel

    decoder, tokenizer = load_causal_lm("tiny-llama:seed=1")
    torch.manual_seed(0)
    config = RAMConfig(
        encoder_layers=1, segment_tokens=16, lr=1e-3, sample_keep_ratio=True, keep_ratio_range=(0.2, 0.6)
    )
    return RAMModel(decoder, tokenizer, config)


def _ram_data(tokenizer):
    from longlore.ram.data import make_dataset

    rows = make_dataset(tokenizer, 8, 100, 140, seed=3, two_fact_share=0.0)
    return [dict(d, answer=d["answers"][0]) for d in rows]


def _ram_train(out_dir: Path, stop_after: int = 0):
    from longlore.ram.trainer import TrainArgs, train

    model = _ram_model()
    # 1 selector step (2 documents) + 2 joint steps (4 examples each), one checkpoint per step
    args = TrainArgs(
        steps=2, selector_steps=1, selector_batch=2, selector_lr=1e-3, batch_size=4, checkpoint_every=1, seed=1
    )
    train(model, _ram_data(model.tokenizer), out_dir, TrainArgs(**{**args.__dict__, "stop_after": stop_after}))
    return model


def ram_steps(out_dir: Path) -> dict[str, torch.Tensor]:
    return _outcome(_ram_train(out_dir), out_dir)


def ram_stopped_and_resumed(out_dir: Path) -> dict[str, torch.Tensor]:
    _ram_train(out_dir, stop_after=2)  # the selector step and the first joint step, then a "crash"
    return _outcome(_ram_train(out_dir), out_dir)  # a fresh model resumes from the checkpoint


# --- CoMeT ----------------------------------------------------------------------------------


def _comet_train(out_dir: Path, stop_after: int | None = None):
    from longlore.comet.config import CometConfig
    from longlore.comet.model import CometModel
    from longlore.comet.trainer import TrainArgs, text_windows, train
    from longlore.core.models import load_causal_lm

    base, tokenizer = load_causal_lm("tiny-llama:seed=2")
    config = CometConfig(num_global=4, temp_stride=4, temp_budget=6, chunk_size=16, rank=2, lr=1e-3, warmup_steps=0)
    model = CometModel(base, tokenizer, config, seed=0)
    ids = [(7 * i + 3) % 200 + 5 for i in range(400)]
    # 4 windows of 40 tokens per step: equal token counts, so the token mean is the item mean
    train(
        model, text_windows(ids, 40, 4), out_dir, TrainArgs(steps=2, checkpoint_every=1, seed=1, stop_after=stop_after)
    )
    return model


def comet_steps(out_dir: Path) -> dict[str, torch.Tensor]:
    return _outcome(_comet_train(out_dir), out_dir)


def comet_stopped_and_resumed(out_dir: Path) -> dict[str, torch.Tensor]:
    _comet_train(out_dir, stop_after=1)
    return _outcome(_comet_train(out_dir), out_dir)


# --- CoMeT, layer-level pipeline (2 stages) --------------------------------------------------


def _comet_pipeline_model():
    from longlore.comet.config import CometConfig
    from longlore.comet.model import CometModel
    from longlore.core.models import load_causal_lm

    base, tokenizer = load_causal_lm("tiny-llama:seed=2")
    config = CometConfig(num_global=4, temp_stride=4, temp_budget=6, chunk_size=16, rank=2, lr=1e-3, warmup_steps=1)
    return CometModel(base, tokenizer, config, seed=0)


def _comet_pipeline_train(out_dir: Path, stages: int, stop_after: int | None = None):
    from longlore.comet.trainer import TrainArgs, text_windows, train

    model = _comet_pipeline_model()
    ids = [(11 * i + 5) % 200 + 5 for i in range(500)]
    batches = text_windows(ids, 64, 2)  # 2 sequences of 64 tokens = 4 chunks of 16 per step, 2 per stage
    args = TrainArgs(steps=3, checkpoint_every=1, seed=2, stop_after=stop_after)
    if stages == 1:
        train(model, batches, out_dir, args)
    else:
        from longlore.comet.pipeline_train import train_pipeline

        train_pipeline(model, batches, out_dir, args, stages=stages)
    return model


def comet_single_3_steps(out_dir: Path) -> dict[str, torch.Tensor]:
    return _outcome(_comet_pipeline_train(out_dir, stages=1), out_dir)


def comet_pipeline_3_steps(out_dir: Path) -> dict[str, torch.Tensor]:
    return _outcome(_comet_pipeline_train(out_dir, stages=2), out_dir)


def comet_pipeline_stopped_and_resumed(out_dir: Path) -> dict[str, torch.Tensor]:
    _comet_pipeline_train(out_dir, stages=2, stop_after=1)
    return _outcome(_comet_pipeline_train(out_dir, stages=2), out_dir)


# --- PretrainRL -----------------------------------------------------------------------------

TOWNS = ["Tarsk", "Velmor", "Ostra", "Calder", "Brin", "Dunmar"]


def _pretrainrl_train(out_dir: Path, stop_after: int | None = None):
    from longlore.core.text import filler_text
    from longlore.pretrainrl.base import load_model
    from longlore.pretrainrl.config import PretrainRLConfig
    from longlore.pretrainrl.facts import Fact
    from longlore.pretrainrl.scoring import make_blocks
    from longlore.pretrainrl.trainer import train

    model, tok = load_model("tiny-llama:seed=1")
    blocks = make_blocks(tok, [filler_text(1500, seed=s) for s in range(2)], 32)
    facts = [
        Fact(id=f"f{i}", subject=s, relation="birthplace", object=t, prompt=f"{s} was born in", candidates=TOWNS)
        for i, (s, t) in enumerate([("Abel Karo", "Tarsk"), ("Mira Sol", "Brin"), ("Ode Lun", "Kesh")])
    ]
    # step 0 debias (DPO on mined negatives), step 1 learn; 2 blocks + 2 facts per step
    cfg = PretrainRLConfig(
        steps=2,
        batch_size=2,
        block_size=32,
        fact_batch_size=2,
        debias_fraction=0.5,
        warmup=0,
        lr=1e-3,
        mine_every=1,
        mine_method="candidates",
        num_negatives=2,
        log_every=1,
    )
    train(model, tok, cfg, blocks=blocks, facts=facts, progress=False, out_dir=out_dir, stop_after=stop_after)
    return model


def pretrainrl_steps(out_dir: Path) -> dict[str, torch.Tensor]:
    return _outcome(_pretrainrl_train(out_dir), out_dir)


def pretrainrl_stopped_and_resumed(out_dir: Path) -> dict[str, torch.Tensor]:
    _pretrainrl_train(out_dir, stop_after=1)
    return _outcome(_pretrainrl_train(out_dir), out_dir)


# --- CET ------------------------------------------------------------------------------------

WORDS = ["red", "blue", "green", "cat", "dog", "bird", "river", "hill", "stone", "tree"]


def _cet_train(out_dir: Path, method: str, stop_after: int | None = None):
    from longlore.cet.config import CETConfig
    from longlore.cet.data import MCQuestion
    from longlore.cet.trainer import Trainer

    questions = [
        MCQuestion(
            f"q{i}",
            f"which word goes with {WORDS[(i + 1) % len(WORDS)]} number {i % 4}",
            tuple(WORDS[(i + j) % len(WORDS)] for j in range(3)),
            1,
        )
        for i in range(8)
    ]
    # 8 questions, batch 4: 2 steps of one epoch; the CET loss adds each anchor's neighbour terms
    config = CETConfig(
        method=method, encoder="tiny-bert", epochs=1, batch_size=4, max_len=24, k=2, theta=-1.0, lr=1e-3, head_lr=1e-2
    )
    trainer = Trainer(config, questions, out_dir=out_dir)
    # Dropout masks come from each process's own RNG stream, so with dropout on, 2 ranks equal one
    # process in distribution only; with it off (here) they equal it up to summation order.
    for module in trainer.scorer.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    trainer.fit(progress=False, eval_each_epoch=False, stop_after=stop_after)
    return trainer.scorer


def _cet_compared(scorer: torch.nn.Module, out_dir: Path) -> dict[str, torch.Tensor]:
    # The head's last bias adds the same constant to every option's score, which the softmax over
    # options ignores: its true gradient is 0, and AdamW's first steps (lr g / (|g| + eps)) turn
    # the ~1e-9 rounding noise of that gradient into steps of ~1e-4 that differ with the summation
    # order. It is the one tensor the loss does not see, so it is left out of the comparison.
    tensors = _outcome(scorer, out_dir)
    last_bias = [name for name in tensors if name.startswith("head.") and name.endswith(".bias")][-1]
    assert tensors[last_bias].numel() == 1, last_bias
    del tensors[last_bias]
    return tensors


def cet_steps(out_dir: Path) -> dict[str, torch.Tensor]:
    return _cet_compared(_cet_train(out_dir, "cet"), out_dir)


def cet_stopped_and_resumed(out_dir: Path) -> dict[str, torch.Tensor]:
    _cet_train(out_dir, "cet", stop_after=1)
    return _cet_compared(_cet_train(out_dir, "cet"), out_dir)


# --- the tests ------------------------------------------------------------------------------

# trainer: (its module, the single-process reference, the 2-rank run, the 2-rank run stopped and resumed)
TRAINERS = {
    "ram": ("longlore.ram.trainer", ram_steps, ram_steps, ram_stopped_and_resumed),
    "comet": ("longlore.comet.trainer", comet_steps, comet_steps, comet_stopped_and_resumed),
    "comet-pipeline": (
        "longlore.comet.trainer",
        comet_single_3_steps,
        comet_pipeline_3_steps,
        comet_pipeline_stopped_and_resumed,
    ),
    "pretrainrl": ("longlore.pretrainrl.trainer", pretrainrl_steps, pretrainrl_steps, pretrainrl_stopped_and_resumed),
    "cet": ("longlore.cet.trainer", cet_steps, cet_steps, cet_stopped_and_resumed),
}


def _not_ready(trainer: str) -> str | None:
    """Why ``trainer`` cannot run data-parallel yet (None when it can)."""
    module = TRAINERS[trainer][0]
    if "train_loop(" not in inspect.getsource(importlib.import_module(module)):
        return f"{module} is not on core.training.train_loop yet (its owner's migration, issue #16)"
    if trainer == "ram":
        from longlore.ram.config import TrainArgs

        if "batch_size" not in TrainArgs.__dataclass_fields__:
            return "RAM's joint stage takes one example per step: no batch to share over 2 ranks (TrainArgs.batch_size)"
    return None


@pytest.fixture(scope="module")
def two_rank_problems(tmp_path_factory) -> dict[str, list[str]]:
    """ONE spawn of 2 gloo ranks for every trainer that can run there; its problems per trainer."""
    ready = [t for t in TRAINERS if _not_ready(t) is None]
    if not ready:
        pytest.skip("no trainer is on the shared training loop yet")
    recipes, single, folders = [], [], {}
    for trainer in ready:
        _, reference, two_ranks, resumed = TRAINERS[trainer]
        folders[trainer] = (f"recipe{len(recipes)}/", f"recipe{len(recipes) + 1}/")
        recipes += [two_ranks, resumed]
        single += [reference, reference]  # a stopped-and-resumed 2-rank run must equal the unbroken single run
    try:
        check_ranks_match_single(recipes, tmp_path_factory.mktemp("ranks"), world_size=2, atol=ATOL, single=single)
        problems: list[str] = []
    except AssertionError as error:
        problems = str(error).split(" | ")
    return {
        trainer: [
            p
            for p in problems
            if p.startswith((f"{TRAINERS[trainer][2].__name__} ", f"{TRAINERS[trainer][3].__name__} "))
            or any(folder in p for folder in folders[trainer])
        ]
        for trainer in ready
    }


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_two_gloo_ranks_equal_one_process_resume_and_only_rank0_writes(trainer, request) -> None:
    """2 ranks == 1 process on the combined batch (within ATOL; ``comet-pipeline``: 3 steps of the
    2-stage layer pipeline == 3 steps of ``comet.trainer.train``); a 2-rank run stopped and resumed
    on fresh models == the unbroken single-process run; ranks > 0 write nothing (checkpoints,
    histories, mined negatives)."""
    reason = _not_ready(trainer)
    if reason:
        pytest.skip(reason)
    assert request.getfixturevalue("two_rank_problems")[trainer] == []
