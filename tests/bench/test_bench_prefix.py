"""Shared-prefix reuse gives the wrapped model's outputs (greedy, sampled sets, log-likelihoods)."""

from __future__ import annotations

import pytest
import torch

from longlore.bench.prefix import SharedPrefixModel, prefix_clusters
from longlore.core.backends import GenerationRequest, HFTextModel, LoglikelihoodRequest

HEAD = "the quick brown fox jumps over the lazy dog and then " * 4


@pytest.fixture(scope="module")
def wild(tiny: HFTextModel) -> HFTextModel:
    """A tiny Llama with large random weights: its greedy text varies with the prompt (the stock
    tiny model repeats one token), so equal outputs mean something."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.3,
        max_position_embeddings=512,
    )
    return HFTextModel(LlamaForCausalLM(config).eval(), tiny.tokenizer, batch_size=3, model_id="wild")


def test_prefix_clusters() -> None:
    clusters = prefix_clusters([[1, 2, 3, 4], [1, 2, 3, 5], [9], [1, 2, 3, 4, 6], [1, 7]], min_shared=2)
    # [1,2,3,4] is its own member's full length: the shared part leaves it one token (3 of 4).
    assert sorted(clusters) == [([0, 3, 1], 3), ([2], 0), ([4], 0)]


@pytest.mark.parametrize("chat", [True, False])
def test_greedy_outputs_equal_the_wrapped_model(wild: HFTextModel, chat: bool) -> None:
    wrapped = SharedPrefixModel(wild, min_shared=8)
    questions = ["alpha", "beta gamma delta epsilon", "delta", "x y z w", "q"]
    requests = [
        GenerationRequest(HEAD + q, chat=chat, system="sys" if chat else None, max_new_tokens=8, repetition_penalty=1.1)
        for q in questions
    ] + [GenerationRequest("unrelated prompt", chat=chat, max_new_tokens=8)]
    wild.batch_size = 1
    expected = wild.generate(requests)
    wild.batch_size = 3  # the shared-prefix path batches 3 suffixes (padded after the prefix)
    assert wrapped.generate(requests) == expected
    assert len({e[0] for e in expected}) > 3  # the outputs differ from prompt to prompt
    assert wrapped.prefix_tokens_saved > 5 * 30
    # A memory budget below one repeated prefix per row: one suffix at a time, same outputs.
    frugal = SharedPrefixModel(wild, min_shared=8, max_cache_mb=1e-6)
    assert frugal._rows_per_batch(frugal._prefix_cache(list(range(5, 60)))) == 1
    assert frugal.generate(requests) == expected


def test_sampled_sets_and_loglikelihoods_equal_the_wrapped_model(wild: HFTextModel) -> None:
    wrapped = SharedPrefixModel(wild, min_shared=8)
    sampled = [
        GenerationRequest(HEAD + q, chat=False, max_new_tokens=6, temperature=0.7, n=5, seed=s)
        for s, q in enumerate(["a", "b c"])
    ]
    assert wrapped.generate(sampled) == wild.generate(sampled)
    scored = [LoglikelihoodRequest(HEAD, option) for option in ("cat", "dog", "a b c")]
    scored.append(LoglikelihoodRequest("other context", " x"))
    for (got, got_greedy), (want, want_greedy) in zip(wrapped.loglikelihood(scored), wild.loglikelihood(scored)):
        assert got == pytest.approx(want, abs=1e-4) and got_greedy == want_greedy


def test_bench_bf16_evaluation_on_the_test_device(test_device: str) -> None:
    """A bf16 model evaluates every request type (greedy, sampled sets, log-likelihood), with and
    without shared-prefix reuse, on the test device (CUDA under scripts/gpu-check.sh)."""
    from longlore.bench.config import BenchConfig
    from longlore.bench.runner import evaluate

    model = HFTextModel.from_spec("tiny-llama", batch_size=4, device=test_device, dtype="bfloat16")
    assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
    assert model.model.device.type == torch.device(test_device).type
    config = BenchConfig(tasks=["eckgbench/main", "eckgbench/main_mc", "eckgbench/main_boundary"], limit=3)
    plain, plain_samples = evaluate(config, model=model)
    shared, shared_samples = evaluate(config, model=SharedPrefixModel(model, min_shared=16))
    for task in config.tasks:
        assert len(shared_samples[task]) == 3
    lps = [lp for s in shared_samples["eckgbench/main_mc"] for lp in s["logprobs"]]
    assert all(lp < 0 and lp == lp for lp in lps)  # finite log-probabilities
    assert lps == pytest.approx([lp for s in plain_samples["eckgbench/main_mc"] for lp in s["logprobs"]], rel=0.05)
    assert plain["n-samples"] == shared["n-samples"]


def test_schema_constrained_rows_keep_their_own_constraint_beside_plain_rows(wild: HFTextModel) -> None:
    """Rows under a JSON schema decode through the wrapped model's per-row filter, plain rows that
    share their prefix stay free: the same outputs as the wrapped model, and only the schema rows
    are held to the schema."""
    import json

    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 6}}, "required": ["a"]}
    questions = ["alpha", "beta gamma", "delta"]
    constrained = [GenerationRequest(HEAD + q, chat=False, max_new_tokens=24, json_schema=schema) for q in questions]
    plain = [GenerationRequest(HEAD + q + " more", chat=False, max_new_tokens=24) for q in questions]
    requests = [r for pair in zip(constrained, plain) for r in pair]  # one parameter group, mixed rows
    expected = wild.generate(requests)
    got = SharedPrefixModel(wild, min_shared=8).generate(requests)
    assert got == expected
    for i, [reply] in enumerate(got):
        if i % 2 == 0:
            assert set(json.loads(reply)) == {"a"}, reply
        else:
            with pytest.raises(ValueError):  # a random model left free writes no JSON document
                json.loads(reply)
