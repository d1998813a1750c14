"""Two more fine-tuning baselines from the CET paper's comparison: Mixout and ChildTune-D.

* **Mixout** (Lee et al., ICLR 2020): during training each weight of an encoder ``Linear`` is
  replaced, with probability ``p``, by its pretrained value, and the result is rescaled so that
  its expectation is the current weight::

      w~ = w0 + M * (w - w0) / (1 - p),      M ~ Bernoulli(1 - p) elementwise

  A fresh mask is drawn at every forward pass in training mode; in eval mode the weight is ``w``.
  Implemented as a ``torch.nn.utils.parametrize`` parametrisation, removed after training so the
  saved encoder is a plain Hugging Face model. The new head has no pretrained value and is left
  alone (as is dropout).
* **ChildTune-D** (Xu et al., EMNLP 2021): the diagonal Fisher of the encoder's layer weights on
  the task data picks a "child network", the top ``p_D`` share of weights by Fisher; only those
  receive gradients (a fixed 0/1 mask on their gradient), the rest stay at their pretrained
  values except for weight decay, as in the authors' optimiser. Parameters outside the
  transformer layers (embeddings, pooler) are not masked, as there.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize


class Mixout(nn.Module):
    """Parametrisation ``w -> w0 + M (w - w0) / (1 - p)`` in training mode, identity in eval mode."""

    def __init__(self, pretrained: torch.Tensor, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"mixout p must be in [0, 1), got {p}")
        self.p = p
        self.register_buffer("pretrained", pretrained.detach().clone(), persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return weight
        keep = torch.bernoulli(torch.full_like(weight, 1.0 - self.p))  # 1 = keep the fine-tuned weight
        return self.pretrained + keep * (weight - self.pretrained) / (1.0 - self.p)


def apply_mixout(module: nn.Module, p: float) -> list[nn.Linear]:
    """Put Mixout on the ``weight`` of every ``nn.Linear`` inside ``module`` (its current weights
    are w0); returns the layers, for :func:`remove_mixout`."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", Mixout(layer.weight, p))
    return layers


def remove_mixout(layers: list[nn.Linear]) -> None:
    """Drop the parametrisation and keep the fine-tuned weights as plain parameters."""
    for layer in layers:
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)


def child_masks(fisher: Mapping[str, torch.Tensor], reserve_p: float) -> dict[str, torch.Tensor]:
    """0/1 masks keeping the top ``reserve_p`` share of all entries of ``fisher`` (one global
    threshold over every tensor, as ChildTune-D's percentile); ties at the threshold are kept."""
    if not fisher:
        raise ValueError("child_masks needs a Fisher over at least one parameter")
    flat = torch.cat([f.detach().flatten().float() for f in fisher.values()])
    n_keep = max(1, round(reserve_p * flat.numel()))
    threshold = torch.kthvalue(flat, flat.numel() - n_keep + 1).values  # n_keep-th largest
    return {name: (f >= threshold.to(f.dtype)).to(f.dtype) for name, f in fisher.items()}


def is_layer_parameter(name: str) -> bool:
    """The weights ChildTune-D selects from: the transformer layers (names with ``layer``)."""
    return "layer" in name


def mask_gradients(params: Mapping[str, nn.Parameter], masks: Mapping[str, torch.Tensor]) -> list:
    """Multiply each named parameter's gradient by its mask on every backward; returns the hooks."""
    return [params[name].register_hook(lambda grad, m=mask: grad * m) for name, mask in masks.items()]
