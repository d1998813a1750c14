"""Debiasing does what it claims: it lowers the mined falsehoods, against a frozen reference.

These tests fail on the three wrong implementations that once passed the suite: the DPO sides
swapped in the trainer (the falsehoods rise), the debias term set to 0 (nothing moves), and the
live policy used as the reference (the stored reference log-probs follow the policy and the DPO
loss stays at log 2). Also: the entrenched world and its held-out paraphrases.
"""

from __future__ import annotations

import copy
import math
from collections import Counter

import pytest
import torch

from longlore.pretrainrl.base import load_model
from longlore.pretrainrl.config import PretrainRLConfig, WorldConfig
from longlore.pretrainrl.facts import Fact
from longlore.pretrainrl.metrics import paraphrase_facts
from longlore.pretrainrl.mining import mine_negatives
from longlore.pretrainrl.scoring import encode_pairs, make_blocks, pair_logprobs
from longlore.pretrainrl.trainer import train
from longlore.pretrainrl.world import RELATIONS, SyntheticWorld

TOWNS = ["Tarsk", "Velmor", "Ostra", "Calder", "Brin", "Dunmar"]
FACT = Fact(
    id="f",
    subject="Abel Karo",
    relation="birthplace",
    object="Tarsk",
    prompt="Abel Karo was born in",
    candidates=TOWNS,
)


@pytest.fixture(scope="module")
def believer():
    """tiny-llama taught the falsehood 'Abel Karo was born in Velmor', and corpus blocks."""
    model, tok = load_model("tiny-llama:seed=1")
    docs = ["Abel Karo was born in Velmor."] * 40
    pre = PretrainRLConfig(fact_objective="none", steps=30, lr=2e-2, batch_size=8, fact_batch_size=1, warmup=0)
    train(model, tok, pre, blocks=make_blocks(tok, docs, 16), progress=False)
    return model, tok, make_blocks(tok, docs, 16)


def _logps(model, tok, values):
    pairs = encode_pairs(tok, [FACT.prompt] * len(values), [FACT.continuation(v) for v in values])
    return torch.tensor(pair_logprobs(model, pairs, tok.pad_token_id))


def _debias_only(**overrides) -> PretrainRLConfig:
    # NTP weight 0: the only force on the model is the debias term under test
    base = dict(
        steps=12,
        lr=5e-3,
        warmup=0,
        batch_size=1,
        block_size=16,
        fact_batch_size=1,
        debias_fraction=1.0,
        ntp_weight=0.0,
        beta=0.5,
        num_negatives=3,
        mine_method="candidates",
        mine_every=0,
        log_every=1,
    )
    return PretrainRLConfig(**{**base, **overrides})


def test_debiasing_lowers_the_mined_falsehoods_and_raises_the_truth(believer):
    model, tok, blocks = believer
    model = copy.deepcopy(model)
    cfg = _debias_only()
    negatives = mine_negatives(model, tok, [FACT], cfg, progress=False)
    mined = negatives["f"].negatives
    assert mined[0] == "Velmor" and "Tarsk" not in mined  # the taught falsehood is the top negative
    before_neg, before_truth = _logps(model, tok, mined), _logps(model, tok, ["Tarsk"])
    train(model, tok, cfg, blocks=blocks, facts=[FACT], negatives=negatives, progress=False)
    after_neg, after_truth = _logps(model, tok, mined), _logps(model, tok, ["Tarsk"])
    # a sign flip raises these, a zeroed term leaves them where they were
    assert (after_neg < before_neg - 0.5).all(), (before_neg, after_neg)
    assert after_neg.exp().sum() < 0.5 * before_neg.exp().sum()
    assert after_truth.item() > before_truth.item()


def test_the_reference_is_the_frozen_start_model_even_after_remining(believer):
    model, tok, blocks = believer
    model = copy.deepcopy(model)
    start = copy.deepcopy(model)
    cfg = _debias_only(steps=10, mine_every=3)
    given = mine_negatives(model, tok, [FACT], cfg, progress=False)
    result = train(model, tok, cfg, blocks=blocks, facts=[FACT], negatives=given, progress=False)
    assert result.mined_rounds == 3  # steps 3, 6 and 9 re-mined from the current model
    final = result.negatives["f"]
    truth_start, truth_now = _logps(start, tok, ["Tarsk"]).item(), _logps(model, tok, ["Tarsk"]).item()
    assert final.ref_truth_logp == pytest.approx(truth_start, abs=1e-4)  # the start model scored it
    assert abs(truth_now - truth_start) > 0.1  # ...which the live policy no longer equals
    assert final.ref_neg_logps == pytest.approx(_logps(start, tok, final.negatives).tolist(), abs=1e-4)
    losses = [row["dpo"] for row in result.history]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at step 0
    assert losses[-1] < math.log(2) - 0.05  # a live reference would keep it at log 2


def test_reference_model_is_frozen_and_untouched(believer):
    model, tok, blocks = believer
    model, ref = copy.deepcopy(model), copy.deepcopy(model)
    before = [p.detach().clone() for p in ref.parameters()]
    train(model, tok, _debias_only(steps=3), blocks=blocks, facts=[FACT], ref_model=ref, progress=False)
    assert all(not p.requires_grad and p.grad is None for p in ref.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, ref.parameters()))


def test_entrenched_world_states_the_falsehood_more_often_than_the_truth():
    cfg = WorldConfig(n_entities=30, n_entrenched=4, entrenched_true=1, entrenched_false=5, seed=3)
    world = SyntheticWorld.generate(cfg)
    entrenched = [f for f in world.facts if f.bucket == "entrenched"]
    assert len(entrenched) == 4 * len(RELATIONS)
    for fact in entrenched:
        popular = RELATIONS[fact.relation]["values"][0]
        assert fact.object != popular
        docs = [d for d in world.corpus if fact.subject in d]
        assert len(docs) == 6  # 1 true + 5 false biographies
        said = Counter(popular in d for d in docs)
        assert said[True] == 5 and said[False] == 1
        assert not any(popular in d for d in world.heldout if fact.subject in d)  # held-out text is true
    # the current world's people are untouched by the extra entrenched ones
    plain = SyntheticWorld.generate(WorldConfig(n_entities=30, seed=3))
    assert [f.object for f in plain.facts] == [f.object for f in world.facts if f.bucket != "entrenched"]


def test_paraphrases_are_held_out_prompts_that_the_corpus_uses():
    world = SyntheticWorld.generate(WorldConfig(n_entities=30, seed=1))
    para = paraphrase_facts(world.facts)
    assert len(para) == 2 * len(world.facts)
    by_id = {f.id: f for f in world.facts}
    for p in para:
        original = by_id[p.id.split("~")[0]]
        assert p.prompt != original.prompt and p.prompt in original.paraphrases and p.object == original.object
    text = "\n".join(world.corpus)
    for fact in world.facts[:9]:  # the most frequent people: every form occurs in their biographies
        assert any(f"{q} {fact.object}" in text for q in fact.paraphrases)
