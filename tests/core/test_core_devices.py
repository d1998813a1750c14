"""--device / --dtype resolution and placement, with CUDA mocked (there is no GPU here)."""

from __future__ import annotations

import math

import pytest
import torch

from longlore.core import devices
from longlore.core.devices import module_device_dtype, place, resolve, resolve_device, resolve_dtype
from longlore.core.errors import LongloreError


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend two bf16-capable CUDA GPUs are present."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_auto_is_cpu_float32_without_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("auto", "auto") == (torch.device("cpu"), torch.float32)
    assert resolve("cpu", "bf16") == (torch.device("cpu"), torch.bfloat16)
    with pytest.raises(LongloreError, match="no CUDA GPU is visible"):
        resolve_device("cuda")


def test_auto_is_cuda_bfloat16_with_a_gpu(fake_cuda, monkeypatch) -> None:
    assert resolve("auto", "auto") == (torch.device("cuda", 0), torch.bfloat16)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_dtype("auto", "cpu") == torch.float32  # auto dtype follows the device
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", "cuda") == torch.float16  # older GPUs
    monkeypatch.setenv("LOCAL_RANK", "1")  # under torchrun each rank takes its own GPU
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(LongloreError, match=r"only 2 CUDA device\(s\) here"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    "device, dtype, message",
    [("gpu", "auto", "--device 'gpu': expected one of auto, cpu, cuda, cuda:N, mps"),
     ("cpu", "int8", "--dtype 'int8': expected one of auto, float32, bfloat16, float16")],
)  # fmt: skip
def test_bad_values_are_one_line_errors(device: str, dtype: str, message: str) -> None:
    with pytest.raises(LongloreError, match=message.replace("(", r"\(")):
        resolve(device, dtype)


def test_mps_absent_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(LongloreError, match="MPS backend is not available"):
        resolve_device("mps")


def test_place_moves_and_casts_a_module_with_cuda_mocked(fake_cuda, monkeypatch) -> None:
    """The placement path a GPU run takes, checked on the meta device: ``auto`` resolves to
    cuda:0 + bf16 and ``place`` asks the module for exactly that (then we run it on meta)."""
    calls = []
    real_to = torch.nn.Module.to

    def recording_to(self, *args, **kwargs):
        calls.append(kwargs)
        kwargs = {**kwargs, "device": torch.device("meta")}  # no real GPU: materialise on meta
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", recording_to)
    module = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4))
    module.register_buffer("ids", torch.arange(3))
    place(module, "auto", "auto")
    assert calls == [{"device": torch.device("cuda", 0), "dtype": torch.bfloat16}]
    assert module_device_dtype(module) == (torch.device("meta"), torch.bfloat16)
    assert module.ids.dtype == torch.int64  # integer buffers keep their dtype


def test_bf16_forward_and_training_step(test_device: str) -> None:
    """A tiny decoder in bf16 on the test device: parameters, logits and one shared-loop step."""
    from longlore.core.models import load_causal_lm
    from longlore.core.training import TrainingArgs, train_loop

    model, tok = load_causal_lm("tiny-llama", device=test_device, dtype="bfloat16")
    ids = tok(["hello world", "a b c d"], padding=True, return_tensors="pt").to(test_device)
    logits = model(**ids).logits
    assert logits.dtype == torch.bfloat16 and logits.device.type == torch.device(test_device).type
    before = model.lm_head.weight.detach().clone()

    def loss_fn(m, items, ctx):
        batch = tok(items, padding=True, return_tensors="pt").to(test_device)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return m(**batch, labels=labels).loss

    result = train_loop(
        model, loss_fn, lambda step: ["hello world", "a b c d"], TrainingArgs(steps=1, lr=1e-2), progress=False
    )
    assert math.isfinite(result.final_loss)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not torch.equal(before, model.lm_head.weight)
