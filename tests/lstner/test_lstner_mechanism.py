"""LST-NER's mechanism, pinned against independent (numpy) computations.

Each test here fails if one piece of the method were silently wrong: the GCN ignoring the
adjacency, the fusion output dropped, the padding mask removed, the auxiliary multi-label loss
removed or fed zeros, GW computed off the fused nodes (or its gradient stopping short of the
fusion and the encoder), the temperature ignored, the source graph's edges ignored, the target
graph not built from the label distributions, or span F1 not strict. The fusion's output
projection is made non-zero wherever its zero initialisation would hide the fusion.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from longlore.core.models import load_encoder
from longlore.lstner import LSTNERConfig, NERPipeline, Tagger, build_lstner
from longlore.lstner.data import IGNORE, LabelSet, batches, encode_sentence
from longlore.lstner.graph import label_distributions
from longlore.lstner.model import LabelGraphFusion
from longlore.lstner.pipeline import span_scores
from longlore.lstner.synth import SOURCE_TYPES, TARGET_TYPES, source_corpus, target_corpus
from longlore.lstner.trainer import lstner_loss

CFG = LSTNERConfig(encoder="tiny-bert", dropout=0.0, max_len=40)


# --- independent reference computations (numpy, float64) ---------------------------------------
def _np_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def _np_linear(layer: torch.nn.Linear, x: np.ndarray) -> np.ndarray:
    return x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()


def _np_norm_adj(adj: np.ndarray) -> np.ndarray:
    a = adj + np.eye(len(adj))
    d = 1.0 / np.sqrt(a.sum(-1))
    return d[:, None] * a * d[None, :]


def _np_cos_cost(x: np.ndarray) -> np.ndarray:
    u = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return np.clip(1.0 - u @ u.T, 0.0, None) / 2.0


def _np_cos_edges(dist: np.ndarray, threshold: float) -> np.ndarray:
    u = dist / np.linalg.norm(dist, axis=-1, keepdims=True)
    sim = np.clip(u @ u.T, 0.0, None)
    np.fill_diagonal(sim, 0.0)
    return np.where(sim >= threshold, sim, 0.0)


def _np_fusion(fusion: LabelGraphFusion, h, mask, e, adj_hat):
    """The module's documented equations, written out once more in numpy."""
    d = h.shape[-1]
    scores = _np_linear(fusion.label_q, e)[None] @ _np_linear(fusion.token_k, h).transpose(0, 2, 1) / np.sqrt(d)
    scores = np.where(mask[:, None, :] > 0, scores, -np.inf)
    nodes = e[None] + _np_softmax(scores) @ h  # (B, L, D)
    nodes = nodes + np.maximum(adj_hat @ _np_linear(fusion.gcn, nodes), 0.0)
    att = _np_softmax(_np_linear(fusion.token_q, h) @ _np_linear(fusion.label_k, nodes).transpose(0, 2, 1) / np.sqrt(d))
    return h + _np_linear(fusion.out, att @ nodes), nodes


def _nonzero_out(fusion: LabelGraphFusion, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fusion.out.weight.copy_(torch.randn(fusion.out.weight.shape, generator=g) * 0.5)
        fusion.out.bias.copy_(torch.randn(fusion.out.bias.shape, generator=g) * 0.1)


# --- the fusion module ---------------------------------------------------------------------------
@pytest.fixture()
def fusion_inputs():
    torch.manual_seed(0)
    fusion = LabelGraphFusion(6).double()
    _nonzero_out(fusion)
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # sentence 2 has two padding positions
    label_emb = torch.randn(4, 6, generator=g, dtype=torch.float64)
    adj = torch.tensor([[0, 0.9, 0, 0], [0.9, 0, 0.5, 0], [0, 0.5, 0, 0], [0, 0, 0, 0]], dtype=torch.float64)
    return fusion, hidden, mask, label_emb, adj


def test_fusion_equals_an_independent_numpy_computation(fusion_inputs):
    fusion, hidden, mask, label_emb, adj = fusion_inputs
    adj_hat = _np_norm_adj(adj.numpy())
    fused, nodes = fusion(hidden, mask, label_emb, torch.from_numpy(adj_hat))
    ref_fused, ref_nodes = _np_fusion(fusion, hidden.numpy(), mask.numpy(), label_emb.numpy(), adj_hat)
    np.testing.assert_allclose(nodes.detach().numpy(), ref_nodes, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fused.detach().numpy(), ref_fused, rtol=1e-10, atol=1e-10)


def test_the_gcn_uses_the_adjacency(fusion_inputs):
    fusion, hidden, mask, label_emb, adj = fusion_inputs
    with_graph, nodes = fusion(hidden, mask, label_emb, torch.from_numpy(_np_norm_adj(adj.numpy())))
    no_graph, nodes_eye = fusion(hidden, mask, label_emb, torch.eye(4, dtype=torch.float64))
    # Node 3 has no edge: it is the same either way; nodes 0-2 are linked and must change.
    torch.testing.assert_close(nodes[:, 3], nodes_eye[:, 3])
    assert (nodes[:, :3] - nodes_eye[:, :3]).abs().max() > 1e-3
    assert (with_graph - no_graph).abs().max() > 1e-3


def test_padding_positions_do_not_leak_into_real_tokens_or_label_nodes(fusion_inputs):
    fusion, hidden, mask, label_emb, adj = fusion_inputs
    adj_hat = torch.from_numpy(_np_norm_adj(adj.numpy()))
    fused, nodes = fusion(hidden, mask, label_emb, adj_hat)
    changed = hidden.clone()
    changed[1, 3:] = 100.0 * torch.randn(2, 6, dtype=torch.float64)  # garbage at the padding
    fused2, nodes2 = fusion(changed, mask, label_emb, adj_hat)
    torch.testing.assert_close(nodes2, nodes)
    torch.testing.assert_close(fused2[:, :3], fused[:, :3])
    torch.testing.assert_close(fused2[0], fused[0])


# --- the LST-NER model built from a (tiny, random) source tagger --------------------------------
@pytest.fixture(scope="module")
def source_pipe() -> NERPipeline:
    """An untrained tiny-bert source tagger with a spread-out head, so label distributions differ."""
    torch.manual_seed(0)
    encoder, tok = load_encoder("tiny-bert", seed=0)
    labels = LabelSet(SOURCE_TYPES)
    model = Tagger(encoder, len(labels), dropout=0.0).eval()
    with torch.no_grad():
        model.head.label_emb.copy_(torch.randn(model.head.label_emb.shape) * 2.0)
    enc = [encode_sentence(s, tok, labels, CFG.max_len) for s in source_corpus(12, seed=0)]
    dist = label_distributions(model, batches(enc, 64, tok.pad_token_id), len(labels), CFG.temperature)
    return NERPipeline(model, tok, labels, CFG, "tagger", extra={"source_dist": dist.tolist()})


@pytest.fixture(scope="module")
def target_batch(source_pipe):
    sents = target_corpus(8, seed=3)
    labels = LabelSet(TARGET_TYPES)
    enc = [encode_sentence(s, source_pipe.tokenizer, labels, CFG.max_len) for s in sents]
    return sents, labels, batches(enc, 8, source_pipe.tokenizer.pad_token_id, n_types=len(labels.types))[0]


def _np_label_dist(source_pipe, batch, n_labels: int, temperature: float) -> np.ndarray:
    with torch.no_grad():
        logits = source_pipe.model(batch["input_ids"], batch["attention_mask"]).double().numpy()
    labels = batch["labels"].numpy()
    probs = _np_softmax(logits / temperature)
    out = np.full((n_labels, logits.shape[-1]), 1.0 / logits.shape[-1])
    for y in range(n_labels):
        sel = labels == y
        if sel.any():
            out[y] = probs[sel].mean(0)
    return out


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_target_graph_is_built_from_temperature_softened_label_distributions(source_pipe, target_batch, temperature):
    sents, labels, batch = target_batch
    cfg = replace(CFG, temperature=temperature)
    model = build_lstner(source_pipe, sents, labels, cfg)
    expected_dist = _np_label_dist(source_pipe, batch, len(labels), temperature)
    np.testing.assert_allclose(model.label_dist.double().numpy(), expected_dist, atol=1e-5)
    expected_adj = _np_cos_edges(expected_dist, cfg.edge_threshold)
    np.testing.assert_allclose(model.adj.double().numpy(), expected_adj, atol=1e-5)
    np.testing.assert_allclose(model.adj_hat.double().numpy(), _np_norm_adj(expected_adj), atol=1e-5)
    # The temperature matters on this data: T = 1 and T = 4 give different distributions.
    other = _np_label_dist(source_pipe, batch, len(labels), 5.0 - temperature)
    assert np.abs(expected_dist - other).max() > 1e-3


def test_source_cost_propagates_source_embeddings_over_the_source_graph(source_pipe, target_batch):
    sents, labels, _ = target_batch
    dist_s = np.array(source_pipe.extra["source_dist"])
    e_s = source_pipe.model.head.label_emb.detach().double().numpy()
    costs = {}
    for threshold in (0.3, 0.95):
        model = build_lstner(source_pipe, sents, labels, replace(CFG, edge_threshold=threshold))
        adj_s = _np_cos_edges(dist_s, threshold)
        expected = _np_cos_cost(_np_norm_adj(adj_s) @ e_s)
        np.testing.assert_allclose(model.source_cost.double().numpy(), expected, atol=1e-5)
        costs[threshold] = expected
    # The two thresholds give different source edges here, and so different costs.
    assert np.abs(costs[0.3] - costs[0.95]).max() > 1e-3


def test_fused_output_reaches_the_logits(source_pipe, target_batch):
    sents, labels, batch = target_batch
    model = build_lstner(source_pipe, sents, labels, CFG).eval()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    plain = model.head(model.encode(ids, mask))
    torch.testing.assert_close(model(ids, mask), plain)  # zero-initialised output projection
    _nonzero_out(model.fusion)
    fused, _ = model.fusion(model.encode(ids, mask), mask, model.head.label_emb, model.adj_hat)
    torch.testing.assert_close(model(ids, mask), model.head(fused))
    assert (model(ids, mask) - plain).abs().max() > 1e-3


def test_lstner_loss_is_ce_plus_aux_bce_on_the_sentence_types_plus_gw_on_fused_nodes(source_pipe, target_batch):
    sents, labels, batch = target_batch
    cfg = replace(CFG, l_aux=0.7, l_gw=3.0)
    model = build_lstner(source_pipe, sents, labels, cfg).eval()
    _nonzero_out(model.fusion)
    loss, parts = lstner_loss(model, batch, cfg)
    logits, type_logits, nodes = model.forward_all(batch["input_ids"], batch["attention_mask"])
    # The auxiliary target, from the sentences' tags (not from the batch): which types occur.
    types = np.array([[float(any(t[2:] == k for t in s.tags if t != "O")) for k in labels.types] for s in sents])
    assert 0 < types.sum() < types.size
    z = type_logits.detach().double().numpy()
    bce = np.mean(np.maximum(z, 0) - z * types + np.log1p(np.exp(-np.abs(z))))
    lab = batch["labels"].numpy().reshape(-1)
    logp = np.log(_np_softmax(logits.detach().double().numpy().reshape(len(lab), -1)))
    ce = -np.mean(logp[lab != IGNORE, lab[lab != IGNORE]])
    gw_ref = model.gw_loss(nodes).item()
    assert parts["bce"].item() == pytest.approx(bce, rel=1e-5)
    assert parts["gw"].item() == pytest.approx(gw_ref, rel=1e-5) and gw_ref > 1e-4
    assert loss.item() == pytest.approx(ce + 0.7 * bce + 3.0 * gw_ref, rel=1e-5)
    # The target cost has no constant part: it is the cosine cost of the batch-mean fused nodes.
    np.testing.assert_allclose(
        model.target_cost(nodes).detach().double().numpy(),
        _np_cos_cost(nodes.mean(0).detach().double().numpy()),
        atol=1e-5,
    )


def test_gw_gradient_reaches_the_fusion_the_label_embeddings_and_the_encoder(source_pipe, target_batch):
    sents, labels, batch = target_batch
    model = build_lstner(source_pipe, sents, labels, CFG)
    _, _, nodes = model.forward_all(batch["input_ids"], batch["attention_mask"])
    gw = model.gw_loss(nodes)
    targets = {
        "gcn": model.fusion.gcn.weight,
        "label_q": model.fusion.label_q.weight,
        "token_k": model.fusion.token_k.weight,
        "label_emb": model.head.label_emb,
        "encoder": model.encoder.embeddings.word_embeddings.weight,
        "encoder_last_layer": next(model.encoder.encoder.layer[-1].parameters()),
    }
    grads = torch.autograd.grad(gw, list(targets.values()))
    for name, grad in zip(targets, grads):
        assert grad.abs().sum() > 0, f"GW gives no gradient to {name}"


def test_capacity_matched_ablations_keep_the_fusion_and_change_only_the_graph(source_pipe, target_batch):
    sents, labels, _ = target_batch
    full = build_lstner(source_pipe, sents, labels, CFG)
    eye = build_lstner(source_pipe, sents, labels, replace(CFG, adjacency="identity"))
    shuf = build_lstner(source_pipe, sents, labels, replace(CFG, adjacency="shuffled"))
    shapes = {n: p.shape for n, p in full.named_parameters()}
    assert {n: p.shape for n, p in eye.named_parameters()} == shapes == {n: p.shape for n, p in shuf.named_parameters()}
    assert full.adj.count_nonzero() > 0 and eye.adj.count_nonzero() == 0
    torch.testing.assert_close(eye.adj_hat, torch.eye(len(labels)))
    # Shuffled: the same edge weights, between other labels.
    torch.testing.assert_close(shuf.adj.flatten().sort().values, full.adj.flatten().sort().values)
    assert not torch.equal(shuf.adj, full.adj)
    torch.testing.assert_close(shuf.adj, shuf.adj.T)


# --- the metric ----------------------------------------------------------------------------------
def test_span_f1_is_strict_iob2():
    gold = [["B-BRAND", "I-BRAND", "O", "B-ORIGIN"]]
    assert span_scores(gold, gold)["f1"] == 100.0
    # A span opened by a stray I- tag is no entity under strict IOB2 (conlleval would accept it).
    stray = [["I-BRAND", "I-BRAND", "O", "B-ORIGIN"]]
    scores = span_scores(gold, stray)
    assert scores["precision"] == 100.0 and scores["recall"] == 50.0
    assert scores["f1"] == pytest.approx(100 * 2 / 3, abs=0.01)
    assert scores["per_type"]["BRAND"] == 0.0 and scores["per_type"]["ORIGIN"] == 100.0


def test_bce_matches_torch_reference_formula():
    # Guards the numpy BCE used above against a sign slip in the test itself.
    z = torch.tensor([[2.0, -1.0, 0.3]])
    y = torch.tensor([[1.0, 0.0, 1.0]])
    zn, yn = z.numpy().astype(float), y.numpy().astype(float)
    ref = np.mean(np.maximum(zn, 0) - zn * yn + np.log1p(np.exp(-np.abs(zn))))
    assert F.binary_cross_entropy_with_logits(z, y).item() == pytest.approx(ref, rel=1e-6)
