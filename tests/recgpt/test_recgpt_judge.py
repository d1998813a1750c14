"""LLM judge (log-likelihood Yes/No) and the trained judge with minority rebalancing."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from longlore.core.errors import LongloreError
from longlore.recgpt.judge import (
    Judgement,
    TrainedJudge,
    judge_accuracy,
    llm_judge,
    load_annotations,
    rebalance,
)


def test_rebalance_oversamples_the_minority_to_parity():
    labels = [1] * 9 + [0] * 3
    idx = rebalance(labels, seed=0)
    counts = Counter(labels[i] for i in idx)
    assert counts[0] == counts[1] == 9 and set(range(12)) <= set(idx)
    with pytest.raises(LongloreError, match="needs both 0 and 1"):
        rebalance([1, 1, 1])


def test_trained_judge_learns_a_separable_rule_despite_imbalance(hash_embedder):
    good = [
        Judgement(stage="tag", context="likes space films", output=f"epic space saga {i}", label=1) for i in range(18)
    ]
    bad = [
        Judgement(stage="tag", context="likes space films", output=f"cheap cooking show {i}", label=0) for i in range(4)
    ]
    judge = TrainedJudge(hash_embedder).fit(good + bad)
    test = [
        Judgement(stage="tag", context="likes space films", output="space saga epic", label=1),
        Judgement(stage="tag", context="likes space films", output="cooking show cheap", label=0),
    ]
    probs = judge.predict_proba(test)
    assert probs[0] > 0.5 > probs[1]
    assert judge_accuracy(probs, [1, 0]) == {"accuracy": 1.0, "balanced_accuracy": 1.0, "n": 2}


def test_llm_judge_reads_yes_no_loglikelihoods():
    from longlore.core.backends import LoglikelihoodRequest, load_text_model

    model = load_text_model("tiny-llama")
    item = Judgement(stage="interest", context="1998-03(liked)|Heat (1995)", output="crime thrillers")
    p = llm_judge(model, [item])
    context = model.format_chat(
        "Context: 1998-03(liked)|Heat (1995)\nOutput (interest): crime thrillers\n"
        "Question: Is this interest supported by the history, specific and not made up? "
        "Answer Yes or No."
    )
    (yes, _), (no, _) = model.loglikelihood([LoglikelihoodRequest(context, "Yes"), LoglikelihoodRequest(context, "No")])
    assert p[0] == pytest.approx(np.exp(yes) / (np.exp(yes) + np.exp(no)), rel=1e-5)


def test_annotation_file_validation(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(
        json.dumps({"stage": "tag", "context": "c", "output": "o", "label": 1})
        + "\n"
        + json.dumps({"stage": "tag", "context": "c", "output": "o", "label": 3})
        + "\n"
    )
    with pytest.raises(LongloreError, match="labels.jsonl:2: field 'label' must be 0 or 1"):
        load_annotations(str(path))
    path.write_text(json.dumps({"stage": "title", "context": "c", "output": "o", "label": 1}) + "\n")
    with pytest.raises(LongloreError, match="labels.jsonl:1: field 'stage'"):
        load_annotations(str(path))
