"""The shipped CoMeT passkey model loads with CometModel.from_pretrained, reads keys back through
its memory at its training length, and the demo that uses it writes its report and plot."""

import random

import torch

from longlore.comet import quickstart
from longlore.comet.model import CometModel
from longlore.comet.passkey import PasskeyPieces, key_placement, passkey_prompt
from longlore.comet.quickstart import ARTIFACT
from longlore.core.io import read_json


def test_shipped_passkey_model_reads_keys_back_from_memory() -> None:
    model = CometModel.from_pretrained(ARTIFACT).eval()
    assert (ARTIFACT / "MODEL_CARD.md").is_file() and (ARTIFACT / "backbone" / "model.safetensors").is_file()
    size = sum(f.stat().st_size for f in ARTIFACT.rglob("*") if f.is_file())
    assert size < 10e6  # small enough to ship in the repository
    n_tokens = read_json(ARTIFACT / "comet_config.json")["trained_on"]["max_train_tokens"]
    pieces = PasskeyPieces.build(model, split_digits=True)
    # ten fixed keys at the training length, the key line before the last chunk: every answer has to
    # come back through the gated global memory (measured: 38/40 exact at this length)
    rng = random.Random(7)
    keys = [rng.randrange(10_000, 100_000) for _ in range(10)]
    depths = [(0.0, 0.25, 0.5)[i % 3] for i in range(10)]
    built = [passkey_prompt(model, pieces, n_tokens, d, k, with_offset=True) for k, d in zip(keys, depths)]
    for (prompt, offset), key in zip(built, keys):
        assert key_placement(model, len(prompt), offset, len(pieces.key_line(key)))["memory"]
    with torch.no_grad():
        answers = model.generate_ids([p for p, _ in built], max_new_tokens=6)
        texts = [model.tokenizer.decode(a, skip_special_tokens=True) for a in answers]
        assert sum(t.strip().split(".")[0] == str(k) for t, k in zip(texts, keys)) >= 8, texts
        # the memory carries the key: the same last chunk with an empty memory does not find it
        size = model.config.chunk_size
        alone = [p[(len(p) - 1) // size * size :] for p, _ in built]
        blind = [model.tokenizer.decode(a, skip_special_tokens=True) for a in model.generate_ids(alone, 6)]
    assert sum(t.strip().split(".")[0] == str(k) for t, k in zip(blind, keys)) == 0, blind


def test_demo_reports_answers_memory_sizes_and_writes_its_plot(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(quickstart, "LONG_PROMPT_TOKENS", 1024)  # the demo's 64K read, shortened
    out = tmp_path / "comet"
    out.mkdir()
    text = quickstart.run(out)
    assert (tmp_path / "comet_memory.png").stat().st_size > 1000  # beside REPORT.md
    assert "passkey-4x128" in text and "| chunks read | tokens read | memory state (KiB) |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "back)" in line]
    assert len(rows) == 2 and "**correct**" in rows[0]  # at the training length it finds the key
    lines = text.splitlines()
    start = lines.index("| chunks read | tokens read | memory state (KiB) |") + 2
    table = lines[start : lines.index("", start)]
    assert [int(row.split("|")[1]) for row in table] == [1, 2, 4, 7]  # 1,024 tokens: 7 chunks before the last
    assert len({row.split("|")[3] for row in table}) == 1  # one memory size after every chunk (no FIFO)
