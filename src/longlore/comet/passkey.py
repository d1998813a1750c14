"""Passkey retrieval in the Landmark / LongLoRA text form, training curriculum and the length x depth grid.

Prompt: the task line, the filler sentence repeated, the key line at the requested depth, more
filler, then "What is the pass key? The pass key is". Score: the first integer of the greedy
answer equals the key (key = randint(1, 50000)). Prompts are assembled from pre-tokenized pieces
so a 1M-token prompt costs no tokenizer time.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longlore.comet.model import CometModel
from longlore.core.errors import LongloreError
from longlore.core.io import read_json, write_json
from longlore.core.progress import console

TASK = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEY_LINE = "The pass key is {k}. Remember it. {k} is the pass key."
QUESTION = "What is the pass key? The pass key is"


@dataclass
class PasskeyPieces:
    """The pre-tokenized parts of a passkey prompt for one tokenizer."""

    task: list[int]
    filler: list[int]
    question: list[int]

    @classmethod
    def build(cls, model: CometModel) -> PasskeyPieces:
        return cls(model.encode(TASK), model.encode(" " + FILLER), model.encode("\n" + QUESTION))


def passkey_prompt(model: CometModel, pieces: PasskeyPieces, n_tokens: int, depth: float, key: int) -> list[int]:
    """Token ids of a prompt of about ``n_tokens`` with the key line at ``depth`` (0 = start, 1 = end)."""
    if not 0.0 <= depth <= 1.0:
        raise LongloreError(f"passkey depth must be in [0, 1], got {depth}")
    key_ids = model.encode(" " + KEY_LINE.format(k=key))
    fixed = len(pieces.task) + len(key_ids) + len(pieces.question)
    repeats = max(0, (n_tokens - fixed) // len(pieces.filler))
    before = round(depth * repeats)
    return pieces.task + pieces.filler * before + key_ids + pieces.filler * (repeats - before) + pieces.question


def answer_ids(model: CometModel, key: int) -> list[int]:
    return model.encode(f" {key}.")


def first_integer(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


def digit_accuracy(answer: str, key: int) -> float:
    """Share of the key's digits that the answer's first integer gets right, position by position
    from the left (a missing or extra digit counts as wrong). A diagnostic beside exact match: it
    tells a memory that keeps the key coarsely (12345 -> 12395: 0.8) from one that lost it."""
    guess, truth = first_integer(answer), str(key)
    if guess is None:
        return 0.0
    guess_digits = str(guess)
    hits = sum(a == b for a, b in zip(guess_digits, truth))
    return hits / max(len(truth), len(guess_digits))


def parse_curriculum(spec: str) -> list[tuple[int, int]]:
    """'1:200,2:200,4:300' -> [(chunks, steps), ...]: train on 1-chunk samples for 200 steps, then 2, ..."""
    try:
        stages = [(int(a), int(b)) for a, b in (part.split(":") for part in spec.split(",") if part.strip())]
    except ValueError:
        raise LongloreError(f"curriculum '{spec}': expected 'chunks:steps,...' such as '1:200,2:200,4:300'") from None
    if not stages or any(c < 1 or s < 1 for c, s in stages):
        raise LongloreError(f"curriculum '{spec}': chunks and steps must be >= 1")
    return stages


def stage_starts(stages: list[tuple[int, int]]) -> list[int]:
    """The step at which each curriculum stage after the first begins (for per-stage lr restarts)."""
    starts, total = [], 0
    for _, steps in stages[:-1]:
        total += steps
        starts.append(total)
    return starts


def curriculum_batches(model: CometModel, stages: list[tuple[int, int]], batch_size: int, answer_only: bool = True):
    """A trainer BatchFn: at step s, passkey samples spanning the stage's number of chunks
    (length drawn in ((c - 1) * chunk, c * chunk], random depth and key); loss on the answer only
    by default (the filler is trivially predictable and would drown the retrieval signal)."""
    pieces = PasskeyPieces.build(model)
    bounds = []
    total = 0
    for chunks, steps in stages:
        total += steps
        bounds.append((total, chunks))
    chunk = model.config.chunk_size

    def draw(rng: random.Random, step: int):
        chunks = next((c for end, c in bounds if step < end), bounds[-1][1])
        ids, labels = [], []
        for _ in range(batch_size):
            key = rng.randint(1, 50000)
            low = max(len(pieces.task) + len(pieces.question) + 24, (chunks - 1) * chunk + 1)
            prompt = passkey_prompt(model, pieces, rng.randint(low, max(low, chunks * chunk - 6)), rng.random(), key)
            answer = answer_ids(model, key)
            ids.append(prompt + answer)
            labels.append(([-100] * len(prompt) + answer) if answer_only else prompt + answer)
        return ids, labels

    return draw, total


def evaluate_grid(
    model: CometModel,
    lengths: list[int],
    depths: list[float],
    keys_per_cell: int,
    out: Path,
    seed: int = 0,
    max_new_tokens: int = 8,
    meta: dict[str, Any] | None = None,
    batch_size: int = 10,
) -> dict[str, Any]:
    """Greedy passkey accuracy over lengths x depths; resumes from ``out`` (records saved per batch).

    Prompts of one length are streamed together in batches of ``batch_size`` (the memory state is
    per row, so a batch gives the per-prompt answers; with a small backbone, batching divides the
    per-chunk overhead that dominates a 1M-token stream).
    """
    pieces = PasskeyPieces.build(model)
    done = read_json(out) if out.exists() else {}
    records: list[dict] = done.get("records", [])
    seen = {(r["length"], r["depth"], r["i"]) for r in records}
    rng = random.Random(seed)
    plan = [(n, d, i, rng.randint(1, 50000)) for n in lengths for d in depths for i in range(keys_per_cell)]
    todo = [item for item in plan if item[:3] not in seen]
    batches = [[item for item in todo if item[0] == n] for n in lengths]
    batches = [group[b : b + batch_size] for group in batches for b in range(0, len(group), batch_size)]
    for batch in batches:
        start = time.perf_counter()
        prompts = [passkey_prompt(model, pieces, n, d, key) for n, d, _, key in batch]
        outputs = model.generate_ids(prompts, max_new_tokens)
        seconds = round((time.perf_counter() - start) / len(batch), 2)
        for (n, d, i, key), prompt, ids in zip(batch, prompts, outputs):
            text = model.tokenizer.decode(ids, skip_special_tokens=True)
            ok = first_integer(text) == key
            records.append(
                {
                    "length": n,
                    "depth": d,
                    "i": i,
                    "key": key,
                    "answer": text,
                    "correct": ok,
                    "prompt_tokens": len(prompt),
                    "seconds": seconds,
                }
            )
            console.print(
                f"len {n:>8} depth {d:.2f} #{i}: {'ok ' if ok else 'MISS'} ({text.strip()[:20]!r}, key {key})"
            )
        write_json(out, {**(meta or {}), "records": records}, overwrite=True)  # resumable after every batch
    table = accuracy_table(records)
    result = {
        **(meta or {}),
        "records": records,
        "accuracy": table,
        "digit_accuracy": accuracy_table(records, "digits"),
    }
    write_json(out, result, overwrite=True)
    return result


def accuracy_table(records: list[dict], score: str = "exact") -> dict[str, dict[str, float]]:
    """{length: {depth: mean score, 'all': mean score}} from per-prompt records; ``score`` is
    'exact' (first integer == key) or 'digits' (``digit_accuracy``)."""

    def value(r: dict) -> float:
        return float(r["correct"]) if score == "exact" else digit_accuracy(r["answer"], r["key"])

    table: dict[str, dict[str, float]] = {}
    for n in sorted({r["length"] for r in records}):
        rows = [r for r in records if r["length"] == n]
        cell = {
            f"{d:.2f}": sum(value(r) for r in rows if r["depth"] == d) / max(1, sum(r["depth"] == d for r in rows))
            for d in sorted({r["depth"] for r in rows})
        }
        cell["all"] = sum(value(r) for r in rows) / len(rows)
        table[str(n)] = cell
    return table


def heatmap(table: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Accuracy heatmap: depth (rows) x length (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    lengths = list(table)
    depths = sorted({d for cells in table.values() for d in cells if d != "all"})
    grid = [[table[n].get(d, float("nan")) for n in lengths] for d in depths]
    fig, ax = plt.subplots(figsize=(1.2 * len(lengths) + 2, 0.5 * len(depths) + 1.5))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(
        range(len(lengths)),
        [
            f"{int(n) // 2**20}M"
            if int(n) >= 2**20 and int(n) % 2**20 == 0
            else f"{int(n) // 1024}K"
            if int(n) >= 1024
            else n
            for n in lengths
        ],
    )
    ax.set_yticks(range(len(depths)), [f"{float(d):.0%}" for d in depths])
    for y, row in enumerate(grid):
        for x, v in enumerate(row):
            ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("key depth")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)
    plt.close(fig)
