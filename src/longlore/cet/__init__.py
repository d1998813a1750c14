"""CET: causal effect tuning (Zheng et al., ACL 2023, arXiv 2306.10790) for multiple-choice QA on
any BERT-family encoder, with the fine-tuning baselines it is compared with (vanilla, EWC,
RecAdam, R3F, and a frozen-encoder reference).

    from longlore.cet import CETConfig, load_questions, train
    result = train(CETConfig(method="cet", encoder="minilm", w0=0.9, k=3, theta=0.5),
                   load_questions("train.jsonl"), eval_sets={"test": load_questions("test.jsonl")})
"""

from longlore.cet.config import METHODS, CETConfig
from longlore.cet.data import MCQuestion, load_questions, parse_question, save_questions
from longlore.cet.kgqa import build_benchmark, kg_questions, movie_genre_questions
from longlore.cet.loss import cet_joint_loss, cet_mixture_loss, ewc_penalty, symmetric_kl
from longlore.cet.model import MCScorer, accuracy, load_scorer, predict, zero_shot_accuracy
from longlore.cet.neighbours import NeighbourTable, build_neighbours, find_neighbours
from longlore.cet.recadam import RecAdam, anneal_lambda
from longlore.cet.trainer import Trainer, TrainResult, estimate_fisher, train

__all__ = [
    "METHODS",
    "CETConfig",
    "MCQuestion",
    "MCScorer",
    "NeighbourTable",
    "RecAdam",
    "TrainResult",
    "Trainer",
    "accuracy",
    "anneal_lambda",
    "build_benchmark",
    "build_neighbours",
    "cet_joint_loss",
    "cet_mixture_loss",
    "estimate_fisher",
    "ewc_penalty",
    "find_neighbours",
    "kg_questions",
    "load_questions",
    "load_scorer",
    "movie_genre_questions",
    "parse_question",
    "predict",
    "save_questions",
    "symmetric_kl",
    "train",
    "zero_shot_accuracy",
]
