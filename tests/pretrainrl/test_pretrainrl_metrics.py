"""Probability-state metrics against hand-computed values on a toy LM with known logits."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from longlore.core.models import load_causal_lm
from longlore.pretrainrl.facts import Fact
from longlore.pretrainrl.metrics import evaluate_facts, fact_state, summarize
from longlore.pretrainrl.mining import Negatives


class BigramLM(torch.nn.Module):
    """logits(next | prefix) = table[last token]: every continuation probability is known exactly."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])


@pytest.fixture(scope="module")
def toy():
    _, tok = load_causal_lm("tiny-llama")
    ids = {
        w: tok(" " + w, add_special_tokens=False)["input_ids"] for w in ("the", "he", "was", "unto", "of", "and", "in")
    }
    assert all(len(v) == 1 for v in ids.values()), "toy answers must be single tokens"
    ids = {w: v[0] for w, v in ids.items()}
    V = len(tok)
    table = torch.zeros(V, V)
    # P(answer | last prompt token): designed rows; the left-over mass is spread over the other tokens.
    rows = {
        "of": {"the": 0.5, "he": 0.2, "was": 0.1, "unto": 0.05},
        "and": {"he": 0.6, "the": 0.12, "was": 0.1, "unto": 0.05},
        "in": {"the": 0.4, "he": 0.35, "was": 0.1, "unto": 0.05},
    }
    for last, probs in rows.items():
        rest = (1 - sum(probs.values())) / (V - len(probs))
        p = torch.full((V,), rest, dtype=torch.float64)
        for w, q in probs.items():
            p[ids[w]] = q
        table[ids[last]] = p.log().float()
    model = BigramLM(table)
    cands = ["the", "he", "was", "unto"]
    facts = [
        Fact(id="a", subject="Ab", relation="r", object="the", prompt="Ab said of", candidates=cands, bucket="head"),
        Fact(
            id="b",
            subject="Cd",
            relation="r",
            object="was",
            objects=["was", "unto"],
            prompt="Cd said and",
            candidates=cands,
            bucket="torso",
        ),
        Fact(id="c", subject="Ef", relation="r", object="unto", prompt="Ef said in", candidates=cands, bucket="tail"),
    ]
    return model, tok, facts, rest_mass(V)


def rest_mass(V: int) -> float:
    return (1 - (0.4 + 0.35 + 0.1 + 0.05)) / (V - 4)  # row "in"


def test_states_equal_hand_computed_values(toy):
    model, tok, facts, rest_in = toy
    negatives = {"c": Negatives(fact_id="c", negatives=["of"])}
    states = {s.fact_id: s for s in evaluate_facts(model, tok, facts, negatives)}
    a, b, c = states["a"], states["b"], states["c"]
    assert (a.p_truth, a.rank, a.max_p_false, a.best_false) == (pytest.approx(0.5), 1, pytest.approx(0.2), "he")
    assert a.margin == pytest.approx(0.3) and a.hit1 and a.hit5 and not a.low_truth and not a.high_false
    # two truths: P(truth) = 0.1 + 0.05; best truth "was" (0.1) is beaten by "he" and "the"
    assert b.p_truth == pytest.approx(0.15) and b.rank == 3 and b.margin == pytest.approx(0.15 - 0.6)
    assert not b.hit1 and b.hit5 and not b.low_truth and b.high_false
    # the mined negative "of" joins the falsehoods with its (tiny, known) probability
    assert c.n_candidates == 5 and c.rank == 4 and c.p_truth == pytest.approx(0.05)
    assert c.low_truth and c.high_false and c.margin == pytest.approx(0.05 - 0.4)
    assert math.isclose(rest_in, 0.1 / (len(tok) - 4))
    summary = summarize(list(states.values()))
    assert summary["all"]["hit1"] == pytest.approx(1 / 3) and summary["all"]["rank"] == pytest.approx(8 / 3)
    assert summary["all"]["low_truth_count"] == 1 and summary["all"]["high_false_count"] == 2
    assert summary["tail"]["n"] == 1 and summary["head"]["hit1"] == 1.0


def test_thresholds_and_question_prompts(toy):
    model, tok, facts, _ = toy
    state = fact_state(facts[0], {"the": math.log(0.05), "he": math.log(0.25)}, low_truth=0.06, high_false=0.2)
    assert state.low_truth and state.high_false and state.rank == 2
    strict = fact_state(facts[0], {"the": math.log(0.05), "he": math.log(0.25)}, low_truth=0.01, high_false=0.3)
    assert not strict.low_truth and not strict.high_false
    assert evaluate_facts(model, tok, facts, prompt_field="question") == []  # no question forms: nothing scored


def test_summary_of_an_unbucketed_fact_set_counts_each_fact_once(toy):
    _, _, facts, _ = toy
    states = [
        fact_state(f.model_copy(update={"bucket": "all"}), {f.object: math.log(0.05), "zz": math.log(0.5)})
        for f in facts
    ]
    summary = summarize(states)
    assert list(summary) == ["all"]
    assert (
        summary["all"]["n"] == 3 and summary["all"]["low_truth_count"] == 3 and summary["all"]["high_false_count"] == 3
    )
