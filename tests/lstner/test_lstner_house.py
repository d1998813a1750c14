"""LST-NER in the shared house: bf16 on the test device, resume equal to an unbroken run, the CLI
built from LSTNERConfig."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from longlore.core.config_cli import CONFIG_COMMANDS, check_config_command
from longlore.core.models import load_encoder
from longlore.lstner import LSTNERConfig, NERPipeline, Tagger, build_lstner, train_target
from longlore.lstner.data import LabelSet, batches, encode_sentence
from longlore.lstner.graph import label_distributions
from longlore.lstner.synth import SOURCE_TYPES, TARGET_TYPES, source_corpus, target_corpus
from longlore.lstner.trainer import lstner_loss

CFG = LSTNERConfig(encoder="tiny-bert", epochs=2, batch_size=3, lr=3e-3, head_lr=3e-2, max_len=40, l_gw=1.0)


def _source(device: str, dtype: str) -> NERPipeline:
    encoder, tok = load_encoder("tiny-bert", device=device, dtype=dtype, seed=0)
    labels = LabelSet(SOURCE_TYPES)
    model = Tagger(encoder, len(labels), dropout=0.0).eval()
    enc = [encode_sentence(s, tok, labels, CFG.max_len) for s in source_corpus(6, seed=0)]
    batch = {k: v.to(device) for k, v in batches(enc, 64, tok.pad_token_id)[0].items()}
    dist = label_distributions(model, [batch], len(labels), CFG.temperature)
    return NERPipeline(model, tok, labels, CFG, "tagger", extra={"source_dist": dist.float().tolist()})


def test_lstner_bf16_forward_and_training_step(test_device: str) -> None:
    source = _source(test_device, "bfloat16")
    sents, labels = target_corpus(6, seed=1), LabelSet(TARGET_TYPES)
    model = build_lstner(source, sents, labels, CFG)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {b.dtype for n, b in model.named_buffers() if not n.startswith("encoder.")} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {torch.device(test_device).type}
    enc = [encode_sentence(s, source.tokenizer, labels, CFG.max_len) for s in sents]
    batch = batches(enc, 6, source.tokenizer.pad_token_id, n_types=len(labels.types))[0]
    batch = {k: v.to(test_device) for k, v in batch.items()}
    logits, type_logits, nodes = model.forward_all(batch["input_ids"], batch["attention_mask"])
    assert logits.dtype == type_logits.dtype == nodes.dtype == torch.bfloat16
    model.train()
    loss, parts = lstner_loss(model, batch, CFG)
    assert math.isfinite(loss.item()) and parts["gw"].item() > 0
    before = model.head.label_emb.detach().clone()
    loss.backward()
    grad = model.fusion.gcn.weight.grad  # reached through GW on the fused nodes
    assert grad is not None and grad.dtype == torch.bfloat16 and grad.abs().sum() > 0 and grad.isfinite().all()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    assert not torch.equal(before, model.head.label_emb)
    # and through the trainer (shared loop) on the same device and dtype
    pipe = train_target(sents, replace(CFG, epochs=1), "lstner", source, labels=labels)
    assert {p.dtype for p in pipe.model.parameters()} == {torch.bfloat16}
    assert len(pipe.predict_tags(sents[:2])) == 2


@pytest.mark.parametrize("method", ["lstner", "source-then-target"])
def test_resume_equals_an_unbroken_run(tmp_path, method) -> None:
    source = _source("cpu", "float32")
    sents, labels = target_corpus(6, seed=2), LabelSet(TARGET_TYPES)
    cfg = replace(CFG, epochs=2, dropout=0.1)  # dropout on: its RNG must be restored too
    unbroken = train_target(sents, cfg, method, source, labels=labels, out_dir=tmp_path / "a")
    train_target(sents, cfg, method, source, labels=labels, out_dir=tmp_path / "b", stop_after=3)
    resumed = train_target(sents, cfg, method, source, labels=labels, out_dir=tmp_path / "b")
    a, b = unbroken.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(resumed.extra["history"]) == 2


def test_cli_options_come_from_lstner_config() -> None:
    import longlore.lstner.cli  # noqa: F401  (registers its commands)

    entries = [e for e in CONFIG_COMMANDS if e.config_class is LSTNERConfig]
    assert {e.command.__name__ for e in entries} == {"train_source_cmd", "train_target_cmd"}
    for entry in entries:
        assert check_config_command(entry) == []
