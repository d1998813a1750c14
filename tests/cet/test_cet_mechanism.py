"""Each method's mechanism, pinned against independent computations: these tests fail if the EWC
penalty or the R3F KL term were dropped from ``batch_loss``, the trainer used the joint loss when
the mixture is configured, RecAdam's annealing were removed, neighbours came from anything but
the pretrained encoder or from the wrong space (answer vs feature), the retention probe took the argmin, Mixout did not mix towards the
pretrained weights, or ChildTune-D updated weights outside its child network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longlore.cet.config import CETConfig
from longlore.cet.data import MCQuestion
from longlore.cet.model import encode_pairs, zero_shot_accuracy
from longlore.cet.neighbours import NeighbourTable, neighbour_texts, shared_answer_share
from longlore.cet.recadam import RecAdam
from longlore.cet.regularizers import Mixout, apply_mixout, child_masks, remove_mixout
from longlore.cet.trainer import Trainer
from longlore.core.models import load_encoder

COLOURS = ["red", "blue", "green", "black", "white", "grey", "pink", "brown"]
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "sheep", "goat", "mouse"]


def distinct_questions(n: int = 8) -> list[MCQuestion]:
    """Every question has its own options: no two questions share an option text."""
    qs = []
    for i in range(n):
        opts = (f"{COLOURS[i % 8]} {ANIMALS[(i + j) % 8]} {i}" for j in range(3))
        qs.append(
            MCQuestion(
                f"q{i}", f"which {ANIMALS[i % 8]} lives near the {COLOURS[(i * 3) % 8]} hill", tuple(opts), i % 3
            )
        )
    return qs


def tiny(method: str, **kw) -> CETConfig:
    base = dict(method=method, encoder="tiny-bert", epochs=1, batch_size=4, max_len=24, k=2, theta=-1.0)
    base.update(lr=1e-3, head_lr=1e-2, fisher_samples=4, recadam_gamma=10.0)
    base.update(kw)
    return CETConfig(**base)


def logits_of(trainer: Trainer, questions: list[MCQuestion]) -> np.ndarray:
    with torch.no_grad():
        return trainer.scorer(encode_pairs(trainer.tokenizer, questions, trainer.config.max_len)).double().numpy()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def ce(logits: np.ndarray, labels: list[int]) -> float:
    return float(-np.mean(log_softmax(logits)[np.arange(len(labels)), labels]))


# --- batch_loss of each method ------------------------------------------------------------------
def test_ewc_batch_loss_is_task_ce_plus_the_fisher_weighted_penalty():
    qs = distinct_questions()
    trainer = Trainer(tiny("ewc", ewc_lambda=3.0), qs)
    trainer.scorer.eval()
    with torch.no_grad():  # move away from theta0 so the penalty is not zero
        for p in trainer.scorer.encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    params = dict(trainer.scorer.encoder.named_parameters())
    penalty = sum(
        float((trainer.fisher[n].double() * (params[n].detach().double() - trainer.theta0[n].double()) ** 2).sum())
        for n in trainer.fisher
    )
    with torch.no_grad():
        loss = trainer.batch_loss([0, 1, 2, 3])[0].item()
    expected = ce(logits_of(trainer, qs[:4]), [q.label for q in qs[:4]]) + 0.5 * 3.0 * penalty
    assert penalty > 1e-3
    assert loss == pytest.approx(expected, rel=1e-4)


def test_r3f_batch_loss_is_task_ce_plus_lambda_times_symmetric_kl_of_the_noised_logits():
    qs = distinct_questions()
    cfg = tiny("r3f", r3f_lambda=2.0, r3f_eps=0.5)
    trainer = Trainer(cfg, qs)
    trainer.scorer.eval()  # no dropout: the only randomness is the noise, reproduced below
    torch.manual_seed(123)
    with torch.no_grad():
        loss = trainer.batch_loss([0, 1, 2, 3])[0].item()
    torch.manual_seed(123)
    batch = encode_pairs(trainer.tokenizer, qs[:4], cfg.max_len)
    with torch.no_grad():
        embeds = trainer.scorer.encoder.get_input_embeddings()(batch.encoding["input_ids"])
        clean = trainer.scorer(batch, inputs_embeds=embeds).double().numpy()
        noise = torch.empty_like(embeds).uniform_(-0.5, 0.5)
        noised = trainer.scorer(batch, inputs_embeds=embeds + noise).double().numpy()
    lp, lq = log_softmax(noised), log_softmax(clean)
    sym_kl = float(np.mean((np.exp(lp) * (lp - lq)).sum(-1) + (np.exp(lq) * (lq - lp)).sum(-1)))
    task = ce(clean, [q.label for q in qs[:4]])
    assert sym_kl > 1e-4
    assert loss == pytest.approx(task + 2.0 * sym_kl, rel=1e-4)


@pytest.mark.parametrize("variant", ["mixture", "joint"])
def test_cet_batch_loss_uses_the_configured_variant(variant):
    qs = distinct_questions()
    w0 = 0.6
    trainer = Trainer(tiny("cet", k=2, w0=w0, variant=variant), qs)
    trainer.scorer.eval()
    with torch.no_grad():  # a spread-out head: with near-uniform p the two variants nearly agree
        trainer.scorer.head[-1].weight.mul_(300.0)
    ids = [0, 1, 2, 3]
    with torch.no_grad():
        loss = trainer.batch_loss(ids)[0].item()
    anchor = logits_of(trainer, [qs[i] for i in ids])
    mixture, joint = [], []
    for row, i in enumerate(ids):
        y = qs[i].label
        p_anchor = np.exp(log_softmax(anchor[row]))[y]
        nb = [j for j in trainer.neighbours.index[i] if j >= 0]
        assert len(nb) == 2
        # a neighbour's input: its own question with the anchor's options, the anchor's label
        pseudo = [MCQuestion("x", qs[j].question, qs[i].options, y) for j in nb]
        p_nb = np.exp(log_softmax(logits_of(trainer, pseudo)))[:, y]
        mixture.append(-np.log(w0 * p_anchor + (1 - w0) * p_nb.mean()))
        joint.append(w0 * -np.log(p_anchor) + (1 - w0) * np.mean(-np.log(p_nb)))
    expected, other = (np.mean(mixture), np.mean(joint)) if variant == "mixture" else (np.mean(joint), np.mean(mixture))
    assert loss == pytest.approx(expected, rel=1e-4)
    assert abs(expected - other) > 1e-4 and loss != pytest.approx(other, rel=1e-5)


def test_neighbour_inputs_pair_the_neighbours_question_with_the_anchors_own_options():
    qs = distinct_questions()
    trainer = Trainer(tiny("cet", k=1), qs)
    trainer.scorer.eval()
    nb_logits, mask = trainer._neighbour_logits(qs[:2], [0, 1])
    j = int(trainer.neighbours.index[0, 0])
    assert set(qs[j].options).isdisjoint(qs[0].options)  # the two inputs can be told apart
    right = logits_of(trainer, [MCQuestion("x", qs[j].question, qs[0].options, qs[0].label)])[0]
    wrong = logits_of(trainer, [MCQuestion("x", qs[j].question, qs[j].options, qs[0].label)])[0]
    assert mask[0, 0]
    np.testing.assert_allclose(nb_logits[0, 0].detach().double().numpy(), right, atol=1e-5)
    assert np.abs(right - wrong).max() > 1e-4


def test_recadam_scales_the_task_step_by_the_annealing_coefficient():
    # gamma = 0 leaves only the task step; Adam's first step is lr * sign(grad), times lambda(1)
    for k, t0, lam in ((1.0, 1.0, 0.5), (50.0, 100.0, 0.0), (50.0, -100.0, 1.0)):
        w = torch.nn.Parameter(torch.zeros(3))
        opt = RecAdam([{"params": [w]}], lr=0.1, gamma=0.0, k=k, t0=t0)
        w.grad = torch.tensor([1.0, -2.0, 0.5])
        opt.step()
        np.testing.assert_allclose(w.detach().numpy(), -0.1 * lam * np.sign([1.0, -2.0, 0.5]), atol=1e-6)


# --- neighbours and the retention probe ---------------------------------------------------------
def pretrained_neighbour_sims(texts: list[str], cfg: CETConfig) -> np.ndarray:
    """Cosine similarities of ``texts`` under a fresh copy of the pretrained encoder, in numpy."""
    encoder, tok = load_encoder(cfg.encoder, seed=cfg.seed)  # the same pretrained weights, loaded afresh
    encoder.eval()
    batch = tok(texts, padding=True, truncation=True, max_length=cfg.max_len, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state.double().numpy()
    m = batch["attention_mask"].numpy()[..., None]
    emb = (hidden * m).sum(1) / m.sum(1)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    return sims


def test_neighbours_are_nearest_in_the_pretrained_encoders_space():
    base = distinct_questions(6)
    # each question has a twin with the same text and gold answer: their embeddings are identical
    qs = base + [MCQuestion(f"t{i}", q.question, q.options, q.label) for i, q in enumerate(base)]
    cfg = tiny("cet", k=3, seed=5)
    trainer = Trainer(cfg, qs)
    sims = pretrained_neighbour_sims(neighbour_texts(qs, "feature"), cfg)
    for i in range(len(qs)):
        assert trainer.neighbours.index[i, 0] == (i + 6) % 12  # the twin comes first
        np.testing.assert_allclose(np.sort(trainer.neighbours.sim[i])[::-1], np.sort(sims[i])[::-1][:3], atol=1e-4)


@pytest.mark.parametrize("space", ["feature", "answer"])
def test_the_configured_neighbour_space_decides_what_is_embedded(space):
    # question i + 6 asks a different question whose gold answer text is question i's: twins in
    # answer space, strangers in feature space
    base = distinct_questions(6)
    others = distinct_questions(12)[6:]
    twins = [MCQuestion(f"a{i}", o.question, (q.gold, "zz top", "yy"), 0) for i, (q, o) in enumerate(zip(base, others))]
    qs = base + twins
    cfg = tiny("cet", k=3, seed=5, neighbour_space=space)
    table = Trainer(cfg, qs).neighbours
    # texts built here, not by the code under test: question + gold (feature) or gold alone (answer)
    texts = [f"{q.question} {q.gold}" for q in qs] if space == "feature" else [q.gold for q in qs]
    sims = pretrained_neighbour_sims(texts, cfg)
    for i in range(len(qs)):
        np.testing.assert_allclose(table.sim[i], np.sort(sims[i])[::-1][:3], atol=1e-4)
    first_is_twin = [table.index[i, 0] == (i + 6) % 12 for i in range(len(qs))]
    assert all(first_is_twin) if space == "answer" else not all(first_is_twin)


def test_zero_shot_probe_picks_the_most_similar_option():
    encoder, tok = load_encoder("tiny-bert", seed=0)
    texts = ["red cat on the hill", "blue river stone", "green tree bird", "black dog near water"]
    # the option identical to the question has cosine 1: the probe must choose it
    right = [MCQuestion(f"r{i}", t, tuple(texts), i) for i, t in enumerate(texts)]
    assert zero_shot_accuracy(encoder, tok, right, 24) == 1.0
    wrong = [MCQuestion(f"w{i}", t, tuple(texts), (i + 1) % 4) for i, t in enumerate(texts)]
    assert zero_shot_accuracy(encoder, tok, wrong, 24) == 0.0


def test_shared_answer_share_counts_neighbours_with_the_anchors_gold_answer():
    qs = [MCQuestion(f"q{i}", f"q{i}", (a, "zz"), 0) for i, a in enumerate(["Flu", "flu", "cold", "flu"])]
    table = NeighbourTable(index=np.array([[1, 2], [3, -1], [-1, -1], [0, 2]]), sim=np.ones((4, 2)))
    # pairs: (0,1) same, (0,2) no, (1,3) same, (3,0) same, (3,2) no -> 3 of 5
    assert shared_answer_share(table, qs) == pytest.approx(0.6)


# --- Mixout and ChildTune-D ---------------------------------------------------------------------
def test_mixout_mixes_towards_the_pretrained_weight_with_the_right_rescaling():
    torch.manual_seed(0)
    w0 = torch.zeros(200, 50)
    w = torch.ones(200, 50)
    mix = Mixout(w0, p=0.75)
    mixed = mix(w)
    # every entry is either w0 or w0 + (w - w0) / (1 - p) = 4; about a quarter keep the weight
    assert set(mixed.unique().tolist()) <= {0.0, 4.0}
    assert (mixed == 4.0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert mixed.mean().item() == pytest.approx(1.0, abs=0.08)  # unbiased: E[w~] = w
    mix.eval()
    assert torch.equal(mix(w), w)


def test_mixout_is_removed_after_training_and_only_training_forwards_are_mixed():
    qs = distinct_questions()
    trainer = Trainer(tiny("mixout", mixout_p=0.5), qs)
    layer = trainer.scorer.encoder.encoder.layer[0].attention.self.query
    assert torch.nn.utils.parametrize.is_parametrized(layer, "weight")
    with torch.no_grad():  # at theta0 mixing changes nothing: move the weight first
        layer.parametrizations.weight.original.add_(0.1)
    trainer.scorer.train()
    assert not torch.equal(layer.weight, layer.weight)  # a fresh mask at each access in training
    trainer.scorer.eval()
    assert torch.equal(layer.weight, layer.parametrizations.weight.original)
    keys_before = set(load_encoder("tiny-bert")[0].state_dict())
    result = trainer.fit(progress=False)
    assert not torch.nn.utils.parametrize.is_parametrized(layer, "weight")
    assert set(result.scorer.encoder.state_dict()) == keys_before  # saves as a plain HF encoder
    # apply/remove on a plain module keeps the trained weight
    lin = torch.nn.Linear(3, 3)
    layers = apply_mixout(lin, 0.3)
    with torch.no_grad():
        lin.parametrizations.weight.original.add_(1.0)
    expected = lin.parametrizations.weight.original.detach().clone()
    remove_mixout(layers)
    assert torch.equal(lin.weight.detach(), expected)


def test_child_masks_keep_the_top_share_by_fisher():
    fisher = {"a": torch.tensor([5.0, 1.0, 3.0]), "b": torch.tensor([[4.0, 0.5], [2.0, 6.0]])}
    masks = child_masks(fisher, reserve_p=3 / 7)  # the 3 largest of 7: 6, 5, 4
    assert masks["a"].tolist() == [1.0, 0.0, 0.0]
    assert masks["b"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_childtune_updates_only_its_child_network():
    qs = distinct_questions()
    trainer = Trainer(tiny("childtune", childtune_p=0.2, weight_decay=0.0), qs)
    params = dict(trainer.scorer.encoder.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    masks = trainer.child_masks
    assert masks and all("layer" in n for n in masks)
    kept = sum(float(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert kept == pytest.approx(0.2, abs=0.01)
    trainer.fit(progress=False)
    for name, mask in masks.items():
        moved = params[name].detach() != before[name]
        assert not moved[mask == 0].any(), f"{name}: a weight outside the child network moved"
    assert any(((params[n].detach() != before[n]) & (m == 1)).any() for n, m in masks.items())
