"""ConceptMath weak-concept training: classifier, bottom-k, selection, LoRA fine-tune and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from longlore.bench.build.config import WeakConceptConfig
from longlore.bench.build.weak import (
    ConceptClassifier,
    add_lora,
    bottom_concepts,
    collate,
    compute_loss,
    encode_example,
    parse_generators,
    problem_pool,
    run_weak_concepts,
    select_problems,
    train_lora,
)
from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm


class KeywordEmbedder:
    """One axis per keyword (+ noise): texts with the same keyword embed close together."""

    name = "keywords"
    words = ("apple", "train", "angle", "coin", "percent")

    def embed(self, texts, *, is_query=False):
        rng = np.random.default_rng(len(texts))
        out = np.stack([[float(w in t.lower()) for w in self.words] for t in texts]) + 0.05 * rng.normal(
            size=(len(texts), len(self.words))
        )
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_classifier_learns_separable_concepts():
    texts = [f"{w} question {i}" for w in ("apple", "train", "angle") for i in range(10)]
    labels = [f"c/{t.split()[0]}" for t in texts]
    clf = ConceptClassifier.fit(KeywordEmbedder(), texts, labels, epochs=200)
    predicted = clf.predict(["how many apple pies", "a train leaves", "the angle is"])
    assert [p for p, _ in predicted] == ["c/apple", "c/train", "c/angle"]
    assert all(prob > 0.5 for _, prob in predicted)
    assert np.allclose(clf.predict_proba(["apple"]).sum(1), 1.0)


def test_bottom_concepts_from_a_results_json():
    rows = [
        {"concept": "a/x/one", "n": 20, "acc": 0.0},
        {"concept": "a/x/two", "n": 16, "acc": 0.0},
        {"concept": "a/y/three", "n": 18, "acc": 0.1},
        {"concept": "a/y/four", "n": 18, "acc": 0.5},
    ]
    results = {"concepts": {"conceptmath/element_en": {"L0": [], "L0/L1": [], "L0/L1/L2": rows}}}
    got = [r["concept"] for r in bottom_concepts(results, "conceptmath/element_en", 3)]
    assert got == ["a/x/one", "a/x/two", "a/y/three"]  # ties at 0: more items first
    with pytest.raises(LongloreError, match="no concept tree"):
        bottom_concepts(results, "conceptmath/middle_en", 3)


def test_select_problems_round_robin_and_control_size():
    pool = [{"id": f"p{i}", "concept": ["A", "B", "C"][i % 3], "concept_prob": i / 100} for i in range(30)]
    chosen = select_problems(pool, ["A", "B"], 5)
    assert [p["concept"] for p in chosen] == ["A", "B", "A", "B", "A"]
    assert chosen[0]["id"] == "p27" and chosen[1]["id"] == "p28"  # most confident first
    assert len(select_problems(pool, ["A", "B"], 100)) == 20  # all that match
    control = select_problems(pool, ["A", "B"], 5, control=True, seed=1)
    assert len(control) == 5 and control == select_problems(pool, ["A", "B"], 5, control=True, seed=1)
    assert {p["concept"] for p in select_problems(pool, ["A", "B"], 30, control=True)} == {"A", "B", "C"}


def test_pool_has_numeric_answers_only():
    pool = problem_pool(parse_generators("gsm_symbolic:5,gcd:5,fraction_simplification:5"), seed=0)
    assert {p["generator"] for p in pool} == {"gsm_symbolic", "gcd", "fraction_simplification"}
    for p in pool:
        float(p["answer"].split("/")[0])  # numbers or plain fractions
    with pytest.raises(LongloreError, match="NAME:COUNT"):
        parse_generators("gsm_symbolic")


@pytest.fixture(scope="module")
def tiny():
    return load_causal_lm("tiny-llama")


def test_only_answer_tokens_carry_loss(tiny):
    _, tok = tiny
    ids, labels = encode_example(tok, "What is 2 + 3?", "5", max_length=256)
    n_prompt = sum(label == -100 for label in labels)
    assert n_prompt > 0 and labels[n_prompt:] == ids[n_prompt:]
    assert tok.decode(ids[n_prompt:]).startswith("Therefore, the answer is 5.")
    batch = collate([(ids, labels), (ids[:5], [-100] * 5)], tok.pad_token_id)
    assert batch["attention_mask"][1].sum() == 5 and (batch["labels"][1] == -100).all()


def _examples(n=12):
    return [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)]


def _lora_model(config):
    model, tok = load_causal_lm("tiny-llama", seed=3)
    return add_lora(model, config), tok


def test_lora_training_lowers_the_loss_and_only_trains_adapters(tmp_path):
    config = WeakConceptConfig(results="x", lora_r=8, lora_alpha=16, lr=2e-2, epochs=6, batch_size=4, save_every=100)
    model, tok = _lora_model(config)
    frozen = {k: v.clone() for k, v in model.named_parameters() if "lora_" not in k}
    rows = [encode_example(tok, e["question"], e["answer"], 128) for e in _examples()]
    before = compute_loss(model, collate(rows, tok.pad_token_id)).item()
    train_lora(model, tok, _examples(), config, tmp_path)
    after = compute_loss(model, collate(rows, tok.pad_token_id)).item()
    assert after < before - 0.5
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in frozen.items())


def test_lora_resume_equals_unbroken(tmp_path):
    config = WeakConceptConfig(results="x", lora_r=4, lora_alpha=8, lr=3e-3, epochs=2, batch_size=4, save_every=2)
    model, tok = _lora_model(config)
    done = train_lora(model, tok, _examples(), config, tmp_path / "unbroken")
    assert done["finished"] and done["steps"] == 6
    unbroken = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}

    model, tok = _lora_model(config)  # interrupted after step 4 ...
    stopped = train_lora(
        model, tok, _examples(), WeakConceptConfig(**{**config.__dict__, "stop_after": 4}), tmp_path / "r"
    )
    assert not stopped["finished"] and stopped["steps"] == 4
    model, tok = _lora_model(config)  # ... and resumed by a freshly built model
    resumed_run = train_lora(model, tok, _examples(), config, tmp_path / "r")
    assert resumed_run["finished"] and resumed_run["steps"] == 6 and len(resumed_run["log"]) == 6
    resumed = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert unbroken.keys() == resumed.keys() and len(unbroken) > 0
    assert all(torch.equal(resumed[k], unbroken[k]) for k in unbroken)


def test_gradient_checkpointing_trains_the_same_adapters(tmp_path):
    """Recomputed activations (and replayed dropout masks) give the same updates."""
    config = WeakConceptConfig(results="x", lora_r=4, lora_alpha=8, lr=3e-3, epochs=1, batch_size=4, save_every=100)
    weights = []
    for checkpointing in (False, True):
        model, tok = _lora_model(config)
        c = WeakConceptConfig(**{**config.__dict__, "gradient_checkpointing": checkpointing})
        calls = []  # a checkpointed layer runs twice per step: forward, then the recompute in backward
        mlp = next(m for n, m in model.named_modules() if n.endswith("layers.0.mlp"))
        forward = mlp.forward  # (counted on forward: the recompute does not fire module hooks)
        mlp.forward = lambda *a, calls=calls, forward=forward, **k: (calls.append(1), forward(*a, **k))[1]
        done = train_lora(model, tok, _examples(), c, tmp_path / str(checkpointing))
        assert len(calls) == done["steps"] * (2 if checkpointing else 1)
        assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        weights.append({k: v.clone() for k, v in model.state_dict().items() if "lora_" in k})
    plain, recomputed = weights
    assert any(not torch.equal(v, dict(_lora_model(config)[0].state_dict())[k]) for k, v in plain.items())
    assert plain.keys() == recomputed.keys()
    assert all(torch.allclose(plain[k], recomputed[k], atol=1e-6) for k in plain)


def test_lora_bf16_forward_and_training_step(test_device, tmp_path):
    """A bf16 backbone keeps bf16 weights and activations; the adapters are PEFT's fp32 master
    weights (``autocast_adapter_dtype``), the usual mixed-precision recipe; one step moves them."""
    config = WeakConceptConfig(results="x", lora_r=4, lora_alpha=8, lr=1e-2, epochs=1, batch_size=4)
    model, tok = load_causal_lm("tiny-llama", device=test_device, dtype="bfloat16")
    model = add_lora(model, config)
    base = {p.dtype for n, p in model.named_parameters() if "lora_" not in n}
    adapters = {p.dtype for n, p in model.named_parameters() if "lora_" in n}
    assert base == {torch.bfloat16} and adapters == {torch.float32}
    assert {p.device.type for p in model.parameters()} == {torch.device(test_device).type}
    batch = collate([encode_example(tok, "What is 1 + 1?", "2", 64)] * 2, tok.pad_token_id)
    batch = {k: v.to(test_device) for k, v in batch.items()}
    assert model(input_ids=batch["input_ids"]).logits.dtype == torch.bfloat16
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    loss = compute_loss(model, batch)
    assert torch.isfinite(loss)
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if "lora_B" in n)


def test_weak_concepts_end_to_end(tmp_path, bench_data):
    # A fake ConceptMath run: the two weakest leaf concepts are decided by the accuracies below.
    from longlore.bench.data import load_benchmark

    leaves = sorted({it.concept_path for it in load_benchmark("conceptmath", "element_en", bench_data)})
    rows = [{"concept": c, "n": 10, "acc": 0.9 - i / 100} for i, c in enumerate(leaves)]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(
        json.dumps({"concepts": {"conceptmath/element_en": {"L0/L1/L2": rows}}})
    )
    config = WeakConceptConfig(
        results=str(tmp_path / "run"),
        model="tiny-llama",
        out=str(tmp_path / "out"),
        k=2,
        generators="gsm_symbolic:30,gcd:10,products:10,simple_geometry:10",
        n_train=6,
        epochs=1,
        batch_size=3,
        data=str(bench_data),
    )
    summary = run_weak_concepts(config, embedder=KeywordEmbedder())
    assert summary["bottom_concepts"] == leaves[-2:][::-1]
    train = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert 0 < len(train) == summary["n_train"] <= 6
    assert {p["concept"] for p in train} <= set(summary["bottom_concepts"])
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()
    model, _ = load_causal_lm(str(tmp_path / "out" / "final"))
    assert not any("lora_" in k for k in model.state_dict())


def test_compute_loss_on_answer_positions_equals_the_full_logits_loss():
    model, tok = load_causal_lm("tiny-llama", seed=5)
    rows = [
        encode_example(tok, q, a, 64) for q, a in (("What is 2 + 2?", "4"), ("A much longer question, 7 * 6?", "42"))
    ]
    batch = collate(rows, tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        logp = torch.log_softmax(logits[:, :-1].double(), -1)
        labels = batch["labels"][:, 1:]
        mask = labels != -100
        expected = -logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0][mask].mean()
        assert mask.sum() < mask.numel() // 2  # the prompts are most positions: the slicing matters
        assert torch.allclose(compute_loss(model, batch).double(), expected, atol=1e-5)
