"""Quality, entropy and correlation measures against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from longlore.probe.metrics import (
    correlation,
    nll_and_entropy,
    reconstruction_bleu,
    standardize_within,
    token_f1,
    token_statistics,
)


@pytest.mark.parametrize(
    "text",
    [
        "In the beginning God created the heaven and the earth.",
        "def f(x):\n    return x + 1",
        "这款耳机适合学生使用，售价719元。",
    ],
)
def test_exact_reconstruction_scores_100_and_empty_scores_0(text):
    assert reconstruction_bleu(text, text) == pytest.approx(100.0)
    assert reconstruction_bleu("", text) == 0.0
    ids = [5, 9, 9, 2, 31]
    assert token_f1(ids, ids) == pytest.approx(100.0)
    assert token_f1([], ids) == 0.0


def test_token_f1_by_hand_and_bleu_orders_partial_reconstructions():
    # overlap of [1,2,2,3] and [2,2,4]: {2: 2} -> P = 2/4, R = 2/3, F1 = 2PR/(P+R) = 4/7
    assert token_f1([1, 2, 2, 3], [2, 2, 4]) == pytest.approx(100 * 4 / 7)
    ref = "the cat sat on the mat and looked at the dog"
    near = reconstruction_bleu("the cat sat on the mat and looked at a dog", ref)
    far = reconstruction_bleu("a dog ran", ref)
    assert 0 < far < near < 100


def test_chinese_bleu_uses_characters():
    ref = "这款耳机适合学生使用"
    # One character changed: with whole-sentence tokens BLEU would be 0; per character it stays high.
    assert reconstruction_bleu("这款耳机适合老生使用", ref) > 40


def test_nll_and_entropy_equal_hand_computation_from_logits(tiny):
    model, _ = tiny
    ids = torch.tensor([[11, 250, 37, 99, 4], [7, 8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    nll, entropy = nll_and_entropy(logits, ids, mask)
    lg = logits.double().numpy()
    for b, length in enumerate([5, 3]):
        nlls, ents = [], []
        for t in range(length - 1):
            z = lg[b, t] - lg[b, t].max()
            p = np.exp(z) / np.exp(z).sum()
            nlls.append(-math.log(p[ids[b, t + 1]]))
            ents.append(-(p * np.log(p)).sum())
        assert nll[b].item() == pytest.approx(np.mean(nlls), rel=1e-5)
        assert entropy[b].item() == pytest.approx(np.mean(ents), rel=1e-5)
    # The batched helper pads by itself and gives the same numbers per sequence.
    rows = token_statistics(model, [[11, 250, 37, 99, 4], [7, 8, 9]], batch_size=2)
    assert rows[1]["nll"] == pytest.approx(nll[1].item(), rel=1e-5)
    assert rows[0]["entropy"] == pytest.approx(entropy[0].item(), rel=1e-5)


def test_uniform_logits_have_entropy_log_vocab():
    vocab = 50
    logits = torch.zeros(1, 4, vocab)
    nll, entropy = nll_and_entropy(logits, torch.tensor([[1, 2, 3, 4]]), torch.ones(1, 4))
    assert entropy.item() == pytest.approx(math.log(vocab))
    assert nll.item() == pytest.approx(math.log(vocab))


def test_correlations_match_scipy_on_fixed_data():
    x = [0.5, 1.7, 2.2, 3.9, 4.1, 5.5, 6.0, 7.3]
    y = [9.0, 8.1, 8.4, 5.0, 6.2, 3.3, 3.5, 1.0]
    result = correlation(x, y, n_resamples=200)
    # Pearson by the textbook formula; Spearman = Pearson of the ranks.
    xa, ya = np.array(x), np.array(y)
    r = ((xa - xa.mean()) * (ya - ya.mean())).sum() / np.sqrt(
        ((xa - xa.mean()) ** 2).sum() * ((ya - ya.mean()) ** 2).sum()
    )
    assert result["pearson"]["r"] == pytest.approx(r)
    ranks_x, ranks_y = stats.rankdata(x), stats.rankdata(y)
    assert result["spearman"]["r"] == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert result["pearson"]["p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert result["spearman"]["p"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    low, high = result["pearson"]["ci"]
    assert low <= result["pearson"]["r"] <= high < 0
    assert result["n"] == 8


def test_standardize_within_removes_group_means():
    values = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]
    z = standardize_within(values, ["a", "a", "a", "b", "b", "b"])
    assert z[:3] == pytest.approx(z[3:])
    assert z[:3].mean() == pytest.approx(0.0)
