"""The fact objectives as small pure functions of log-probabilities.

Notation: P preference pairs (truth, mined falsehood) sharing a prompt; N sequences; L tokens.
Reference log-probs are always detached here, so no gradient can reach a reference model even if a
caller forgets ``no_grad``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO-sigmoid (Rafailov et al. 2023, eq. 7), mean over P pairs:

    -log sigmoid(beta * [(log pi(o|x) - log pi_ref(o|x)) - (log pi(y-|x) - log pi_ref(y-|x))]).
    All inputs are (P,) summed sequence log-probs; the truth o is the chosen side.
    """
    chosen = policy_chosen - ref_chosen.detach()
    rejected = policy_rejected - ref_rejected.detach()
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


def unlikelihood_loss(token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-level unlikelihood (Welleck et al. 2019): mean over masked tokens of -log(1 - p(y_t)).

    ``token_logp``/``mask`` are (N, L) for the negatives' tokens. Callers mask out a negative's
    tokens that merely repeat the truth's prefix, so the truth itself is never pushed down.
    """
    p = token_logp.exp().clamp(max=1 - 1e-6)
    per_token = -torch.log1p(-p)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def nll_loss(token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token negative log-likelihood of (N, L) continuation tokens (the *learn* term, SFT)."""
    return -(token_logp * mask).sum() / mask.sum().clamp(min=1)


def reinforce_loss(logp: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a leave-one-out baseline (as in RLOO), mean over prompts.

    ``logp`` and ``rewards`` are (G, K): K on-policy samples for each of G prompts. The advantage of
    sample k is r_k - mean_{j != k} r_j, which is unbiased and needs no value model.
    """
    K = rewards.size(1)
    baseline = (rewards.sum(1, keepdim=True) - rewards) / (K - 1)
    advantage = (rewards - baseline).detach()
    return -(advantage * logp).mean()


def shared_prefix_mask(neg_ids: list[list[int]], truth_ids: list[list[int]], L: int) -> torch.Tensor:
    """(N, L) mask of each negative's tokens from the first one that differs from its truth onward.

    Tokens a negative shares with the start of the truth (" Tar" of " Tarvin" vs " Tarsk") are as
    much the truth's as the falsehood's; unlikelihood on them would also push the truth down.
    """
    mask = torch.zeros((len(neg_ids), L), dtype=torch.bool)
    for i, (neg, truth) in enumerate(zip(neg_ids, truth_ids)):
        k = 0
        while k < min(len(neg), len(truth)) and neg[k] == truth[k]:
            k += 1
        mask[i, k : len(neg)] = True
    return mask
