"""Serving merges of several tags: 'max' is the paper's fused score; 'round_robin' interleaves per-tag lists."""

from __future__ import annotations

import pytest
import torch

from longlore.core.errors import LongloreError
from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.model import fuse
from longlore.recgpt.trainer import Features, Retriever, _new_model

TAGS = ["comedy movies", "war drama", "animated family"]


@pytest.fixture()
def retriever(toy_data, hash_embedder):
    torch.manual_seed(0)
    features = Features.build(toy_data)
    config = RecGPTConfig(dim=16, merge_depth=12)
    return Retriever(_new_model(features, 32, config.dim), features, config, hash_embedder)


def _user(retriever):
    user = retriever.features.user_ids[0]
    history = retriever.features.item_ids[:5]
    return user, history


def test_max_merge_is_the_fused_formula(retriever):
    user, history = _user(retriever)
    scores, best = retriever.scores(user, history, TAGS, beta=0.7, merge="max")
    y_col = retriever.user_vectors([user], [history])[0] @ retriever.item_vectors.T
    per_tag = retriever.tag_vectors(TAGS) @ retriever.item_vectors.T
    assert torch.allclose(scores, fuse(y_col, per_tag.max(0).values, 0.7))
    assert torch.equal(best, per_tag.argmax(0))


def test_round_robin_gives_each_tag_an_equal_share_in_its_own_order(retriever):
    user, history = _user(retriever)
    seen = {retriever.item_index[i] for i in history}
    scores, best = retriever.scores(user, history, TAGS, beta=0.3, merge="round_robin")
    top = torch.argsort(scores, descending=True)[:12].tolist()
    assert len(set(top)) == 12 and not seen & set(top)
    y_col = retriever.user_vectors([user], [history])[0] @ retriever.item_vectors.T
    per_tag = 0.3 * y_col + 0.7 * (retriever.tag_vectors(TAGS) @ retriever.item_vectors.T)  # (T, N)
    owners = [int(best[i]) for i in top]
    assert owners == [0, 1, 2] * 4  # interleaved: tag 0, tag 1, tag 2, tag 0, ...
    unseen = torch.tensor([i not in seen for i in range(len(scores))])
    assert top[0] == int(torch.where(unseen, per_tag[0], -torch.inf).argmax())
    for t in range(3):  # each tag's items come in that tag's own score order
        own = [per_tag[t, i].item() for i, o in zip(top, owners) if o == t]
        assert own == sorted(own, reverse=True)


def test_round_robin_at_b1_is_the_collaborative_ranking(retriever):
    user, history = _user(retriever)
    seen = {retriever.item_index[i] for i in history}
    merged, _ = retriever.scores(user, history, TAGS, beta=1.0, merge="round_robin")
    y_col, _ = retriever.scores(user, history, None)
    unseen = [i for i in torch.argsort(y_col, descending=True).tolist() if i not in seen]
    assert torch.argsort(merged, descending=True)[:12].tolist() == unseen[:12]


def test_unknown_merge_is_rejected(retriever):
    user, history = _user(retriever)
    with pytest.raises(LongloreError, match="round_robin"):
        retriever.scores(user, history, TAGS, merge="mean")
    with pytest.raises(LongloreError, match="tag_merge"):
        RecGPTConfig(tag_merge="mean")
