"""RecGPT: intent-centric recommendation — compressed behaviour histories, LLM interest mining,
tag prediction and explanations, a user-item-tag three-tower retriever, judges, evaluation and
an HTTP API. See ``docs/recgpt.md``.

Public API: :func:`load_dataset`, :func:`leave_last_out`, :func:`compress_history`,
:class:`RecGPTConfig`, :func:`run_interest_and_tags`, :func:`train_retriever`, :class:`Retriever`,
:func:`compare_methods`, :func:`recommend`, :func:`create_app`, :class:`TrainedJudge`, :func:`llm_judge`.
"""

from longlore.recgpt.compress import compress_history
from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.data import Dataset, leave_last_out, load_dataset
from longlore.recgpt.judge import TrainedJudge, llm_judge
from longlore.recgpt.mining import run_interest_and_tags
from longlore.recgpt.pipeline import compare_methods, recommend
from longlore.recgpt.serve import create_app
from longlore.recgpt.trainer import Retriever, train_retriever

__all__ = [
    "Dataset",
    "RecGPTConfig",
    "Retriever",
    "TrainedJudge",
    "compare_methods",
    "compress_history",
    "create_app",
    "leave_last_out",
    "llm_judge",
    "load_dataset",
    "recommend",
    "run_interest_and_tags",
    "train_retriever",
]
