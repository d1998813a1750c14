"""The trained RAM adapter shipped for SmolLM2-135M: small, loadable, and its selector finds the evidence."""

import json

import torch

from longlore.core.models import load_causal_lm
from longlore.ram.artifacts import shipped_adapter, training_info
from longlore.ram.data import make_dataset
from longlore.ram.model import RAMModel, positive_segments


def test_shipped_adapter_loads_and_reproduces_its_first_known_output() -> None:
    folder = shipped_adapter("smollm2-135m")
    assert folder is not None and (folder / "MODEL_CARD.md").exists()
    assert (folder / "ram_model.safetensors").stat().st_size <= 10_000_000
    decoder, tokenizer = load_causal_lm("smollm2-135m")
    before = {k: v.clone() for k, v in decoder.state_dict().items() if "layers.0." in k}
    ram = RAMModel.from_pretrained(decoder, tokenizer, folder)
    assert ram.config.encoder_lora_r > 0
    assert all(torch.equal(v, decoder.state_dict()[k]) for k, v in before.items())  # the caller's decoder untouched
    info = training_info(folder)
    assert info["trained"] and info["cpu_s"] > 0
    known = json.loads((folder / "known_outputs.json").read_text())[0]
    example = make_dataset(tokenizer, 3, 1800, 2200, seed=7, two_fact_share=0.0)[0]  # the demo's first document
    assert example["question"] == known["question"]
    with torch.no_grad():
        compressed = ram.compress(example["context"], example["question"], keep_ratio=0.25, skim=False)
        answer = ram.generate_from_embeddings([ram.prompt_embeddings(compressed, example["question"])], 12)[0]
    evidence = positive_segments(compressed.segment_texts, example).nonzero().flatten().tolist()
    assert compressed.kept == known["kept"] and evidence == known["evidence"]
    assert set(evidence) <= set(compressed.kept)  # the trained selector kept the evidence
    assert answer == known["answer_text"]
