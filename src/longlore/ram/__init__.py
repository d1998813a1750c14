"""RAM: compress a long context for a query by close reading relevant segments and skimming the rest.

See ``docs/ram.md``. Public API: :class:`RAMConfig`, :class:`RAMModel` (``compress``, ``encode_context``, ``answer``,
``generate``, ``save_pretrained`` / ``from_pretrained``), :func:`make_dataset`, :func:`train`.
"""

from longlore.ram.config import RAMConfig, TrainArgs
from longlore.ram.data import QARecord, load_qa, make_dataset
from longlore.ram.model import Compressed, EncodedContext, RAMModel
from longlore.ram.trainer import evaluate, train

__all__ = [
    "Compressed",
    "EncodedContext",
    "QARecord",
    "RAMConfig",
    "RAMModel",
    "TrainArgs",
    "evaluate",
    "load_qa",
    "make_dataset",
    "train",
]
