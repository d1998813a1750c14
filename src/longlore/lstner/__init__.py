"""LST-NER: cross-domain NER by label-graph matching (Zheng et al., Findings ACL 2022).

A source tagger trained on a rich domain (PER/ORG/LOC/MISC) is transferred to a target domain
with its own label set from a few target sentences: label distributions p(Y_source | y_target)
build source and target label graphs, a GCN over the target graph is fused into the encoder's
token states, and an entropic Gromov-Wasserstein distance matches the two graphs.

Public API::

    from longlore.lstner import LSTNERConfig, train_source, train_target, NERPipeline, read_ner
"""

from longlore.lstner.config import LSTNERConfig
from longlore.lstner.data import (
    LabelSet,
    Sentence,
    load_split,
    read_conll,
    read_crossner_folder,
    read_jsonl_ner,
    read_ner,
)
from longlore.lstner.graph import (
    build_adjacency,
    label_distributions,
    label_distributions_from_logits,
    normalize_adjacency,
)
from longlore.lstner.gw import entropic_gw
from longlore.lstner.model import LSTNERModel, MultiTaskTagger, Tagger
from longlore.lstner.pipeline import NERPipeline
from longlore.lstner.trainer import METHODS, build_lstner, train_source, train_target

__all__ = [
    "METHODS",
    "LSTNERConfig",
    "LSTNERModel",
    "LabelSet",
    "MultiTaskTagger",
    "NERPipeline",
    "Sentence",
    "Tagger",
    "build_adjacency",
    "build_lstner",
    "entropic_gw",
    "label_distributions",
    "label_distributions_from_logits",
    "load_split",
    "normalize_adjacency",
    "read_conll",
    "read_crossner_folder",
    "read_jsonl_ner",
    "read_ner",
    "train_source",
    "train_target",
]
