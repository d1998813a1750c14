import math

import pytest
import torch

from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm
from longlore.ram.config import RAMConfig
from longlore.ram.data import QARecord, load_qa, make_dataset
from longlore.ram.loss import multi_positive_infonce
from longlore.ram.model import RAMModel, keep_count, positive_segments
from longlore.ram.trainer import TrainArgs, train

TEXT = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
    "darkness was upon the face of the deep. The registration code of Lumora is 4821. And the Spirit of God "
    "moved upon the face of the waters. And God said, Let there be light: and there was light. "
) * 3


@pytest.fixture()
def ram() -> RAMModel:
    decoder, tokenizer = load_causal_lm("tiny-llama")
    return RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=1, segment_tokens=8)).eval()


def test_parallel_segment_encoding_equals_alone(ram) -> None:
    segments, _ = ram.segment(TEXT)
    assert [t for seg in segments for t in seg] == ram.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    query = ram.tokenizer("What is the code of Lumora?", add_special_tokens=False)["input_ids"]
    scores, skim = ram.encode(query, segments)
    for i in (0, 3, len(segments) - 1):  # the last segment is shorter: padding must not leak in
        alone_scores, alone_skim = ram.encode(query, [segments[i]])
        assert torch.allclose(scores[i], alone_scores[0], atol=1e-5)
        assert torch.allclose(skim[i], alone_skim[0], atol=1e-5)


def test_hybrid_keeps_order_and_verbatim_tokens(ram) -> None:
    compressed = ram.compress(TEXT, "What is the code of Lumora?", keep_ratio=0.5)
    segments, _ = ram.segment(TEXT)
    embed = ram.decoder.get_input_embeddings()
    _, skim = ram.encode(ram.tokenizer("What is the code of Lumora?", add_special_tokens=False)["input_ids"], segments)
    expected = torch.cat(
        [embed(torch.tensor(s)) if i in compressed.kept else skim[i : i + 1] for i, s in enumerate(segments)]
    )
    assert torch.allclose(compressed.embeddings, expected, atol=1e-6)
    assert compressed.kept == sorted(compressed.kept)
    assert compressed.close_read_text() == " ... ".join(ram.tokenizer.decode(segments[i]) for i in compressed.kept)


@pytest.mark.parametrize("rate", [0.125, 0.25, 0.5, 1.0])
def test_achieved_keep_ratio_matches_request(ram, rate) -> None:
    compressed = ram.compress(TEXT, "code?", keep_ratio=rate)
    n = len(compressed.segment_texts)
    assert len(compressed.kept) == keep_count(n, rate) == max(1, int(rate * n))
    kept_tokens = sum(len(ram.segment(TEXT)[0][i]) for i in compressed.kept)
    assert compressed.compressed_length == kept_tokens + n - len(compressed.kept)
    assert compressed.compression == pytest.approx(compressed.original_tokens / compressed.compressed_length)
    assert compressed.stats()["compression"] == round(compressed.compression, 3)
    budget = ram.compress(TEXT, "code?", target_tokens=40)
    assert budget.compressed_length <= 40 < budget.compressed_length + ram.config.segment_tokens


def test_infonce_hand_computed() -> None:
    scores = torch.tensor([0.1, 0.3, 0.2, -0.1])
    positives = torch.tensor([True, False, True, False])
    t = 0.05
    e = [math.exp(s / t) for s in scores.tolist()]
    expected = -math.log((e[0] + e[2]) / sum(e))  # ~2.13: the best segment is a negative
    assert multi_positive_infonce(scores, positives, t).item() == pytest.approx(expected, rel=1e-5)
    assert multi_positive_infonce(scores, torch.ones(4, dtype=torch.bool), t).item() == pytest.approx(0.0, abs=1e-6)


def test_batch_equals_per_example(ram) -> None:
    contexts = [TEXT, TEXT[:300], TEXT[100:]]
    questions = ["What is the code of Lumora?", "What was created?", "What moved?"]
    batched = ram.generate(contexts, questions, keep_ratio=0.5, max_new_tokens=6)
    single = [ram.generate([c], [q], keep_ratio=0.5, max_new_tokens=6)[0] for c, q in zip(contexts, questions)]
    assert batched == single
    examples = [{"context": c, "question": q, "answer": "4821"} for c, q in zip(contexts, questions)]
    with torch.no_grad():
        batch_loss = ram(examples, keep_ratio=0.5)["nll"]
        mean_single = torch.stack([ram([e], keep_ratio=0.5)["nll"] for e in examples]).mean()
    assert batch_loss.item() == pytest.approx(mean_single.item(), rel=1e-4)


def test_positive_segments_from_spans_and_answers() -> None:
    texts = ["The code of ", "Lumora is 4821. ", "And God said"]
    assert positive_segments(texts, {"positive_spans": ["code of Lumora is 4821"]}).tolist() == [True, True, False]
    assert positive_segments(texts, {"answer": "4821"}).tolist() == [False, True, False]
    assert not positive_segments(texts, {"answer": "9999"}).any()


def test_only_intended_parameters_train_and_gradients_flow(ram) -> None:
    out = ram([{"context": TEXT, "question": "What is the code of Lumora?", "answer": "4821"}], keep_ratio=0.25)
    out["loss"].backward()
    assert out["infonce"].item() > 0
    assert ram.encoder.layers[0].self_attn.q_proj.weight.grad is not None  # contrastive + NLL reach the encoder
    assert ram.projector.weight.grad.abs().sum() > 0  # skim vectors feed the decoder
    for name, param in ram.decoder.named_parameters():
        assert (param.grad is not None) == any(p in name for p in ("q_proj", "k_proj", "v_proj")), name


def test_save_load_roundtrip(ram, tmp_path) -> None:
    with torch.no_grad():
        ram.projector.weight.add_(0.01)
        ram.decoder.model.layers[0].self_attn.q_proj.weight.add_(0.01)
    ram.save_pretrained(tmp_path)
    decoder, tokenizer = load_causal_lm("tiny-llama")
    loaded = RAMModel.from_pretrained(decoder, tokenizer, tmp_path).eval()
    a = ram.compress(TEXT, "code?").embeddings
    b = loaded.compress(TEXT, "code?").embeddings
    assert torch.allclose(a, b)
    assert ram.generate([TEXT], ["code?"], max_new_tokens=5) == loaded.generate([TEXT], ["code?"], max_new_tokens=5)
    with pytest.raises(LongloreError, match="no such folder"):
        RAMModel.from_pretrained(decoder, tokenizer, tmp_path / "nope")


def test_selector_stage_trains_only_the_encoder(tmp_path) -> None:
    decoder, tokenizer = load_causal_lm("tiny-llama")
    model = RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=1, segment_tokens=16))
    data = [dict(d, answer=d["answers"][0]) for d in make_dataset(tokenizer, 4, 150, 200, seed=3, two_fact_share=0.0)]
    before = {k: v.detach().clone() for k, v in model.trainable_state().items()}
    summary = train(model, data, tmp_path, TrainArgs(steps=0, selector_steps=3, selector_lr=1e-3))
    after = model.trainable_state()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("encoder.") for k in changed), changed
    assert summary["selector"]["done"] and summary["selector"]["cpu_s"] >= 0
    assert all(h["infonce"] > 0 for h in summary["selector"]["history"])


def test_training_learns_to_find_the_evidence(tmp_path) -> None:
    decoder, tokenizer = load_causal_lm("tiny-llama")
    model = RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=1, segment_tokens=16, lr=3e-3))
    data = make_dataset(tokenizer, 6, 150, 200, seed=3, two_fact_share=0.0)

    def mean_positive_rank() -> float:
        ranks = []
        with torch.no_grad():
            for ex in data:
                c = model.compress(ex["context"], ex["question"])
                pos = positive_segments(c.segment_texts, {"positive_spans": ex["positive_spans"]})
                order = c.scores.argsort(descending=True).tolist()
                ranks.append(min(order.index(i) for i in pos.nonzero().flatten().tolist()))
        return sum(ranks) / len(ranks)

    before = mean_positive_rank()
    train(model, [dict(d, answer=d["answers"][0]) for d in data], tmp_path, TrainArgs(steps=40, checkpoint_every=20))
    after = mean_positive_rank()
    assert after < before and after <= 1.0, (before, after)
    assert (tmp_path / "checkpoint" / "joint" / "checkpoint.pt").exists()


def test_qa_validation_errors(tmp_path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"context": "x", "question": "q", "answers": ["a"]}\n{"context": " ", "question": "q", "answers": ["a"]}\n'
    )
    with pytest.raises(LongloreError, match=r"qa\.jsonl:2: field 'context': Value error, empty context"):
        load_qa(path)
    path.write_text('{"context": "x", "question": "q", "answers": []}\n')
    with pytest.raises(LongloreError, match=r"qa\.jsonl:1: field 'answers'.*no answers"):
        load_qa(path)
    path.write_text('{"context": "x", "question": "a very long question indeed", "answers": ["a"]}\n')
    _, tokenizer = load_causal_lm("tiny-llama")
    with pytest.raises(LongloreError, match=r"qa\.jsonl:1: field 'question': \d+ tokens exceeds the budget of 3"):
        load_qa(path, tokenizer, max_question_tokens=3)
    assert QARecord(context="c", question="q", answers=["a"]).as_example()["answer"] == "a"


def test_sampled_keep_ratio_stays_in_range_and_config_roundtrips() -> None:
    import random

    from longlore.ram.model import sample_keep_ratio

    rng = random.Random(0)
    draws = [sample_keep_ratio(rng, 0.1, 0.5) for _ in range(2000)]
    assert all(0.1 < r <= 0.5 for r in draws)
    assert min(draws) < 0.12 and max(draws) > 0.48  # covers the range, not a constant
    config = RAMConfig(sample_keep_ratio=True, keep_ratio_range=[0.1, 0.5])
    assert RAMConfig.from_dict(config.to_dict()).keep_ratio_range == (0.1, 0.5)
    # a version-1 config (old names) still loads
    old = RAMConfig.from_dict({"ratio": 0.125, "sample_ratio": True, "ratio_range": [0.1, 0.5], "version": 1})
    assert (old.keep_ratio, old.sample_keep_ratio, old.keep_ratio_range) == (0.125, True, (0.1, 0.5))
    for bad in ((0.5, 0.1), (0.0, 1.5), (0.3,)):
        with pytest.raises(LongloreError, match="keep_ratio_range"):
            RAMConfig(keep_ratio_range=bad)
