"""Compression probe: the data-centric context-compression study (arXiv 2602.01778) as one system.

A text autoencoder — LoRA encoder cut from a causal LM, group-merge pooling into memory slots, one
alignment layer, a frozen decoder — reconstructs text from the memory alone; reconstruction BLEU/F1
per sample is set against the input's entropy under the encoder and under the decoder, across
distributions, compression ratios and matched vs mismatched encoder/decoder pairs. See ``docs/probe.md``.

Public API: :class:`ProbeConfig`, :class:`TrainArgs`, :class:`ProbeAutoencoder` (``save_pretrained`` /
``from_pretrained``), :func:`train_autoencoder`, :class:`Distributions`, :class:`StudyConfig`, :class:`Study`.
"""

from longlore.probe.config import ProbeConfig, TrainArgs
from longlore.probe.data import BUILTIN_DISTRIBUTIONS, Distributions, Sample
from longlore.probe.model import ProbeAutoencoder, group_merge_pool, memory_length
from longlore.probe.study import Study, StudyConfig
from longlore.probe.trainer import continue_pretrain, mixture_sampler, train_autoencoder

__all__ = [
    "BUILTIN_DISTRIBUTIONS",
    "Distributions",
    "ProbeAutoencoder",
    "ProbeConfig",
    "Sample",
    "Study",
    "StudyConfig",
    "TrainArgs",
    "continue_pretrain",
    "group_merge_pool",
    "memory_length",
    "mixture_sampler",
    "train_autoencoder",
]
