"""The fact objectives: DPO against hand-computed values, reference isolation, gradient directions."""

from __future__ import annotations

import math

import pytest
import torch

from longlore.pretrainrl.loss import dpo_loss, nll_loss, reinforce_loss, shared_prefix_mask, unlikelihood_loss


def test_dpo_equals_hand_computed_value():
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-0.5, -3.0])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-0.7, -2.5])
    # z_i = beta * ((pc - rc) - (pr - rr)) = 0.5 * (0.5 - 0.2), 0.5 * (0.0 + 0.5)
    z = [0.15, 0.25]
    expected = sum(math.log(1 + math.exp(-zi)) for zi in z) / 2
    assert dpo_loss(pc, pr, rc, rr, beta=0.5).item() == pytest.approx(expected, abs=1e-6)


def test_dpo_is_log2_at_the_reference_and_gives_no_gradient_to_it():
    policy_c = torch.tensor([-1.0, -4.0], requires_grad=True)
    policy_r = torch.tensor([-2.0, -0.5], requires_grad=True)
    ref_c = policy_c.detach().clone().requires_grad_(True)
    ref_r = policy_r.detach().clone().requires_grad_(True)
    loss = dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference -> sigmoid(0)
    loss.backward()
    assert ref_c.grad is None and ref_r.grad is None
    # raising the truth and lowering the falsehood both reduce the loss
    assert (policy_c.grad < 0).all() and (policy_r.grad > 0).all()
    assert policy_c.grad[0].item() == pytest.approx(-0.1 * 0.5 / 2, abs=1e-6)  # -beta * sigmoid(-0) / P


def test_unlikelihood_and_nll_values():
    token_logp = torch.log(torch.tensor([[0.5, 0.2], [0.9, 0.1]]))
    mask = torch.tensor([[True, True], [True, False]])
    ul = unlikelihood_loss(token_logp, mask).item()
    assert ul == pytest.approx((-math.log(0.5) - math.log(0.8) - math.log(0.1)) / 3, abs=1e-5)
    nll = nll_loss(token_logp, mask).item()
    assert nll == pytest.approx(-(math.log(0.5) + math.log(0.2) + math.log(0.9)) / 3, abs=1e-5)


def test_shared_prefix_mask_spares_the_truths_prefix():
    mask = shared_prefix_mask([[5, 6, 7], [9, 6], [5, 6]], [[5, 6, 8], [5, 6], [5, 6, 1]], L=3)
    assert mask.tolist() == [[False, False, True], [True, True, False], [False, False, False]]


def test_reinforce_leave_one_out_advantage():
    logp = torch.zeros(1, 4, requires_grad=True)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    reinforce_loss(logp, rewards).backward()
    # advantage of the rewarded sample: 1 - 0 = 1; of the others: 0 - 1/3
    assert logp.grad[0].tolist() == pytest.approx([-1 / 4, 1 / 12, 1 / 12, 1 / 12])
    same = torch.zeros(2, 3, requires_grad=True)
    reinforce_loss(same, torch.ones(2, 3)).backward()
    assert same.grad.abs().sum().item() == 0.0  # equal rewards carry no signal
