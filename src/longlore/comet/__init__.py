"""CoMeT: plug-in collaborative memory (gated global + FIFO temporary) for any decoder-only LM.

See ``docs/comet.md``. Public API: :class:`CometConfig`, :class:`CometModel` (``forward``/``loss``,
``read``/``stream_chunk``/``generate``, ``save_pretrained``/``from_pretrained``), :class:`MemoryState`,
:func:`train` with :class:`TrainArgs`, the passkey task (:mod:`longlore.comet.passkey`) and
layer-level pipeline parallelism (:mod:`longlore.comet.pipeline`).
"""

from longlore.comet.config import CometConfig
from longlore.comet.memory import MemoryState
from longlore.comet.model import CometModel, CometOutput

__all__ = ["CometConfig", "CometModel", "CometOutput", "MemoryState"]
