"""RAM training loop, the caller's decoder left alone, bf16, LoRA, decoding and the QA generator."""

import random

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm
from longlore.ram.config import RAMConfig
from longlore.ram.data import make_dataset
from longlore.ram.generation import greedy_decode
from longlore.ram.model import RAMModel, keep_count
from longlore.ram.trainer import TrainArgs, load_training_checkpoint, train

TEXT = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
    "darkness was upon the face of the deep. The registration code of Lumora is 4821. And the Spirit of God "
    "moved upon the face of the waters. "
) * 3


def tiny_data(tokenizer, n=6, seed=3):
    rows = make_dataset(tokenizer, n, 120, 180, seed=seed, two_fact_share=0.3)
    return [dict(d, answer=d["answers"][0]) for d in rows]


def fresh(config: RAMConfig) -> RAMModel:
    decoder, tokenizer = load_causal_lm("tiny-llama:seed=1")
    torch.manual_seed(0)
    return RAMModel(decoder, tokenizer, config)


def test_trainer_uses_the_sampled_keep_ratio(tmp_path, monkeypatch) -> None:
    """Catches a trainer that ignores the sampled keep ratio (or a forward that ignores it)."""
    config = RAMConfig(encoder_layers=1, segment_tokens=16, sample_keep_ratio=True, keep_ratio_range=(0.1, 0.9))
    model = fresh(config)
    data = tiny_data(model.tokenizer)
    calls = []
    original = RAMModel.compress

    def spy(self, context, question, keep_ratio=None, **kwargs):
        result = original(self, context, question, keep_ratio=keep_ratio, **kwargs)
        calls.append((keep_ratio, len(result.kept), len(result.segment_texts)))
        return result

    monkeypatch.setattr(RAMModel, "compress", spy)
    summary = train(model, data, tmp_path, TrainArgs(steps=6, seed=4))
    assert len(calls) == 6
    for step, (ratio, kept, n) in enumerate(calls):
        expected = 0.9 - 0.8 * random.Random(f"4:{step}:0").random()  # the loop's per-step ctx.rng
        assert ratio == pytest.approx(expected) and kept == keep_count(n, ratio)
    assert len({round(r, 6) for r, _, _ in calls}) == 6  # drawn anew each step
    history = summary["joint"]["history"]
    assert [h["requested_keep_ratio"] for h in history] == [round(r, 6) for r, _, _ in calls]
    assert [h["keep_ratio"] for h in history] == [round(k / n, 6) for _, k, n in calls]


@pytest.mark.parametrize("lora", [False, True])
def test_resume_equals_unbroken_run(tmp_path, lora) -> None:
    """Both stages; stopped mid-way (a crash), resumed in a new process-like model: same weights, same data."""
    config = RAMConfig(
        encoder_layers=1,
        segment_tokens=16,
        sample_keep_ratio=True,
        keep_ratio_range=(0.1, 0.6),
        lr=3e-3,
        encoder_lora_r=4 if lora else 0,
        decoder_lora_r=4 if lora else 0,
    )
    args = dict(steps=4, selector_steps=3, selector_lr=3e-3, checkpoint_every=2, seed=1)
    unbroken = fresh(config)
    data = tiny_data(unbroken.tokenizer)
    full = train(unbroken, data, tmp_path / "a", TrainArgs(**args))
    first = fresh(config)
    part = train(first, data, tmp_path / "b", TrainArgs(**args, stop_after=5))  # 3 selector + 2 joint steps
    assert part["joint"]["done"] is False
    resumed = fresh(config)
    rest = train(resumed, data, tmp_path / "b", TrainArgs(**args))
    a, b = unbroken.trainable_state(), resumed.trainable_state()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in rest["joint"]["history"]] == [h["loss"] for h in full["joint"]["history"]]


def test_training_checkpoints_load_for_evaluation(tmp_path) -> None:
    """A selector-stage checkpoint (encoder tensors only) and a whole-state stage file both load."""
    config = RAMConfig(encoder_layers=1, segment_tokens=16, encoder_lora_r=4, decoder_lora_r=4)
    trained = fresh(config)
    train(trained, tiny_data(trained.tokenizer), tmp_path, TrainArgs(steps=0, selector_steps=2, selector_lr=1e-2))
    path = tmp_path / "checkpoint" / "selector" / "checkpoint.pt"
    info = load_training_checkpoint(loaded := fresh(config), path)
    recorded = torch.load(path, weights_only=False)["cost"]["cpu_seconds"]
    assert info == {"stage": "selector", "step": 2, "cpu_s": round(recorded, 1)}
    enc = [k for k in trained.trainable_state() if k.startswith("encoder.")]
    assert enc and all(torch.equal(trained.trainable_state()[k], loaded.trainable_state()[k]) for k in enc)
    assert not torch.equal(loaded.trainable_state()[enc[-1]], fresh(config).trainable_state()[enc[-1]])
    legacy = tmp_path / "checkpoint" / "joint_state.pt"  # the older trainer's stage file: all of RAM's tensors
    torch.save({"model": trained.pretrained_state(), "step": 2, "cost": {"cpu_s": 1.5}}, legacy)
    info = load_training_checkpoint(loaded := fresh(config), legacy)
    assert info == {"stage": "joint", "step": 2, "cpu_s": 1.5}
    for key, value in trained.trainable_state().items():
        assert torch.equal(value, loaded.trainable_state()[key]), key
    with pytest.raises(LongloreError, match="do not match"):
        load_training_checkpoint(
            fresh(RAMConfig(encoder_layers=1, segment_tokens=16, encoder_lora_r=4, encoder_lora_targets=("q_proj",))),
            tmp_path / "checkpoint" / "selector" / "checkpoint.pt",
        )


def test_wrapping_training_and_loading_leave_the_callers_decoder_alone(tmp_path) -> None:
    decoder, tokenizer = load_causal_lm("tiny-llama:seed=2")
    snapshot = {k: v.clone() for k, v in decoder.state_dict().items()}
    flags = {k: p.requires_grad for k, p in decoder.named_parameters()}
    ram = RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=1, segment_tokens=16, lr=1e-2))
    train(ram, tiny_data(tokenizer, 3), tmp_path / "run", TrainArgs(steps=2))
    ram.save_pretrained(tmp_path / "saved")
    RAMModel.from_pretrained(decoder, tokenizer, tmp_path / "saved")
    for key, value in decoder.state_dict().items():
        assert torch.equal(value, snapshot[key]), key
    assert {k: p.requires_grad for k, p in decoder.named_parameters()} == flags
    assert all(p.grad is None for p in decoder.parameters())
    # RAM's view did change: the trained q/k/v are RAM's own
    assert not torch.equal(
        ram.decoder.model.layers[0].self_attn.q_proj.weight, decoder.model.layers[0].self_attn.q_proj.weight
    )


@pytest.mark.parametrize("lora", [0, 4])
def test_bf16_forward_and_training_step(test_device, lora, tmp_path) -> None:
    """A bf16 decoder: every RAM module follows it (no "mat1 and mat2 must have same dtype")."""
    decoder, tokenizer = load_causal_lm("tiny-llama:seed=3", dtype="bfloat16", device=test_device)
    config = RAMConfig(encoder_layers=1, segment_tokens=16, encoder_lora_r=lora, decoder_lora_r=lora, lr=1e-2)
    ram = RAMModel(decoder, tokenizer, config)
    if not lora:
        assert {p.dtype for p in ram.parameters()} == {torch.bfloat16}
    assert ram.projector.weight.dtype == torch.bfloat16 and ram.projector.weight.device.type == test_device
    question = "What is the code of Lumora?"
    compressed = ram.compress(TEXT, question, keep_ratio=0.25)
    assert compressed.embeddings.dtype == torch.bfloat16 and compressed.scores.dtype == torch.float32
    before = {k: v.detach().clone() for k, v in ram.trainable_state().items()}
    summary = train(ram, [{"context": TEXT, "question": question, "answer": "4821"}], tmp_path, TrainArgs(steps=1))
    assert all(np.isfinite(h["loss"]) for h in summary["joint"]["history"])
    moved = [k for k, v in ram.trainable_state().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("projector.") for k in moved) and any(k.startswith("decoder.") for k in moved)
    assert isinstance(ram.answer(TEXT, question, max_new_tokens=3), str)


def test_lora_form_trains_only_adapters_and_starts_as_the_identity(tmp_path) -> None:
    full = fresh(RAMConfig(encoder_layers=1, segment_tokens=16))
    lora = fresh(RAMConfig(encoder_layers=1, segment_tokens=16, encoder_lora_r=4, decoder_lora_r=4))
    question = "What is the code of Lumora?"
    with torch.no_grad():  # LoRA's B starts at zero: the same hybrid and logits as the plain form
        assert torch.allclose(full.compress(TEXT, question).embeddings, lora.compress(TEXT, question).embeddings)
    names = set(lora.trainable_state())
    assert all("lora_" in n or n.startswith("projector.") for n in names)
    assert any(n.startswith("encoder.") for n in names) and any("q_proj.lora_A" in n for n in names)
    assert not any("o_proj" in n for n in names if n.startswith("decoder."))
    out = lora([{"context": TEXT, "question": question, "answer": "4821"}], keep_ratio=0.25)
    out["loss"].backward()
    for name, param in lora.named_parameters():
        assert (param.grad is not None) == (name in names), name
    with torch.no_grad():
        for param in lora.trainable_state().values():
            param.add_(0.01 * torch.randn_like(param))
    lora.save_pretrained(tmp_path)
    decoder, tokenizer = load_causal_lm("tiny-llama:seed=1")
    loaded = RAMModel.from_pretrained(decoder, tokenizer, tmp_path)
    with torch.no_grad():
        assert torch.allclose(lora.compress(TEXT, question).embeddings, loaded.compress(TEXT, question).embeddings)
    assert lora.answer(TEXT, question, max_new_tokens=4) == loaded.answer(TEXT, question, max_new_tokens=4)
    plain_size = sum(v.numel() for v in full.trainable_state().values())
    assert sum(v.numel() for v in loaded.trainable_state().values()) < plain_size / 4


class ScriptedDecoder(torch.nn.Module):
    """A decoder that emits a fixed token script whatever the input (to test the decoding rules)."""

    def __init__(self, script: list[int], vocab: int) -> None:
        super().__init__()
        self.script, self.vocab, self.calls = script, vocab, 0

    def forward(self, inputs_embeds=None, input_ids=None, cache=None, **kwargs):
        token = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        batch = (inputs_embeds if inputs_embeds is not None else input_ids).shape[0]
        logits = torch.zeros(batch, 1, self.vocab)
        logits[:, :, token] = 10.0
        logits[:, :, 0] = 9.0  # the runner-up when the scripted token is not allowed
        return CausalLMOutputWithPast(logits=logits, past_key_values=None)


def test_decoding_never_returns_an_empty_answer() -> None:
    """A chat-tuned decoder that opens with a newline or its end-of-turn token gave '' before."""
    _, tokenizer = load_causal_lm("tiny-llama")
    eos, newline = tokenizer.eos_token_id, tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    word = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    prompt = [torch.zeros(3, 8)]
    # EOS first: it is not allowed yet, the runner-up (token 0) comes instead
    decoder = ScriptedDecoder([eos] + word + [eos], len(tokenizer))
    assert greedy_decode(decoder, tokenizer, prompt, max_new_tokens=8) != ""
    # newline, newline, then the answer, then a newline ends it
    decoder = ScriptedDecoder([newline, newline, *word, newline, *word], len(tokenizer))
    assert greedy_decode(decoder, tokenizer, prompt, max_new_tokens=12) == ["Paris"]
    assert decoder.calls == 3 + len(word)  # stopped at the newline after the answer


def test_shared_prefix_answers_equal_separate_full_context_answers() -> None:
    ram = fresh(RAMConfig(encoder_layers=1, segment_tokens=16)).eval()
    questions = ["What is the code of Lumora?", "What moved?", "What was created?"]
    embed = ram.decoder.get_input_embeddings()
    prefix = embed(torch.tensor(ram.tokenizer(TEXT, add_special_tokens=False)["input_ids"]))
    with torch.no_grad():
        shared = ram.generate_shared_prefix(prefix, questions, max_new_tokens=6)
    assert shared == ram.generate_full_context([TEXT] * 3, questions, max_new_tokens=6)


def test_multi_question_documents_plant_every_evidence_without_contradictions() -> None:
    _, tokenizer = load_causal_lm("tiny-llama")
    rows = make_dataset(tokenizer, 10, 300, 400, seed=5, two_fact_share=0.4, questions_per_doc=5)
    assert len(rows) == 10 and len({r["doc"] for r in rows}) == 2
    for row in rows:
        assert all(span.rstrip(".") in row["context"] for span in row["positive_spans"])
        assert row["answers"][0] in " ".join(row["positive_spans"])
        # no other planted sentence states the same subject and relation with another value
        subject = row["positive_spans"][-1].rsplit(" is ", 1)[0].rsplit(" are in ", 1)[0]
        assert row["context"].count(subject + " ") == 1, subject
    same_doc = [r for r in rows if r["doc"] == rows[0]["doc"]]
    assert len({r["context"] for r in same_doc}) == 1 and len({r["question"] for r in same_doc}) == 5
    assert random.Random(0)  # (the generator is seeded: same call, same rows)
    assert rows == make_dataset(tokenizer, 10, 300, 400, seed=5, two_fact_share=0.4, questions_per_doc=5)
