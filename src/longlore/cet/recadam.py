"""RecAdam (Chen et al., EMNLP 2020, "Recall and Learn"): Adam whose objective is annealed from
"stay at the pretrained weights" to "fit the target task"::

    Loss(t) = lambda(t) * Loss_T + (1 - lambda(t)) * (gamma / 2) * sum_j (theta_j - theta0_j)^2
    lambda(t) = 1 / (1 + exp(-k (t - t0)))

As in the authors' optimiser, the quadratic term is applied as a decoupled pull towards theta0
(it does not pass through Adam's moment estimates), and Adam's step on the task gradient is scaled
by lambda(t). Parameter groups with ``anneal=False`` (the new head, which has no pretrained value)
take plain AdamW steps: the head is annealed separately from, i.e. not together with, the encoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer


def anneal_lambda(step: int, k: float, t0: float) -> float:
    """Sigmoid annealing coefficient lambda(t) in [0, 1]; 0.5 at ``t = t0`` (stable for any k, t0)."""
    z = k * (step - t0)
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # z < 0: no overflow, underflows to 0 far before t0
    return e / (1.0 + e)


class RecAdam(Optimizer):
    """AdamW with RecAdam's annealed quadratic pull to the pretrained weights.

    Each group may set ``anneal`` (default True). Annealed groups remember their parameters' values
    at construction time as theta0, so build the optimiser before any training step.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 5e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        gamma: float = 5000.0,
        k: float = 0.5,
        t0: float = 20.0,
        anneal: bool = True,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, gamma=gamma, k=k, t0=t0, anneal=anneal)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if group["anneal"]:
                    self.state[p]["theta0"] = p.detach().clone()

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                step_size = group["lr"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                if group["anneal"]:
                    lam = anneal_lambda(t, group["k"], group["t0"])
                    p.addcdiv_(exp_avg, denom, value=-step_size * lam)  # lambda(t) * task step
                    # (1 - lambda(t)) * gamma * (theta - theta0): gradient of the quadratic term
                    p.add_(p - state["theta0"], alpha=-group["lr"] * (1.0 - lam) * group["gamma"])
                else:
                    p.addcdiv_(exp_avg, denom, value=-step_size)
                if group["weight_decay"] > 0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss
