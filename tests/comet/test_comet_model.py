"""CoMeT on tiny seeded backbones: layout, memory equations, streaming = single call, batching,
save/load, training modes and the curriculum loop."""

import random

import pytest
import torch

from longlore.comet import CometConfig, CometModel, MemoryState
from longlore.comet.chunking import plan_chunks, semantic_sizes
from longlore.comet.layout import IGNORE, build_layouts
from longlore.comet.memory import enqueue
from longlore.comet.passkey import parse_curriculum, stage_starts
from longlore.comet.trainer import (
    TrainArgs,
    lr_factor,
    param_groups,
    restarted_lr_factor,
    train,
)
from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm

SMALL = {"num_global": 4, "temp_stride": 4, "temp_budget": 6, "chunk_size": 16, "rank": 2}


def make(spec: str = "tiny-llama", **overrides) -> CometModel:
    base, tokenizer = load_causal_lm(spec)
    return CometModel(base, tokenizer, CometConfig(**{**SMALL, **overrides}))


def seq(n: int, seed: int) -> list[int]:
    return random.Random(seed).choices(range(3, 1000), k=n)


@pytest.fixture(scope="module")
def comet() -> CometModel:
    return make().eval()


def test_layout_positions_beacons_and_labels(comet) -> None:
    ids = seq(40, 0)
    layouts = build_layouts(ids, [16, 16, 8], comet.config, comet.special)
    chunks = comet.prepare([ids])
    assert [c.n_global_in for c in chunks] == [0, 4, 4]
    assert [c.temp_counts[0] for c in chunks] == [0, 4, 6]  # 4 beacons per full chunk; FIFO budget 6
    for c, lay in zip(chunks, layouts):
        # positions restart at 0 in every chunk and count every real token
        assert c.position_ids[0].tolist() == list(range(c.input_ids.shape[1]))
        body = lay.body_ids
        assert [body[o] for o in lay.temp_beacon_offsets] == [comet.special.temp_beacon] * len(lay.temp_beacon_offsets)
        assert all(o == 4 + i * 5 for i, o in enumerate(lay.temp_beacon_offsets))  # after every 4 text tokens
        assert c.input_ids[0, -4:].tolist() == list(comet.special.global_beacons)
    # labels: every text token predicts the next text token of the stream, across chunk boundaries
    flat = [t for c in chunks for t, lab in zip(c.input_ids[0].tolist(), c.labels[0].tolist()) if lab != IGNORE]
    targets = [lab for c in chunks for lab in c.labels[0].tolist() if lab != IGNORE]
    assert flat == ids[:-1] and targets == ids[1:]
    gen = build_layouts(ids, [16, 16, 8], comet.config, comet.special, generating=True)
    assert not gen[-1].global_out and len(gen[-1].temp_beacon_offsets) == 1  # no trailing beacon after the last group
    assert gen[0].global_out and len(gen[0].temp_beacon_offsets) == 4


def test_chunk_augmentation_partitions() -> None:
    rng = random.Random(0)
    ids = seq(300, 1)
    for _ in range(200):
        sizes = plan_chunks(ids, 32, rng, boundary_ids={5, 9})
        assert sum(sizes) == 300 and all(1 <= s <= 32 for s in sizes)
    for n in range(2, 40):  # small chunks and short inputs: every strategy still partitions exactly
        for chunk in (1, 2, 3, 5, 16):
            for _ in range(5):
                sizes = plan_chunks(ids[:n], chunk, rng, boundary_ids={5, 9})
                assert sum(sizes) == n and all(1 <= s <= chunk for s in sizes), (n, chunk, sizes)
    cut = semantic_sizes([1] * 10 + [5] + [1] * 30, 16, {5})
    assert cut[0] == 11  # cut right after the boundary token
    assert plan_chunks(ids, 32, None) == [32] * 9 + [12]


def test_fifo_known_answers() -> None:  # the gate: test_comet_mechanism.py
    old = torch.arange(2 * 3 * 1.0).view(2, 3, 1)
    new = 100 + torch.arange(2 * 2 * 1.0).view(2, 2, 1)
    queue, counts = enqueue(old, [3, 1], new, [2, 1], budget=4)
    assert counts == [4, 2]
    assert queue[0, :, 0].tolist() == [1, 2, 100, 101]  # oldest dropped, newest last
    assert queue[1, -2:, 0].tolist() == [5, 102]  # right-aligned, left padding


def _states_equal(a: MemoryState, b: MemoryState, layers: int, rows: int, atol: float = 1e-5) -> None:
    for layer in range(layers):
        for r in range(rows):
            ta, tb = a.tensors(layer, r), b.tensors(layer, r)
            for key in ta:
                assert (ta[key] is None) == (tb[key] is None), key
                if ta[key] is not None:
                    assert torch.allclose(ta[key], tb[key], atol=atol), (layer, r, key)


def test_streaming_equals_single_call_and_reset(comet) -> None:
    ids = seq(16 * 5, 2)  # N = 5 chunks, the FIFO overflows its budget on the way
    with torch.no_grad():
        single = comet.forward(comet.prepare([ids])).state
    streamed = comet.new_state(1)
    for c in range(5):
        comet.stream_chunk([ids[16 * c : 16 * (c + 1)]], streamed)
    _states_equal(single, streamed, len(comet.layers), 1)
    assert streamed.tensors(0, 0)["temp"].shape[0] == 6 and streamed.chunks_seen == [5]
    # reset() really resets: the state is empty, and reading again reproduces a fresh read exactly
    streamed.reset()
    assert all(v is None for v in streamed.tensors(1, 0).values()) and streamed.chunks_seen == [0]
    assert streamed.nbytes() == 0
    comet.read([ids[:48]], streamed)
    _states_equal(streamed, comet.read([ids[:48]]), len(comet.layers), 1)
    # and it differs from continuing without reset (memory really carries the earlier chunks)
    continued = comet.read([ids[48:]], comet.read([ids[:48]]))
    fresh = comet.read([ids[48:]])
    assert not torch.allclose(continued.tensors(0, 0)["global_state"], fresh.tensors(0, 0)["global_state"])


def test_memory_carries_information_and_gradients() -> None:
    model = make().train()
    a, b = seq(48, 3), seq(48, 3)
    b[:16] = seq(16, 4)  # same last chunks, different first chunk
    out_a = model.forward(model.prepare([a]), return_logits=True)
    out_b = model.forward(model.prepare([b]), return_logits=True)
    assert not torch.allclose(out_a.logits[-1], out_b.logits[-1], atol=1e-4)  # chunk 3 sees chunk 1 via memory
    # the loss of the last chunk alone reaches the memory nets of the first chunk's writes
    chunks = model.prepare([a])
    out = model.forward(chunks, return_logits=True)
    last_logits = out.logits[-1][0]
    mask = chunks[-1].labels[0] != IGNORE
    torch.nn.functional.cross_entropy(last_logits[mask], chunks[-1].labels[0][mask]).backward()
    for layer in model.memory:
        assert layer.global_net.g_proj.weight.grad.abs().sum() > 0
        assert layer.temp_net[1].down_proj.weight.grad.abs().sum() > 0
    assert model.token_embed.weight.grad[2:].abs().sum() > 0  # the global beacon embeddings learn


@pytest.mark.parametrize("spec", ["tiny-llama", "tiny-qwen", "tiny-qwen3"])
def test_batch_equals_per_example_ragged(spec) -> None:
    model = make(spec).eval()
    examples = [seq(50, 5), seq(21, 6), seq(36, 7)]  # 4, 2 and 3 chunks
    with torch.no_grad():
        batch = model.forward(model.prepare(examples), return_logits=True)
        for b, ex in enumerate(examples):
            alone = model.forward(model.prepare([ex]), return_logits=True)
            for c, (bc, logits) in enumerate(zip(model.prepare(examples), batch.logits)):
                if b not in bc.rows:
                    continue
                row = bc.rows.index(b)
                valid = bc.key_valid[row]
                assert torch.allclose(logits[row][valid], alone.logits[c][0], atol=1e-4), (spec, b, c)
            _states_equal_row(batch.state, alone.state, b, len(model.layers))
    assert batch.n_tokens == sum(len(e) - 1 for e in examples)


def _states_equal_row(batch: MemoryState, alone: MemoryState, row: int, layers: int) -> None:
    for layer in range(layers):
        for key, value in batch.tensors(layer, row).items():
            other = alone.tensors(layer, 0)[key]
            assert (value is None) == (other is None)
            if value is not None:
                assert torch.allclose(value, other, atol=1e-4), (layer, row, key)


def test_generate_batch_equals_single_and_constant_cache(comet) -> None:
    prompts = [seq(70, 8), seq(9, 9), seq(33, 10)]  # 1-chunk prompt beside 5- and 3-chunk prompts
    batch = comet.generate_ids(prompts, max_new_tokens=9)
    assert batch == [comet.generate_ids([p], max_new_tokens=9)[0] for p in prompts]
    assert all(len(o) == 9 for o in batch)
    # memory state after streaming is bounded: 8 chunks and 40 chunks hold the same bytes
    short, long_ = comet.read([seq(16 * 8, 11)]), comet.read([seq(16 * 40, 12)])
    assert short.nbytes() == long_.nbytes() > 0
    text = comet.generate("The sky is blue. " * 30, max_new_tokens=4)
    assert isinstance(text[0], str)


def test_save_load_identical_logits(tmp_path) -> None:
    model = make().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # move away from the init so loading must restore
    model.loss([seq(40, 13)]).backward()
    opt.step()
    model.eval()
    ids = [seq(40, 14)]
    with torch.no_grad():
        before = model.forward(model.prepare(ids), return_logits=True).logits
    model.save_pretrained(tmp_path / "with", include_backbone=True)
    model.save_pretrained(tmp_path / "without", include_backbone=False)
    loaded = CometModel.from_pretrained(None, None, tmp_path / "with")
    with torch.no_grad():
        after = loaded.forward(loaded.prepare(ids), return_logits=True).logits
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    # memory modules alone, onto the same (trained) backbone instance
    alone = CometModel.from_pretrained(model.base_model, model.tokenizer, tmp_path / "without")
    with torch.no_grad():
        again = alone.forward(alone.prepare(ids), return_logits=True).logits
    assert all(torch.equal(x, y) for x, y in zip(before, again))
    with pytest.raises(LongloreError, match="without its backbone"):
        CometModel.from_pretrained(tmp_path / "without")
    # a run folder finds its final/ (the PEFT-style convention of longlore.core.saving)
    (tmp_path / "run").mkdir()
    (tmp_path / "with").rename(tmp_path / "run" / "final")
    assert CometModel.from_pretrained(tmp_path / "run").config == model.config
    # the unversioned layout of longlore 0.1 (config under "comet") still loads
    import json

    meta = json.loads((tmp_path / "without" / "comet_config.json").read_text())
    legacy = {k: v for k, v in meta.items() if k not in ("kind", "format_version", "config", "class")}
    (tmp_path / "without" / "comet_config.json").write_text(json.dumps({**legacy, "comet": meta["config"]}))
    old = CometModel.from_pretrained(model.base_model, model.tokenizer, tmp_path / "without")
    with torch.no_grad():
        assert all(torch.equal(x, y) for x, y in zip(before, old.forward(old.prepare(ids), return_logits=True).logits))
    assert set(model.comet_state_dict()) == {k for k in model.state_dict() if k.startswith(("memory.", "token_embed."))}


def test_memory_only_mode_and_lr_multiplier() -> None:
    model = make(mode="memory-only").train()
    model.loss([seq(40, 15)]).backward()
    assert all(p.grad is None for p in model.base_model.parameters())
    assert all(p.grad is not None for p in model.memory.parameters())
    groups = {g["name"]: g["lr"] for g in param_groups(model)}
    assert groups["memory-decay"] == pytest.approx(5 * model.config.lr)
    assert groups["base-decay"] == pytest.approx(model.config.lr)  # the new-token embeddings
    full = {g["name"] for g in param_groups(make())}
    assert full == {"base-decay", "base-nodecay", "memory-decay", "memory-nodecay"}
    assert lr_factor(0, 10, 100) == pytest.approx(0.1) and lr_factor(100, 10, 100) == pytest.approx(0.0)


def test_restarted_schedule_restarts_warmup_and_cosine_at_each_stage() -> None:
    # stages [0, 40) and [40, 100): each has its own warm-up of 10 and cosine to 0 at its end
    for step in range(100):
        expected = lr_factor(step, 10, 40) if step < 40 else lr_factor(step - 40, 10, 60)
        assert restarted_lr_factor(step, 10, 100, [40]) == pytest.approx(expected)
    assert restarted_lr_factor(40, 10, 100, [40]) == pytest.approx(0.1)  # the new stage warms up again
    assert restarted_lr_factor(39, 10, 100, [40]) < 0.01  # the old one ended near zero
    assert [restarted_lr_factor(s, 10, 100, None) for s in range(100)] == [lr_factor(s, 10, 100) for s in range(100)]
    assert stage_starts(parse_curriculum("1:40,2:60")) == [40] and stage_starts([(1, 5), (2, 5), (4, 5)]) == [5, 10]


def test_gradient_checkpointing_same_loss_and_grads() -> None:
    ids = [seq(48, 16), seq(30, 17)]
    grads = []
    for ckpt in (False, True):
        model = make(gradient_checkpointing=ckpt).train()
        loss = model.loss(ids)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert torch.allclose(grads[0][0], grads[1][0])
    assert grads[0][1].keys() == grads[1][1].keys()
    assert all(torch.allclose(grads[0][1][k], grads[1][1][k], atol=1e-6) for k in grads[0][1])


def test_train_resume_equals_unbroken_and_learns(tmp_path) -> None:
    def batches(rng, step):
        return [seq(40, rng.randrange(3))], None  # three sequences: the loss must fall

    args = {"steps": 8, "checkpoint_every": 4, "log_every": 4, "seed": 1}
    unbroken = make(lr=3e-3, warmup_steps=1)
    summary = train(unbroken, batches, tmp_path / "a", TrainArgs(**args))
    history = summary["final_loss"]
    broken = make(lr=3e-3, warmup_steps=1)
    train(broken, batches, tmp_path / "b", TrainArgs(**args, stop_after=4))
    spent_first = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["cost"]
    resumed = make(lr=3e-3, warmup_steps=1)
    train(resumed, batches, tmp_path / "b", TrainArgs(**args))
    spent_both = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["cost"]
    # the cost totals add up over invocations; re-running a finished checkpoint keeps them
    again = train(make(), batches, tmp_path / "b", TrainArgs(**args))
    for key in ("wall_seconds", "cpu_seconds"):
        assert 0 < spent_first[key] < spent_both[key] <= again[f"{key}_total"], key
    for (n, p), (_, q) in zip(unbroken.named_parameters(), resumed.named_parameters()):
        assert torch.equal(p, q), n  # resumed on a freshly built model == unbroken, bit for bit
    init = make()
    assert all(
        not torch.equal(p, q)
        for (n, p), (_, q) in zip(unbroken.memory.named_parameters(), init.memory.named_parameters())
    )
    import json

    losses = json.loads((tmp_path / "a" / "train_history.json").read_text())["loss"]
    assert losses[-1] < losses[0] and history == losses[-1]


def test_config_errors() -> None:
    with pytest.raises(LongloreError, match="mode"):
        CometConfig(mode="lora")
    with pytest.raises(LongloreError, match="no memory"):
        CometConfig(num_global=0, temp_stride=-1)
    with pytest.raises(LongloreError, match="temp_stride"):
        CometConfig(temp_stride=0)
    with pytest.warns(UserWarning, match="unknown keys"):
        assert CometConfig.from_dict({"num_global": 3, "future_knob": 1}).num_global == 3


def test_cached_decoding_equals_teacher_forced_forward(comet) -> None:
    """Each greedy token from the KV-cached decoder (with its forced beacons) equals the argmax of a
    full forward over prompt + the tokens so far, whose layout puts a beacon after every 4 tokens."""
    for prompt in (seq(37, 18), seq(40, 19)):  # 40: the last chunk ends on a full group -> beacon first
        generated = comet.generate_ids([prompt], max_new_tokens=6)[0]
        for j in range(len(generated)):
            ids = prompt + generated[:j]
            assert len(ids) <= 48  # everything stays in the third chunk, as while generating
            with torch.no_grad():
                out = comet.forward(comet.prepare([ids]), return_logits=True)
            chunk = comet.prepare([ids])[-1]
            last_text = int((chunk.input_ids[0] < comet.first_new_id).nonzero().max())
            assert int(out.logits[-1][0, last_text].argmax()) == generated[j], (len(prompt), j)


def test_passkey_grid_batched_equals_one_by_one_and_resumes(comet, tmp_path) -> None:
    from longlore.comet.passkey import evaluate_grid

    args = dict(lengths=[50, 100], depths=[0.0, 1.0], keys_per_cell=2, seed=3, max_new_tokens=2)
    one = evaluate_grid(comet, out=tmp_path / "one.json", batch_size=1, **args)
    many = evaluate_grid(comet, out=tmp_path / "many.json", batch_size=3, **args)
    strip = lambda rs: sorted((r["length"], r["depth"], r["i"], r["key"], r["answer"]) for r in rs)
    assert len(one["records"]) == 8 and strip(one["records"]) == strip(many["records"])
    # a rerun over a finished grid generates nothing new and keeps the same table
    again = evaluate_grid(comet, out=tmp_path / "many.json", batch_size=3, **args)
    assert again["records"] == many["records"] and again["accuracy"] == many["accuracy"]


def test_digit_accuracy_and_tables_match_hand_counts() -> None:
    from longlore.comet.passkey import accuracy_table, digit_accuracy

    assert digit_accuracy(" 12345.", 12345) == 1.0
    assert digit_accuracy(" 12395...", 12345) == pytest.approx(0.8)
    assert digit_accuracy(" 2161 is", 21616) == pytest.approx(0.8)  # a missing digit counts as wrong
    assert digit_accuracy(" 216160", 21616) == pytest.approx(5 / 6)  # so does an extra one
    assert digit_accuracy(" no digits", 7) == 0.0
    records = [
        {"length": 10, "depth": 0.0, "key": 123, "answer": "123", "correct": True},
        {"length": 10, "depth": 0.0, "key": 456, "answer": "451", "correct": False},
        {"length": 10, "depth": 1.0, "key": 789, "answer": "x", "correct": False},
    ]
    assert accuracy_table(records) == {"10": {"0.00": 0.5, "1.00": 0.0, "all": pytest.approx(1 / 3)}}
    digits = accuracy_table(records, "digits")["10"]
    assert digits["0.00"] == pytest.approx((1 + 2 / 3) / 2) and digits["1.00"] == 0.0
    assert digits["all"] == pytest.approx((1 + 2 / 3) / 3)
