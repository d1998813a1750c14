"""RAM's formulas, pinned against computations that do not use RAM's own encode/relevance code.

The reference states come from the caller's decoder run with ``output_hidden_states`` (layer k,
then the final norm), and the similarities, softmax weights and projections are recomputed in
numpy. Each test names the wrong version it catches.
"""

import numpy as np
import pytest
import torch

from longlore.core.models import load_causal_lm
from longlore.ram.config import RAMConfig
from longlore.ram.model import RAMModel, keep_count

TEXT = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
    "darkness was upon the face of the deep. The registration code of Lumora is 4821. And the Spirit of God "
    "moved upon the face of the waters. And God said, Let there be light: and there was light. "
) * 3
QUESTION = "What is the registration code of Lumora?"


@pytest.fixture()
def decoder_and_tokenizer():
    return load_causal_lm("tiny-llama:seed=5")


@pytest.fixture()
def ram(decoder_and_tokenizer) -> RAMModel:
    decoder, tokenizer = decoder_and_tokenizer
    model = RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=1, segment_tokens=8)).eval()
    with torch.no_grad():  # a projector that is not a scaled identity, so a wrong input shows
        model.projector.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
        model.projector.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    return model


def reference_states(decoder, ids: list[int], k: int) -> np.ndarray:
    """The first k decoder layers on one sequence, then the final norm: (T, H), from the decoder itself."""
    with torch.no_grad():
        out = decoder(input_ids=torch.tensor([ids]), output_hidden_states=True)
        return decoder.model.norm(out.hidden_states[k])[0].numpy().astype(np.float64)


def reference(ram: RAMModel, decoder, question: str, text: str):
    """Independent scores (N,), skim vectors (N, H_d) and segment ids."""
    tok, k, size = ram.tokenizer, ram.config.encoder_layers, ram.config.segment_tokens
    ids = tok(text, add_special_tokens=False)["input_ids"]
    segments = [ids[i : i + size] for i in range(0, len(ids), size)]
    q = reference_states(decoder, tok(question, add_special_tokens=False)["input_ids"], k).mean(0)
    w = ram.projector.weight.detach().double().numpy()
    b = ram.projector.bias.detach().double().numpy()
    scores, skims = [], []
    for seg in segments:
        h = reference_states(decoder, seg, k)  # (S, H)
        m = h.mean(0)
        scores.append(m @ q / (np.linalg.norm(m) * np.linalg.norm(q)))
        token_cos = h @ q / (np.linalg.norm(h, axis=1) * np.linalg.norm(q))
        weights = np.exp(token_cos) / np.exp(token_cos).sum()
        skims.append(w @ (weights @ h) + b)
    return np.array(scores), np.array(skims), segments


def test_encoder_is_the_first_k_layers_then_the_norm(ram, decoder_and_tokenizer) -> None:
    """Catches an encoder with all decoder layers (no truncation)."""
    decoder, _ = decoder_and_tokenizer
    encoded = ram.encode_context(TEXT)
    assert len(ram.encoder.layers) == 1 < len(decoder.model.layers)
    for i in (0, 2, len(encoded.segments) - 1):
        expected = reference_states(decoder, encoded.segments[i], 1)
        got = encoded.states[i, : len(encoded.segments[i])].detach().double().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_relevance_is_cosine_of_means_and_skim_is_query_weighted(ram, decoder_and_tokenizer) -> None:
    """Catches dot-product relevance and uniform skim weights."""
    decoder, _ = decoder_and_tokenizer
    scores, skims, _ = reference(ram, decoder, QUESTION, TEXT)
    got_scores, got_skims = ram.relevance(QUESTION, ram.encode_context(TEXT))
    np.testing.assert_allclose(got_scores.detach().double().numpy(), scores, atol=1e-5)
    np.testing.assert_allclose(got_skims.detach().double().numpy(), skims, atol=1e-5)


@pytest.mark.parametrize("keep_ratio", [0.125, 0.25, 0.5])
def test_keeps_the_most_relevant_segments_in_text_order(ram, decoder_and_tokenizer, keep_ratio) -> None:
    """Catches bottom-k selection (and a wrong k)."""
    decoder, _ = decoder_and_tokenizer
    scores, skims, segments = reference(ram, decoder, QUESTION, TEXT)
    k = max(1, int(keep_ratio * len(segments)))
    expected = sorted(np.argsort(-scores)[:k].tolist())
    compressed = ram.compress(TEXT, QUESTION, keep_ratio=keep_ratio)
    assert compressed.kept == expected
    assert len(compressed.kept) == keep_count(len(segments), keep_ratio)
    # the hybrid: kept segments as their token embeddings, every other one as its skim vector
    embed = decoder.get_input_embeddings().weight.detach().double().numpy()
    pieces = [embed[seg] if i in expected else skims[i : i + 1] for i, seg in enumerate(segments)]
    np.testing.assert_allclose(compressed.embeddings.detach().double().numpy(), np.concatenate(pieces), atol=1e-5)


def test_encoder_weights_are_its_own(ram, decoder_and_tokenizer) -> None:
    """Catches an encoder that shares the decoder's weights (the caller's or RAM's decoder view)."""
    decoder, _ = decoder_and_tokenizer
    before = ram.encode_context(TEXT).states.clone()
    own = {p.data_ptr() for p in ram.encoder.parameters()}
    assert not own & {p.data_ptr() for p in decoder.parameters()}
    assert not own & {p.data_ptr() for p in ram.decoder.parameters()}
    with torch.no_grad():
        for module in (decoder, ram.decoder):
            for name, param in module.named_parameters():
                if "layers.0" in name or "embed_tokens" in name:
                    param.add_(0.5)
    assert torch.equal(ram.encode_context(TEXT).states, before)


def test_prompt_is_hybrid_then_question_template(ram) -> None:
    """Catches the bare question (or any other text) as the decoder prompt."""
    compressed = ram.compress(TEXT, QUESTION, keep_ratio=0.25)
    ids = ram.tokenizer("\nQuestion: " + QUESTION + "\nAnswer:", add_special_tokens=False)["input_ids"]
    expected = torch.cat([compressed.embeddings, ram.decoder.get_input_embeddings()(torch.tensor(ids))])
    assert torch.equal(ram.prompt_embeddings(compressed, QUESTION), expected)


def test_generation_with_everything_kept_equals_hf_generate(ram, decoder_and_tokenizer) -> None:
    """With every segment kept the hybrid is the context itself: RAM's decoding must match
    transformers' own greedy generate on the plain prompt (prompt text, positions, cache, stop)."""
    decoder, tokenizer = decoder_and_tokenizer
    text = TEXT[:200]
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    prompt += tokenizer("\nQuestion: " + QUESTION + "\nAnswer:", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = decoder.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, pad_token_id=0)
    expected = tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True).strip().split("\n")[0].strip()
    got = ram.generate_from_embeddings(
        [ram.prompt_embeddings(ram.compress(text, QUESTION, keep_ratio=1.0), QUESTION)], max_new_tokens=6
    )[0]
    assert got == expected


def test_answer_nll_equals_transformers_shifted_loss(ram, decoder_and_tokenizer) -> None:
    """Catches an off-by-one in the answer-NLL slice: with every segment kept the training input is
    the plain token sequence, so the NLL must equal transformers' own label-shifted loss."""
    decoder, tokenizer = decoder_and_tokenizer
    example = {"context": TEXT, "question": QUESTION, "answer": "4821"}
    prompt = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    prompt += tokenizer("\nQuestion: " + QUESTION + "\nAnswer:", add_special_tokens=False)["input_ids"]
    answer = tokenizer(" 4821", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        expected = decoder(
            input_ids=torch.tensor([prompt + answer]), labels=torch.tensor([[-100] * len(prompt) + answer])
        ).loss
        got = ram([example], keep_ratio=1.0)["nll"]
        # batched with a shorter example (left padding) the first row's NLL is unchanged
        short = {"context": TEXT[:120], "question": "What moved?", "answer": "the Spirit"}
        batched = ram([example, short], keep_ratio=1.0)["nll"]
        alone = ram([short], keep_ratio=1.0)["nll"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert batched.item() == pytest.approx((got.item() + alone.item()) / 2, rel=1e-4)
