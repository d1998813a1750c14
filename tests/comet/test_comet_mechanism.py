"""CoMeT mechanism pinned against independent computations: the gated update (numpy), memory
replacing the placeholder states, the chunk planner (cases transcribed from the official code and
strategy frequencies), the weighted passkey loss and the evaluation split."""

import math
import random

import numpy as np
import pytest
import torch

from longlore.comet import CometConfig, CometModel
from longlore.comet.chunking import (
    MIX_LONG,
    MIX_MEDIUM,
    MIX_SHORT,
    fixed_sizes,
    plan_chunks,
    plan_with_strategy,
    random_sizes,
    right_aligned_sizes,
    semantic_sizes,
    uniform_sizes,
)
from longlore.comet.memory import GlobalMemoryNet
from longlore.comet.passkey import (
    PasskeyPieces,
    PasskeyTask,
    answer_weights,
    key_placement,
    passkey_prompt,
    plan_grid,
    summarize,
    wilson,
)
from longlore.core.models import load_causal_lm

SMALL = {"num_global": 4, "temp_stride": 4, "temp_budget": 6, "chunk_size": 16, "rank": 2}


def make(**overrides) -> CometModel:
    base, tokenizer = load_causal_lm("tiny-llama")
    return CometModel(base, tokenizer, CometConfig(**{**SMALL, **overrides}))


def _numpy_gate_step(x_raw, state, norm_w, w_gate, bias, down, up, eps):
    """The official MemoryRecurrentNet in numpy: x = RMSNorm(h); g = sigmoid(W_g [x; state] + b);
    state' = g * state + (1 - g) * x; memory = state' + Up(Down(state'))."""
    x = x_raw / np.sqrt((x_raw**2).mean(-1, keepdims=True) + eps) * norm_w
    logit = np.concatenate([x, state], -1) @ w_gate.T + bias  # (R, G, 1)
    g = 1 / (1 + np.exp(-logit))
    new = g * state + (1 - g) * x
    return new + (new @ down.T) @ up.T, new, g


@pytest.mark.parametrize("bias", [None, 1.5])
def test_gate_update_matches_numpy_with_nonzero_gate_and_up_projection(bias) -> None:
    torch.manual_seed(0)
    d = 4
    net = GlobalMemoryNet(d, 2, gate_bias=bias)
    with torch.no_grad():  # every weight non-trivial: W_g != 0 (g far from 1/2), Up != 0, norm weight != 1
        net.g_proj.weight.copy_(torch.tensor([[1.5, -1.0, 0.5, 2.0, -2.0, 0.25, -0.5, 1.0]]))
        net.o_proj.down_proj.weight.copy_(torch.randn(2, d))
        net.o_proj.up_proj.weight.copy_(torch.randn(d, 2))
        net.norm.weight.copy_(torch.tensor([0.5, 1.5, -1.0, 2.0]))
    x1, x2 = torch.randn(2, 3, d), torch.randn(2, 3, d)
    _, state1 = net(x1, None)
    mem2, state2 = net(x2, state1)
    params = {
        "norm_w": net.norm.weight.detach().numpy(),
        "w_gate": net.g_proj.weight.detach().numpy(),
        "bias": 0.0 if bias is None else bias,
        "down": net.o_proj.down_proj.weight.detach().numpy(),
        "up": net.o_proj.up_proj.weight.detach().numpy(),
        "eps": torch.finfo(torch.float32).eps,
    }
    x1n = x1.numpy() / np.sqrt((x1.numpy() ** 2).mean(-1, keepdims=True) + params["eps"]) * params["norm_w"]
    np.testing.assert_allclose(state1.detach().numpy(), x1n, atol=1e-5)  # first chunk: state = RMSNorm(h)
    expect_mem, expect_state, g = _numpy_gate_step(x2.numpy(), state1.detach().numpy(), **params)
    assert np.abs(g - 0.5).max() > 0.2  # the gate is far from 1/2, so a swapped gate would show
    np.testing.assert_allclose(state2.detach().numpy(), expect_state, atol=1e-5)
    np.testing.assert_allclose(mem2.detach().numpy(), expect_mem, atol=1e-5)
    # the mistakes this pins: [state; x] instead of [x; state], and g * x + (1 - g) * state
    swapped = dict(params, w_gate=np.concatenate([params["w_gate"][:, d:], params["w_gate"][:, :d]], -1))
    assert not np.allclose(_numpy_gate_step(x2.numpy(), state1.detach().numpy(), **swapped)[1], expect_state, atol=1e-3)
    x2n = x2.numpy() / np.sqrt((x2.numpy() ** 2).mean(-1, keepdims=True) + params["eps"]) * params["norm_w"]
    assert not np.allclose(g * x2n + (1 - g) * state1.detach().numpy(), state2.detach().numpy(), atol=1e-3)


def test_memory_is_written_from_layer_outputs_at_the_beacons() -> None:
    """After a first chunk, every layer's global state is RMSNorm(layer output at the G trailing
    global beacons), its memory that + Up(Down(.)), and its FIFO RMSNorm(eps 1e-12) + bottleneck of
    the layer output at each <beacon>: positions found from the token ids, values in numpy."""
    model = make().eval()
    torch.manual_seed(1)
    with torch.no_grad():  # non-trivial norms and bottlenecks, so a dropped norm or term shows
        for nets in model.memory:
            for bottleneck in (nets.global_net.o_proj, nets.temp_net[1]):
                bottleneck.up_proj.weight.normal_()
                bottleneck.down_proj.weight.normal_()
            nets.global_net.norm.weight.uniform_(0.5, 2.0)
            nets.temp_net[0].weight.uniform_(0.5, 2.0)
    outputs, chunks = {}, []
    context = model.chunk_context
    model.chunk_context = lambda chunk: (chunks.append(chunk), context(chunk))[1]
    hooks = [
        layer.register_forward_hook(
            lambda mod, args, out, i=i: outputs.__setitem__(i, (out[0] if isinstance(out, tuple) else out).detach())
        )
        for i, layer in enumerate(model.layers)
    ]
    state = model.new_state(1)
    try:
        model.stream_chunk([random.Random(1).choices(range(3, 1000), k=16)], state)
    finally:
        for hook in hooks:
            hook.remove()
        del model.chunk_context
    ids = chunks[0].input_ids[0].tolist()
    at_global = [p for p, t in enumerate(ids) if t in model.special.global_beacons]
    at_beacon = [p for p, t in enumerate(ids) if t == model.special.temp_beacon]
    assert len(at_global) == 4 and at_global[-1] == len(ids) - 1 and len(at_beacon) == 16 // 4

    def rms(x, w, eps):
        return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * w.detach().numpy()

    def plus_bottleneck(x, net):
        return x + x @ net.down_proj.weight.detach().numpy().T @ net.up_proj.weight.detach().numpy().T

    for i, nets in enumerate(model.memory):
        out, mem = outputs[i][0].numpy(), {k: v.detach().numpy() for k, v in state.tensors(i, 0).items()}
        global_state = rms(out[at_global], nets.global_net.norm.weight, np.finfo(np.float32).eps)
        np.testing.assert_allclose(mem["global_state"], global_state, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            mem["global_mem"], plus_bottleneck(global_state, nets.global_net.o_proj), rtol=1e-4, atol=1e-3
        )
        temp = plus_bottleneck(rms(out[at_beacon], nets.temp_net[0].weight, 1e-12), nets.temp_net[1])
        np.testing.assert_allclose(mem["temp"], temp, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def comet() -> CometModel:
    return make().eval()


def test_gate_bias_starts_at_hold_and_is_absent_by_default(comet) -> None:
    assert comet.memory[0].global_net.g_proj.bias is None  # the official gate has no bias
    held = make(gate_bias=6.0).memory[0].global_net
    assert torch.all(held.g_proj.bias == 6.0)
    x1, x2 = torch.randn(1, 4, 64), torch.randn(1, 4, 64)
    _, s1 = held(x1, None)
    _, s2 = held(x2, s1)
    assert (s2 - s1).abs().max() < 0.02 * s1.abs().max()  # g ~ 0.9975: the slot holds chunk 1


def test_memory_replaces_placeholder_states_at_every_layer() -> None:
    model = make().eval()
    with torch.no_grad():  # a placeholder embedding far from any memory value: "added" would show
        model.token_embed.weight[0].fill_(50.0)
    ids = random.Random(0).choices(range(3, 1000), k=32)
    state = model.new_state(1)
    model.stream_chunk([ids[:16]], state)
    before = [{k: v.clone() for k, v in state.tensors(i, 0).items()} for i in range(len(model.layers))]
    seen = {}
    hooks = [
        layer.register_forward_pre_hook(
            lambda mod, args, kwargs, i=i: seen.__setitem__(i, args[0].clone()), with_kwargs=True
        )
        for i, layer in enumerate(model.layers)
    ]
    try:
        model.stream_chunk([ids[16:]], state)
    finally:
        for hook in hooks:
            hook.remove()
    g, t = model.config.num_global, before[0]["temp"].shape[0]
    for i, h in seen.items():
        assert torch.equal(h[0, :g], before[i]["global_mem"])  # the G placeholders hold the memory itself
        assert torch.equal(h[0, g : g + t], before[i]["temp"])  # then the FIFO entries, oldest first
        assert h[0, g + t :].abs().max() < 50 or i > 0  # text positions are untouched at layer 0


@pytest.mark.parametrize(
    ("n", "k", "lo", "hi", "seed", "expected"),
    [  # random.seed(seed); DynamicNumRandomSizeStrategy.build(n, k, lo, hi) in the official code
        (100, 4, 4, 32, 0, [26, 23, 28, 23]),
        (300, 16, 4, 32, 1, [30, 32, 27, 23, 27, 22, 25, 31, 30, 21, 32]),
        (57, 8, 4, 16, 2, [11, 16, 14, 16]),
        (20, 3, 4, 8, 3, [6, 6, 8]),
    ],
)
def test_random_sizes_transcribed_from_official(n, k, lo, hi, seed, expected) -> None:
    assert random_sizes(n, k, random.Random(seed), lo, hi) == expected


def test_strategies_transcribed_from_official() -> None:
    assert fixed_sizes(13, 5) == [5, 5, 3] and right_aligned_sizes(13, 5) == [3, 5, 5]
    assert uniform_sizes(13, 3) == [5, 4, 4]
    one = [1] * 10 + [5] + [1] * 30  # a boundary token (5) at index 10
    every7 = ([1] * 6 + [5]) * 9 + [1, 1]
    # SemanticBoundaryStrategy.build(ids, max, min=4, max_chunks, {5}) in the official code
    assert semantic_sizes(one, 16, {5}, 8) == [11, 16, 14]
    assert semantic_sizes(every7, 16, {5}, 8) == [14, 14, 14, 14, 9]
    assert semantic_sizes([1] * 50, 16, {5}, 8) == [16, 16, 14, 4]
    assert semantic_sizes([1] * 14 + [5] + [1] * 2, 16, {5}, 4) == [13, 4]
    assert semantic_sizes(every7, 10, {5}, 8) == [7, 7, 7, 7, 7, 10, 10, 10]
    # where the official repair drops tokens (65 tokens in 3 x 16) we return None, the planner cuts fixed
    assert semantic_sizes(every7, 16, {5}, 3) is None
    assert random_sizes(3, 4, random.Random(0)) is None  # no chunk of >= 4 tokens fits


def test_planner_transcribed_from_official() -> None:
    """random.seed(seed); DefaultChunkPlanner([5]).plan(ids[:n], max_len=128, chunk=32)."""
    ids = ([1] * 6 + [5]) * 30
    cases = {
        (0, 40): [15, 12, 13],
        (0, 100): [25, 25, 25, 25],
        (0, 70): [16, 15, 21, 18],
        (1, 40): [32, 8],
        (1, 100): [32, 32, 32, 4],
        (2, 40): [28, 7, 5],
        (2, 100): [25, 19, 30, 26],
        (2, 70): [28, 28, 14],
        (5, 40): [8, 32],
        (5, 100): [4, 32, 32, 32],
        (6, 40): [22, 18],
        (6, 70): [20, 22, 28],
        (0, 20): [20],
    }
    for (seed, n), expected in cases.items():
        assert plan_chunks(ids[:n], 32, random.Random(seed), {5}, max_len=128) == expected, (seed, n)


@pytest.mark.parametrize(("n", "mix"), [(20, MIX_SHORT), (70, MIX_MEDIUM), (100, MIX_LONG)])
def test_augmentation_strategy_frequencies(n, mix) -> None:
    """Over many draws each strategy is drawn with the official probability (5 sigma), and each
    plan is the shape its strategy promises."""
    draws = 20000
    rng = random.Random(1)
    ids = ([1] * 6 + [5]) * 20
    counts = {name: 0 for name, _ in mix}
    for _ in range(draws):
        name, sizes = plan_with_strategy(ids[:n], 32, rng, max_len=128, boundary_ids={5})
        counts[name] += 1
        assert sum(sizes) == n and all(1 <= s <= 32 for s in sizes) and len(sizes) <= 4
        if name == "fixed":
            assert sizes == fixed_sizes(n, 32)
        elif name == "right_aligned":
            assert sizes == right_aligned_sizes(n, 32)
        elif name == "uniform":
            assert len(sizes) == 4 and max(sizes) - min(sizes) <= 1
        elif name == "random":
            assert math.ceil(n / 32) <= len(sizes) <= min(4, n // 4) and min(sizes) >= 4
    previous = 0.0
    for name, upto in mix:
        p = upto - previous
        previous = upto
        assert abs(counts[name] / draws - p) < 5 * math.sqrt(p * (1 - p) / draws), (name, counts)


def test_weighted_loss_is_lm_plus_k_times_answer() -> None:
    """The per-token weights of PasskeyTask(answer_weight=k) give exactly mean CE over all text +
    k x mean CE over the answer, each computed here by a separate unweighted call."""
    model = make(augment_chunks=False).eval()
    rng = random.Random(0)
    ids = [rng.choices(range(3, 1000), k=n) for n in (40, 25)]
    is_answer = [[False] * 35 + [True] * 5, [False] * 22 + [True] * 3]
    answer_only = [[t if a else -100 for t, a in zip(x, m)] for x, m in zip(ids, is_answer)]
    with torch.no_grad():
        weighted = model.loss(ids, [list(x) for x in ids], weights=answer_weights(is_answer, 4.0))
        lm = model.loss(ids, [list(x) for x in ids])
        answer = model.loss(ids, answer_only)
    assert abs(float(weighted) - float(lm + 4.0 * answer)) < 1e-4


def test_passkey_keys_one_token_per_digit_and_fresh(comet) -> None:
    model = comet
    pieces = PasskeyPieces.build(model, split_digits=True)
    task = PasskeyTask(key_digits=5)
    for key in (10000, 40321, 99999, 12500):
        ids = pieces.key_ids(key)
        assert len(ids) == 5 and model.tokenizer.decode(ids).strip() == str(key)
        assert model.tokenizer.decode(pieces.key_line(key)).count(str(key)) == 2
    plan = plan_grid([100, 200], [0.0, 0.5, 1.0], {100: 30, 200: 5}, task, seed=0)
    keys = [k for *_, k in plan]
    assert len(plan) == 105 and len(set(keys)) == len(keys) and all(10000 <= k <= 99999 for k in keys)


def test_key_placement_and_summary_split_memory_from_local(comet) -> None:
    model = comet  # chunks of 16, FIFO of 6 beacons x stride 4 = 24 tokens
    pieces = PasskeyPieces.build(model, split_digits=True)
    prompt, offset = passkey_prompt(model, pieces, 300, 0.0, 12345, with_offset=True)
    place = key_placement(model, len(prompt), offset, len(pieces.key_line(12345)))
    assert place["memory"] and not place["in_fifo"] and place["key_chunk"] == offset // 16
    last_start = (len(prompt) - 1) // 16 * 16
    assert not key_placement(model, len(prompt), last_start - 3, 10)["memory"]  # straddles into the last chunk
    assert key_placement(model, len(prompt), last_start - 12, 10)["in_fifo"]
    records = [
        {"length": 50, "depth": 0.0, "key": 1, "answer": "1", "correct": True, "memory": True},
        {"length": 50, "depth": 0.0, "key": 2, "answer": "3", "correct": False, "memory": True},
        {"length": 50, "depth": 1.0, "key": 4, "answer": "4", "correct": True, "memory": False},
    ]
    out = summarize(records)
    assert out["memory_exact"] == {"50": 0.5} and out["local_exact"] == {"50": 1.0}
    assert out["memory_n"] == {"50": 2} and out["local_n"] == {"50": 1}


def test_wilson_interval_known_values() -> None:
    # published 95% Wilson intervals: 0/10 -> [0, 0.2775], 10/10 -> [0.7225, 1], 8/10 -> [0.4902, 0.9433]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_bf16_forward_training_step_and_generation(test_device) -> None:
    """Every CoMeT module follows the backbone's device and dtype; a bf16 forward, one training
    step and a streamed generation run (and every tensor they make is on the input's device)."""
    base, tokenizer = load_causal_lm("tiny-llama", dtype="bfloat16", device=test_device)
    model = CometModel(base, tokenizer, CometConfig(**SMALL, gate_bias=6.0, lr=1e-2))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {torch.device(test_device).type}
    ids = [random.Random(5).choices(range(3, 1000), k=40), random.Random(6).choices(range(3, 1000), k=23)]
    model.train()
    out = model.forward(model.prepare(ids), return_logits=True)
    assert out.logits[-1].dtype == torch.bfloat16 and torch.isfinite(out.loss)
    assert out.state.tensors(0, 0)["global_state"].dtype == torch.bfloat16
    before = model.memory[0].global_net.g_proj.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out.loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.memory[0].global_net.g_proj.weight.detach())
    model.eval()
    answers = model.generate_ids([ids[0], ids[1][:10]], max_new_tokens=3)
    assert [len(a) for a in answers] == [3, 3]


def test_shared_prefix_generation_equals_separate_streams(comet) -> None:
    rng = random.Random(7)
    prefix = rng.choices(range(3, 1000), k=50)  # 3 whole chunks of 16 shared, then different tails
    prompts = [prefix + rng.choices(range(3, 1000), k=n) for n in (30, 9, 41)]
    alone = [comet.generate_ids([p], max_new_tokens=4)[0] for p in prompts]
    state = comet.new_state(1)
    for c in range(3):
        comet.stream_chunk([prefix[16 * c : 16 * (c + 1)]], state)
    copied = state.repeat(3)
    assert (
        copied.chunks_seen == [3, 3, 3] and copied.tensors(1, 2)["global_state"] is state.tensors(1, 0)["global_state"]
    )
    assert comet.generate_ids(prompts, max_new_tokens=4, share_prefix=True) == alone
