"""Mining never yields a truth; training raises a fact's Hit@1 from 0 to 1; every debias variant learns."""

from __future__ import annotations

import copy

import pytest
import torch

from longlore.core.errors import LongloreError
from longlore.core.text import filler_text
from longlore.pretrainrl.base import load_model
from longlore.pretrainrl.config import PretrainRLConfig, method_config
from longlore.pretrainrl.facts import Fact, is_true
from longlore.pretrainrl.metrics import evaluate_facts
from longlore.pretrainrl.mining import _generate, filter_negatives, mine_negatives
from longlore.pretrainrl.scoring import make_blocks
from longlore.pretrainrl.trainer import phase_at, train

TOWNS = ["Tarsk", "Velmor", "Ostra", "Calder", "Brin", "Dunmar"]


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny-llama:seed=1")
    blocks = make_blocks(tok, [filler_text(3000, seed=s) for s in range(3)], 32)
    return model, tok, blocks


def test_filter_never_keeps_a_true_object():
    fact = Fact(
        id="f",
        subject="Abel Karo",
        relation="birthplace",
        object="New Tarsk",
        objects=["New Tarsk", "Velmor"],
        prompt="Abel Karo was born in",
    )
    generated = [
        " New Tarsk. He was",
        " new tarsk",
        " Velmor, and",
        " New",
        " New Tarsk Harbour",
        "\nVelmor",
        " Ostra. Then",
        " Ostra",
        " Calder",
        ". Brin",
        " Brin and Dunmar;",
        " Dunmar",
    ]
    kept = filter_negatives(generated, fact, k=10)
    assert kept == ["Ostra", "Calder", "Brin and Dunmar", "Dunmar"]
    assert not any(is_true(k, fact.truths) for k in kept)
    assert filter_negatives(generated, fact, k=2) == ["Ostra", "Calder"]


def test_mined_negatives_exclude_every_truth(tiny):
    model, tok, _ = tiny
    model = copy.deepcopy(model)
    # Teach the model two true birthplaces, so beam search certainly proposes them.
    docs = ["Abel Karo was born in Tarsk.", "Abel Karo was born in Velmor."] * 40
    train(
        model,
        tok,
        PretrainRLConfig(fact_objective="none", steps=30, lr=2e-2, batch_size=8, fact_batch_size=1, warmup=0),
        blocks=make_blocks(tok, docs, 16),
        progress=False,
    )
    fact = Fact(
        id="f",
        subject="Abel Karo",
        relation="birthplace",
        object="Tarsk",
        objects=["Tarsk", "Velmor"],
        prompt="Abel Karo was born in",
        candidates=TOWNS,
    )
    cfg = PretrainRLConfig(num_negatives=4, mine_method="beam")
    raw = [t.strip() for t in _generate(model, tok, [fact.prompt], cfg, seed=0)[0]]
    assert any(t.startswith(("Tarsk", "Velmor")) for t in raw), raw  # the truths are what the model says
    for method in ("beam", "sample", "candidates"):
        cfg = PretrainRLConfig(num_negatives=4, mine_method=method)
        mined = mine_negatives(model, tok, [fact], cfg, progress=False)["f"]
        if method != "sample":  # sampling a model this sure of its two truths may find no falsehood at all
            assert mined.negatives, method
        assert not any(is_true(n, fact.truths) for n in mined.negatives), (method, mined.negatives)
        assert len(mined.ref_neg_logps) == len(mined.negatives) and mined.ref_truth_logp < 0


def test_training_on_one_fact_raises_hit1_from_0_to_1(tiny):
    model, tok, blocks = tiny
    model = copy.deepcopy(model)
    probe = Fact(
        id="f",
        subject="Abel Karo",
        relation="birthplace",
        object=TOWNS[0],
        prompt="Abel Karo was born in",
        question="Question: In which town was Abel Karo born?\nAnswer:",
        candidates=TOWNS,
    )
    scores = {}
    for town in TOWNS:  # the truth is the candidate the untrained model likes least: Hit@1 starts at 0
        scores[town] = evaluate_facts(model, tok, [probe.model_copy(update={"object": town})])[0].p_truth
    truth = min(scores, key=scores.get)
    fact = probe.model_copy(update={"object": truth, "objects": [truth]})
    assert evaluate_facts(model, tok, [fact])[0].hit1 is False
    ref = copy.deepcopy(model)
    ref_before = [p.detach().clone() for p in ref.parameters()]
    cfg = PretrainRLConfig(
        steps=30,
        lr=5e-3,
        batch_size=4,
        block_size=32,
        fact_batch_size=1,
        warmup=0,
        debias_fraction=0.5,
        beta=0.5,
        mine_every=10,
        mine_max_new_tokens=4,
    )
    result = train(model, tok, cfg, blocks=blocks, facts=[fact], ref_model=ref, progress=False)
    state = evaluate_facts(model, tok, [fact])[0]
    assert state.hit1 is True and state.margin > 0
    assert result.mined_rounds == 2  # steps 0 and 10 of the 15 debias steps
    assert {row["phase"] for row in result.history} == {"debias", "learn"}
    assert all(torch.equal(a, b) for a, b in zip(ref_before, ref.parameters()))  # the reference never moves
    assert all(p.grad is None for p in ref.parameters())


@pytest.mark.parametrize(
    "variant",
    [
        dict(debias_loss="dpo"),
        dict(debias_loss="unlikelihood"),
        dict(debias_loss="reinforce"),
        dict(schedule="interleaved"),
        dict(method="sft"),
        dict(method="ntp"),
    ],
)
def test_every_variant_updates_the_model(tiny, variant):
    model, tok, blocks = tiny
    model = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    variant = dict(variant)
    base = PretrainRLConfig(
        steps=2,
        batch_size=2,
        block_size=32,
        fact_batch_size=2,
        debias_fraction=1.0,
        warmup=0,
        rl_samples=3,
        mine_max_new_tokens=3,
        **{k: v for k, v in variant.items() if k != "method"},
    )
    cfg = method_config(variant.get("method", "pretrainrl"), base)
    facts = [
        Fact(
            id=f"f{i}",
            subject=s,
            relation="birthplace",
            object=t,
            prompt=f"{s} was born in",
            question=f"Question: Where was {s} born?\nAnswer:",
            candidates=TOWNS,
        )
        for i, (s, t) in enumerate([("Abel Karo", "Tarsk"), ("Mira Sol", "Brin")])
    ]
    result = train(model, tok, cfg, blocks=blocks, facts=facts, progress=False)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed == len(before)
    expected = {"ntp": {"ntp"}, "sft": {"ntp", "sft"}}.get(
        variant.get("method"),
        {"ntp", {"dpo": "dpo", "unlikelihood": "unlikelihood", "reinforce": "reinforce"}[cfg.debias_loss]},
    )
    if cfg.schedule == "interleaved":
        expected = {"ntp", "dpo", "learn"}
    assert expected <= set(result.history[0]) - {"step", "phase"}


def test_schedule_and_config_errors():
    cfg = PretrainRLConfig(steps=10, debias_fraction=0.3)
    assert [phase_at(s, cfg) for s in range(10)] == ["debias"] * 3 + ["learn"] * 7
    assert {phase_at(s, method_config("pretrainrl-no-debias", cfg)) for s in range(10)} == {"learn"}
    assert {phase_at(s, method_config("debias-only", cfg)) for s in range(10)} == {"debias"}
    with pytest.raises(LongloreError, match="debias_loss"):
        PretrainRLConfig(debias_loss="ppo")
    with pytest.raises(LongloreError, match="unknown method"):
        method_config("grpo", cfg)
    with pytest.raises(LongloreError, match="needs a fact set"):
        train(None, None, PretrainRLConfig(), blocks=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(LongloreError, match="no `question`"):
        train(
            None,
            None,
            PretrainRLConfig(fact_objective="sft"),
            blocks=torch.zeros(1, 4, dtype=torch.long),
            facts=[Fact(subject="a", relation="r", object="b", prompt="a r")],
        )


def test_resume_equals_the_unbroken_run(tiny, tmp_path):
    """Stopped mid-debias (between two minings) and resumed on a freshly built model: the same weights,
    history and negatives as an unbroken run, because the batch is a function of the step and the
    negatives in force are reloaded from the run folder."""
    model, tok, blocks = tiny
    facts = [
        Fact(id=f"f{i}", subject=s, relation="birthplace", object=t, prompt=f"{s} was born in", candidates=TOWNS)
        for i, (s, t) in enumerate([("Abel Karo", "Tarsk"), ("Mira Sol", "Brin"), ("Ode Lun", "Kesh")])
    ]
    cfg = PretrainRLConfig(
        steps=6,
        batch_size=2,
        block_size=32,
        fact_batch_size=2,
        debias_fraction=0.5,
        warmup=0,
        mine_every=2,
        mine_method="candidates",
        num_negatives=2,
        log_every=1,
    )
    unbroken = copy.deepcopy(model)
    whole = train(unbroken, tok, cfg, blocks=blocks, facts=facts, progress=False)
    first = train(
        copy.deepcopy(model), tok, cfg, blocks=blocks, facts=facts, progress=False, out_dir=tmp_path, stop_after=3
    )
    assert not first.finished and first.step == 3 and (tmp_path / "negatives" / "step2.jsonl").exists()
    resumed = copy.deepcopy(model)  # a fresh copy of the start model: the checkpoint brings the state
    second = train(resumed, tok, cfg, blocks=blocks, facts=facts, progress=False, out_dir=tmp_path)
    assert second.finished and second.step == 6
    assert first.history == whole.history[:3] and second.history == whole.history  # the log survives the stop
    assert all(torch.equal(a, b) for a, b in zip(unbroken.parameters(), resumed.parameters()))
    assert whole.mined_rounds == 2  # steps 0 and 2 of the 3 debias steps


def test_bf16_forward_and_training_step(test_device):
    """PretrainRL adds no module: the backbone in bf16 on the test device trains under every fact term."""
    import math

    model, tok = load_model("tiny-llama:seed=1", device=test_device, dtype="bfloat16")
    blocks = make_blocks(tok, [filler_text(2000, seed=0)], 32)
    fact = Fact(id="f", subject="Abel Karo", relation="birthplace", object="Tarsk", prompt="Abel Karo was born in")
    fact = fact.model_copy(update={"candidates": TOWNS})
    logits = model(input_ids=blocks[:2].to(test_device)).logits
    assert logits.dtype == torch.bfloat16 and logits.device.type == torch.device(test_device).type
    before = [p.detach().clone() for p in model.parameters()]
    cfg = PretrainRLConfig(
        steps=2,
        batch_size=2,
        block_size=32,
        fact_batch_size=1,
        warmup=0,
        schedule="interleaved",
        mine_method="candidates",
        num_negatives=2,
        lr=1e-2,
    )
    result = train(model, tok, cfg, blocks=blocks, facts=[fact], progress=False)
    assert {"ntp", "dpo", "learn"} <= set(result.history[0])
    assert all(math.isfinite(v) for row in result.history for k, v in row.items() if k not in ("step", "phase"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert all(p.device.type == torch.device(test_device).type for p in model.parameters())
    assert sum(not torch.equal(a, b) for a, b in zip(before, model.parameters())) == len(before)
    state = evaluate_facts(model, tok, [fact])[0]
    assert 0 < state.p_truth < 1
