"""PretrainRL: debias-then-learn training against factual hallucination (arXiv 2602.01875).

For each fact (subject, relation, object) with a cloze prompt, the model's own high-probability
wrong continuations are mined (beam search / sampling, never a true object); continued training
interleaves next-token prediction on a corpus with a *debias* phase (DPO of the truth over the mined
falsehoods against a frozen reference; unlikelihood or REINFORCE as options) and a *learn* phase
(raise the truth). The paper's exact objective is not public: this is a documented reading
(``docs/pretrainrl.md``). Metrics describe the model's probabilistic state over a fact set
(P(truth), rank, margin, Hit@k, low-probability truths, high-probability falsehoods) per frequency
bucket, plus held-out perplexity.

Public API::

    from longlore.pretrainrl import (PretrainRLConfig, WorldConfig, SyntheticWorld, Fact, load_facts,
                                     mine_negatives, train, evaluate_facts, summarize)
"""

from longlore.pretrainrl.base import load_model, save_model, save_pretrained
from longlore.pretrainrl.config import METHODS, PretrainRLConfig, WorldConfig, method_config
from longlore.pretrainrl.facts import Fact, build_facts, is_true, load_facts, movielens_facts, save_facts
from longlore.pretrainrl.loss import dpo_loss, nll_loss, reinforce_loss, unlikelihood_loss
from longlore.pretrainrl.metrics import FactState, evaluate_facts, fact_state, summarize
from longlore.pretrainrl.mining import Negatives, filter_negatives, load_negatives, mine_negatives, save_negatives
from longlore.pretrainrl.scoring import encode_pairs, make_blocks, pair_logprobs, perplexity
from longlore.pretrainrl.trainer import TrainResult, phase_at, train
from longlore.pretrainrl.world import SyntheticWorld

__all__ = [
    "METHODS",
    "Fact",
    "FactState",
    "Negatives",
    "PretrainRLConfig",
    "SyntheticWorld",
    "TrainResult",
    "WorldConfig",
    "build_facts",
    "dpo_loss",
    "encode_pairs",
    "evaluate_facts",
    "fact_state",
    "filter_negatives",
    "is_true",
    "load_facts",
    "load_model",
    "load_negatives",
    "make_blocks",
    "method_config",
    "mine_negatives",
    "movielens_facts",
    "nll_loss",
    "pair_logprobs",
    "perplexity",
    "phase_at",
    "reinforce_loss",
    "save_facts",
    "save_model",
    "save_negatives",
    "save_pretrained",
    "summarize",
    "train",
    "unlikelihood_loss",
]
