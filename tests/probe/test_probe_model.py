"""The autoencoder's mechanisms: pooling, memory length, what trains and what stays frozen, save/load."""

from __future__ import annotations

import json
import random

import pytest
import torch

from longlore.core.errors import LongloreError
from longlore.probe.config import ProbeConfig, TrainArgs
from longlore.probe.model import ProbeAutoencoder, group_merge_pool, memory_length
from longlore.probe.trainer import train_autoencoder


def _sampler(rng: random.Random, batch_size: int) -> list[list[int]]:
    # Variable lengths, so padding and partial last groups are exercised.
    return [[rng.randrange(10, 1000) for _ in range(rng.randint(5, 14))] for _ in range(batch_size)]


def test_group_merge_pool_equals_hand_computation():
    torch.manual_seed(0)
    hidden = torch.randn(2, 7, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    slots, slot_mask = group_merge_pool(hidden, mask, ratio=3)
    h = hidden.numpy()
    # row 0: groups {0,1,2}, {3,4,5}, {6}; row 1: {0,1,2}, {3}, nothing
    expected0 = [h[0, 0:3].mean(0), h[0, 3:6].mean(0), h[0, 6]]
    expected1 = [h[1, 0:3].mean(0), h[1, 3]]
    assert slots.shape == (2, 3, 3)
    for got, want in zip(slots[0], expected0):
        assert torch.allclose(got, torch.tensor(want), atol=1e-6)
    for got, want in zip(slots[1, :2], expected1):
        assert torch.allclose(got, torch.tensor(want), atol=1e-6)
    assert slot_mask.tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.parametrize(
    ("n", "ratio", "expected"), [(1, 4, 1), (4, 4, 1), (5, 4, 2), (128, 4, 32), (130, 16, 9), (7, 1, 7)]
)
def test_memory_length_is_ceil(n, ratio, expected):
    assert memory_length(n, ratio) == expected


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_encoder_memory_has_ceil_n_over_ratio_slots(tiny, ratio):
    decoder, tokenizer = tiny
    probe = ProbeAutoencoder(decoder, tokenizer, ProbeConfig(encoder_layers=1, ratio=ratio, lora_r=2, lora_alpha=4))
    ids, mask = probe._batch([list(range(20, 31)), list(range(40, 45))])  # 11 and 5 tokens
    memory, slot_mask = probe.encode(ids, mask)
    assert memory.shape == (2, memory_length(11, ratio), decoder.config.hidden_size)
    assert slot_mask.sum(1).tolist() == [memory_length(11, ratio), memory_length(5, ratio)]


def test_training_freezes_decoder_and_encoder_base_and_trains_lora_and_alignment(tiny, tiny_config, tmp_path):
    decoder, tokenizer = tiny
    decoder_before = {k: v.clone() for k, v in decoder.state_dict().items()}
    torch.manual_seed(0)
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    base_before = {n: p.clone() for n, p in probe.encoder.named_parameters() if "lora_" not in n}
    lora_before = {n: p.clone() for n, p in probe.encoder.named_parameters() if "lora_B" in n}
    align_before = {n: p.clone() for n, p in probe.align.named_parameters()}
    assert base_before and lora_before

    probe.train()
    out = probe(_sampler(random.Random(0), 3))
    out["loss"].backward()
    assert all(p.grad is None for p in decoder.parameters()), "the frozen decoder must get no gradient"
    assert all(p.grad is not None for n, p in probe.encoder.named_parameters() if "lora_" in n)
    probe.zero_grad()

    train_autoencoder(probe, _sampler, tmp_path / "run", TrainArgs(steps=3, batch_size=2, lr=1e-2, warmup_steps=1))
    for k, v in decoder.state_dict().items():
        assert torch.equal(v, decoder_before[k]), f"decoder tensor {k} changed"
    for n, p in probe.encoder.named_parameters():
        if n in base_before:
            assert torch.equal(p, base_before[n]), f"encoder base weight {n} changed"
    assert any(not torch.equal(p, lora_before[n]) for n, p in probe.encoder.named_parameters() if n in lora_before)
    assert all(not torch.equal(p, align_before[n]) for n, p in probe.align.named_parameters() if p.requires_grad)
    # The encoder base is a copy of the decoder's first layer: the decoder's own weights were not wrapped.
    assert not any("lora_" in n for n, _ in decoder.named_parameters())


def test_alignment_block_starts_as_the_chosen_decoder_layer(tiny, tiny_config):
    decoder, tokenizer = tiny
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    source = decoder.model.layers[tiny_config.align_init_layer].state_dict()
    for k, v in probe.align.block.layers[0].state_dict().items():
        assert torch.equal(v, source[k])
    scale = decoder.get_input_embeddings().weight.pow(2).mean().sqrt()
    assert torch.allclose(probe.align.block.norm.weight, scale.expand_as(probe.align.block.norm.weight))


def test_reconstruction_loss_counts_only_the_target(tiny, tiny_config):
    decoder, tokenizer = tiny
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config).eval()
    seq = [[30, 31, 32, 33, 34, 35]]
    ids, mask = probe._batch(seq)
    memory, slot_mask = probe.encode(ids, mask)
    inputs = probe._decoder_inputs(memory, slot_mask, seq, left_pad=False)
    labels = inputs["labels"][0].tolist()
    m, p = memory_length(6, 4), len(probe._prompt_ids)
    assert labels == [-100] * (m + p) + seq[0] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = decoder(inputs_embeds=inputs["inputs_embeds"]).logits[0]
        logp = torch.log_softmax(logits.float(), -1)
        targets = seq[0] + [tokenizer.eos_token_id]
        by_hand = -sum(logp[m + p - 1 + i, t] for i, t in enumerate(targets)) / len(targets)
        assert torch.allclose(probe(seq)["loss"], by_hand, atol=1e-5)


def test_per_sequence_nll_and_the_other_text_memory_control(tiny, tiny_config):
    decoder, tokenizer = tiny
    torch.manual_seed(4)
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config).eval()
    with torch.no_grad():
        for p in probe.trainable_state().values():
            p.add_(0.05 * torch.randn_like(p))
    a, b = [30, 31, 32, 33, 34, 35], [60, 61, 62, 63, 64, 65, 66, 67, 68]
    with torch.no_grad():
        out = probe([a, b])
        nll_a, nll_b = probe([a])["loss"], probe([b])["loss"]
        assert torch.allclose(out["nll_per_sequence"], torch.stack([nll_a, nll_b]), atol=1e-5)
        # the batch loss is the mean over all target tokens (text + eos): 7 of a, 10 of b
        assert torch.allclose(out["loss"], (7 * nll_a + 10 * nll_b) / 17, atol=1e-5)
        same = probe([a, b], memory_from=[a, b])["nll_per_sequence"]
        assert torch.allclose(same, out["nll_per_sequence"], atol=1e-6)
        swapped = probe([a], memory_from=[b])["loss"]
        memory, slot_mask = probe.encode(*probe._batch([b]))
        inputs = probe._decoder_inputs(memory, slot_mask, [a], left_pad=False)
        logits = decoder(inputs_embeds=inputs["inputs_embeds"]).logits[0, :-1].float()
        by_hand = torch.nn.functional.cross_entropy(logits, inputs["labels"][0, 1:], ignore_index=-100)
        assert torch.allclose(swapped, by_hand, atol=1e-5) and not torch.allclose(swapped, nll_a, atol=1e-4)
    with pytest.raises(LongloreError, match="memory_from"):
        probe([a, b], memory_from=[a])


def test_save_and_load_round_trip(tiny, tiny_config, tmp_path):
    decoder, tokenizer = tiny
    torch.manual_seed(3)
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    with torch.no_grad():
        for p in probe.trainable_state().values():  # non-zero LoRA B and a moved alignment block: both matter
            p.add_(0.05 * torch.randn_like(p))
    probe.eval()
    seqs = [[50, 51, 52, 53, 54, 55, 56, 57, 58], [60, 61, 62]]
    expected = probe.reconstruct(seqs, max_new_tokens=6)
    with torch.no_grad():
        expected_loss = probe(seqs)["loss"]
    probe.save_pretrained(tmp_path / "p")
    assert {p.name for p in (tmp_path / "p").iterdir()} == {
        "encoder_lora",
        "probe_model.safetensors",
        "probe_config.json",
    }
    assert json.loads((tmp_path / "p" / "probe_config.json").read_text())["format_version"] == 1
    loaded = ProbeAutoencoder.from_pretrained(decoder, tokenizer, tmp_path / "p")
    assert loaded.config == tiny_config
    assert loaded.reconstruct(seqs, max_new_tokens=6) == expected
    with torch.no_grad():
        assert torch.allclose(loaded(seqs)["loss"], expected_loss, atol=1e-6)
    probe.save_pretrained(tmp_path / "run" / "final")  # a run folder resolves to its final/
    assert ProbeAutoencoder.from_pretrained(decoder, tokenizer, tmp_path / "run").reconstruct(seqs, 6) == expected
    # The first layout (before the shared convention): align.safetensors without the "align." prefix.
    from safetensors.torch import load_file, save_file

    legacy = tmp_path / "legacy"
    probe.save_pretrained(legacy)
    tensors = load_file(str(legacy / "probe_model.safetensors"))
    save_file({k.removeprefix("align."): v for k, v in tensors.items()}, str(legacy / "align.safetensors"))
    (legacy / "probe_model.safetensors").unlink()
    (legacy / "probe_config.json").write_text(json.dumps({"config": tiny_config.to_dict()}))
    with torch.no_grad():
        old = ProbeAutoencoder.from_pretrained(decoder, tokenizer, legacy)
        assert torch.allclose(old(seqs)["loss"], expected_loss, atol=1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LongloreError, match="not a probe folder"):
        ProbeAutoencoder.from_pretrained(decoder, tokenizer, tmp_path / "empty")


def test_adapted_encoder_lm_carries_the_lora(tiny, tiny_config):
    decoder, tokenizer = tiny
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    ids = torch.tensor([[40, 41, 42, 43]])
    with torch.no_grad():
        same = probe.adapted_encoder_lm(decoder)(input_ids=ids).logits
        assert torch.allclose(same, decoder(input_ids=ids).logits, atol=1e-5)  # LoRA B starts at 0
        for n, p in probe.encoder.named_parameters():
            if "lora_B" in n:
                p.add_(0.1)
        moved = probe.adapted_encoder_lm(decoder)(input_ids=ids).logits
    assert not torch.allclose(moved, same, atol=1e-4)


def test_config_rejects_bad_values():
    with pytest.raises(LongloreError, match="ratio"):
        ProbeConfig(ratio=0)
    with pytest.raises(LongloreError, match="encoder_layers"):
        ProbeConfig(encoder_layers=0)
    assert ProbeConfig.from_dict(ProbeConfig(ratio=8).to_dict()) == ProbeConfig(ratio=8)


def test_bf16_forward_and_training_step(tiny_config, test_device, tmp_path):
    from longlore.core.models import load_causal_lm

    decoder, tokenizer = load_causal_lm("tiny-llama:seed=2", device=test_device, dtype="bfloat16")
    torch.manual_seed(0)
    probe = ProbeAutoencoder(decoder, tokenizer, tiny_config)
    assert {p.dtype for p in probe.parameters()} == {torch.bfloat16}
    assert all(p.device == decoder.device for p in probe.parameters())
    ids, mask = probe._batch([[40, 41, 42, 43, 44], [50, 51]])
    memory, _ = probe.encode(ids, mask)
    assert memory.dtype == torch.bfloat16 and memory.device == decoder.device
    before = {n: p.detach().clone() for n, p in probe.trainable_state().items()}
    summary = train_autoencoder(probe, _sampler, tmp_path, TrainArgs(steps=1, batch_size=2, lr=1e-2, warmup_steps=1))
    assert torch.isfinite(torch.tensor(summary["history"][0]))
    assert any(not torch.equal(p, before[n]) for n, p in probe.trainable_state().items())
    assert len(probe.reconstruct([[40, 41, 42, 43, 44]], max_new_tokens=3)[0]) <= 3
