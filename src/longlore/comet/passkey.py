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
from dataclasses import dataclass, field
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
class PasskeyTask:
    """How passkey samples are drawn and scored in training (the prompt text is Landmark's)."""

    key_digits: int = field(
        default=5,
        metadata={
            "help": "Keys are uniform over numbers of exactly this many digits; 0: Landmark's randint(1, 50000)."
        },
    )
    split_digits: bool = field(
        default=True,
        metadata={
            "help": "Write the key one token per digit (as Llama/Qwen tokenizers do); False: the tokenizer's own "
            "split (a small BPE merges ' 12', '00', '0000', so keys get 2-6 irregular tokens)."
        },
    )
    answer_weight: float | None = field(
        default=4.0,
        metadata={
            "help": "Loss = mean next-token CE over all text + answer_weight x mean CE over the answer; "
            "None: the answer tokens only."
        },
    )
    mix_earlier: float = field(
        default=0.3,
        metadata={"help": "Share of training samples drawn with an earlier curriculum stage's number of chunks."},
    )

    def draw_key(self, rng: random.Random) -> int:
        if self.key_digits <= 0:
            return rng.randint(1, 50000)
        return rng.randint(10 ** (self.key_digits - 1), 10**self.key_digits - 1)


@dataclass
class PasskeyPieces:
    """The pre-tokenized parts of a passkey prompt for one tokenizer."""

    task: list[int]
    filler: list[int]
    question: list[int]
    key_parts: tuple[list[int], list[int], list[int]]  # " The pass key is" | ". Remember it." | " is the pass key."
    full_stop: list[int]
    split_digits: bool = False
    model: Any = None

    @classmethod
    def build(cls, model: CometModel, split_digits: bool = False) -> PasskeyPieces:
        before, after = KEY_LINE.split("{k}", 1)[0], KEY_LINE.split("{k}")[1:]
        parts = (model.encode(" " + before.rstrip()), model.encode(after[0]), model.encode(after[1]))
        return cls(
            task=model.encode(TASK),
            filler=model.encode(" " + FILLER),
            question=model.encode("\n" + QUESTION),
            key_parts=parts,
            full_stop=model.encode("."),
            split_digits=split_digits,
            model=model,
        )

    def key_ids(self, key: int) -> list[int]:
        """The key as it follows a word (' 40321'): one token per digit when ``split_digits``."""
        text = str(key)
        if not self.split_digits:
            return self.model.encode(" " + text)
        return self.model.encode(" " + text[0]) + [t for c in text[1:] for t in self.model.encode(c)]

    def key_line(self, key: int) -> list[int]:
        if not self.split_digits:  # tokenized as one string, as the original benchmark does
            return self.model.encode(" " + KEY_LINE.format(k=key))
        k = self.key_ids(key)
        return self.key_parts[0] + k + self.key_parts[1] + k + self.key_parts[2]

    def answer(self, key: int) -> list[int]:
        if not self.split_digits:
            return self.model.encode(f" {key}.")
        return self.key_ids(key) + self.full_stop


def passkey_prompt(
    model: CometModel, pieces: PasskeyPieces, n_tokens: int, depth: float, key: int, with_offset: bool = False
) -> list[int] | tuple[list[int], int]:
    """Token ids of a prompt of about ``n_tokens`` with the key line at ``depth`` (0 = start, 1 = end);
    with ``with_offset`` also the index of the key line's first token."""
    if not 0.0 <= depth <= 1.0:
        raise LongloreError(f"passkey depth must be in [0, 1], got {depth}")
    key_ids = pieces.key_line(key)
    fixed = len(pieces.task) + len(key_ids) + len(pieces.question)
    repeats = max(0, (n_tokens - fixed) // len(pieces.filler))
    before = round(depth * repeats)
    prompt = pieces.task + pieces.filler * before + key_ids + pieces.filler * (repeats - before) + pieces.question
    return (prompt, len(pieces.task) + before * len(pieces.filler)) if with_offset else prompt


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


def curriculum_batches(
    model: CometModel, stages: list[tuple[int, int]], batch_size: int, task: PasskeyTask | None = None
):
    """A trainer BatchFn: at step s, passkey samples spanning the stage's number of chunks (length
    drawn in ((c - 1) * chunk, c * chunk], random depth and key; with probability ``mix_earlier`` an
    earlier stage's c), with the loss of ``task`` (per-token weights give LM + k x answer)."""
    task = task or PasskeyTask()
    pieces = PasskeyPieces.build(model, task.split_digits)
    bounds = []
    total = 0
    for chunks, steps in stages:
        total += steps
        bounds.append((total, chunks))
    chunk = model.config.chunk_size

    def draw(rng: random.Random, step: int):
        stage = next((i for i, (end, _) in enumerate(bounds) if step < end), len(bounds) - 1)
        ids, labels, is_answer = [], [], []
        for _ in range(batch_size):
            chunks = bounds[stage][1]
            if stage and rng.random() < task.mix_earlier:
                chunks = bounds[rng.randrange(stage)][1]
            key = task.draw_key(rng)
            low = max(len(pieces.task) + len(pieces.question) + 24, (chunks - 1) * chunk + 1)
            prompt = passkey_prompt(model, pieces, rng.randint(low, max(low, chunks * chunk - 6)), rng.random(), key)
            answer = pieces.answer(key)
            ids.append(prompt + answer)
            is_answer.append([False] * len(prompt) + [True] * len(answer))
            labels.append(([-100] * len(prompt) + answer) if task.answer_weight is None else prompt + answer)
        if task.answer_weight is None:
            return ids, labels
        return ids, labels, answer_weights(is_answer, task.answer_weight)

    return draw, total


def answer_weights(is_answer: list[list[bool]], weight: float) -> list[list[float]]:
    """Per-token weights w with sum(w * ce) / n_labelled = mean CE over all labelled tokens +
    ``weight`` x mean CE over the answer tokens (labels shift by one: token 0 is never a target)."""
    n_all = sum(len(row) - 1 for row in is_answer)
    n_ans = sum(sum(row[1:]) for row in is_answer)
    boost = 1.0 + weight * n_all / max(1, n_ans)
    return [[boost if a else 1.0 for a in row] for row in is_answer]


def plan_grid(
    lengths: list[int],
    depths: list[float],
    keys_per_cell: int | dict,
    task: PasskeyTask,
    seed: int = 0,
) -> list[tuple[int, float, int, int]]:
    """(length, depth, i, key) for every prompt of the grid; every prompt gets its own key (no key
    is reused across cells). ``keys_per_cell`` may differ per cell: {(length, depth): n} or
    {length: n} (a missing cell gets none)."""
    rng = random.Random(seed)
    used: set[int] = set()
    plan = []
    for n in lengths:
        for d in depths:
            if isinstance(keys_per_cell, dict):
                per_cell = keys_per_cell.get((n, d), keys_per_cell.get(n, 0))
            else:
                per_cell = keys_per_cell
            for i in range(per_cell):
                key = task.draw_key(rng)
                while key in used:
                    key = task.draw_key(rng)
                used.add(key)
                plan.append((n, d, i, key))
    return plan


def key_placement(model: CometModel, prompt_len: int, key_start: int, key_len: int) -> dict[str, Any]:
    """Where the key line sits relative to the chunks the generator uses: ``memory`` when all of it
    lies before the last (locally attended) chunk, and ``in_fifo`` when it ends inside the span the
    temporary memory still covers (the newest B beacons x stride tokens before the last chunk)."""
    cfg = model.config
    last_start = (prompt_len - 1) // cfg.chunk_size * cfg.chunk_size
    key_end = key_start + key_len  # exclusive
    fifo_span = cfg.temp_budget * cfg.temp_stride if cfg.uses_temp else 0
    return {
        "key_token": key_start,
        "key_chunk": key_start // cfg.chunk_size,
        "n_chunks": last_start // cfg.chunk_size + 1,
        "memory": key_end <= last_start,
        "in_fifo": key_end <= last_start and key_end > last_start - fifo_span,
    }


def evaluate_grid(
    model: CometModel,
    lengths: list[int],
    depths: list[float],
    keys_per_cell: int | dict[int, int],
    out: Path,
    seed: int = 0,
    max_new_tokens: int = 8,
    meta: dict[str, Any] | None = None,
    batch_size: int = 10,
    task: PasskeyTask | None = None,
    only_lengths: list[int] | None = None,
) -> dict[str, Any]:
    """Greedy passkey accuracy over lengths x depths; resumes from ``out`` (records saved per batch).

    Prompts of one length are streamed together in batches of ``batch_size`` (the memory state is
    per row, so a batch gives the per-prompt answers; with a small backbone, batching divides the
    per-chunk overhead that dominates a 1M-token stream). Each record says whether the key was read
    from memory or from the last, locally attended chunk (:func:`key_placement`). Keys are planned
    over the whole grid; ``only_lengths`` runs a part of it (parallel processes then never share a key).
    """
    task = task or PasskeyTask()
    pieces = PasskeyPieces.build(model, task.split_digits)
    done = read_json(out) if out.exists() else {}
    records: list[dict] = done.get("records", [])
    seen = {(r["length"], r["depth"], r["i"]) for r in records}
    plan = plan_grid(lengths, depths, keys_per_cell, task, seed)
    run = lengths if only_lengths is None else [n for n in lengths if n in only_lengths]
    todo = [item for item in plan if item[:3] not in seen]
    # one batch per (length, depth) cell (split at batch_size): its prompts share every chunk before
    # the key line, which is streamed once (share_prefix)
    cells = [[item for item in todo if item[:2] == (n, d)] for n in run for d in depths]
    batches = [cell[b : b + batch_size] for cell in cells for b in range(0, len(cell), batch_size)]
    for batch in batches:
        start, cpu = time.perf_counter(), time.process_time()
        built = [passkey_prompt(model, pieces, n, d, key, with_offset=True) for n, d, _, key in batch]
        prompts = [p for p, _ in built]
        outputs = model.generate_ids(prompts, max_new_tokens, share_prefix=True)
        seconds = round((time.perf_counter() - start) / len(batch), 2)
        cpu_seconds = round((time.process_time() - cpu) / len(batch), 2)
        for (n, d, i, key), (prompt, offset), ids in zip(batch, built, outputs):
            text = model.tokenizer.decode(ids, skip_special_tokens=True)
            ok = first_integer(text) == key
            place = key_placement(model, len(prompt), offset, len(pieces.key_line(key)))
            records.append(
                {
                    "length": n,
                    "depth": d,
                    "i": i,
                    "key": key,
                    "answer": text,
                    "correct": ok,
                    "prompt_tokens": len(prompt),
                    **place,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                }
            )
            where = "memory" if place["memory"] else "local"
            console.print(
                f"len {n:>8} depth {d:.2f} #{i} ({where}): {'ok ' if ok else 'MISS'} ({text.strip()[:20]!r}, key {key})"
            )
        write_json(out, {**(meta or {}), "records": records}, overwrite=True)  # resumable after every batch
    result = {**(meta or {}), "records": records, **summarize(records)}
    write_json(out, result, overwrite=True)
    return result


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95% for z = 1.96); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(records: list[dict]) -> dict[str, Any]:
    """Per-length exact match split by where the key was read: ``memory_exact`` (key line wholly
    before the last chunk) and ``local_exact`` (any of it in the last chunk), each with its count and
    95% Wilson interval; plus the depth tables of exact match and digit accuracy."""
    out: dict[str, Any] = {f"{part}_{kind}": {} for part in ("memory", "local") for kind in ("exact", "ci", "n")}
    for n in sorted({r["length"] for r in records}):
        for part, want in (("memory", True), ("local", False)):
            rows = [r for r in records if r["length"] == n and r.get("memory", True) == want]
            if not rows:
                continue
            k = sum(bool(r["correct"]) for r in rows)
            out[f"{part}_exact"][str(n)] = round(k / len(rows), 4)
            out[f"{part}_ci"][str(n)] = [round(x, 4) for x in wilson(k, len(rows))]
            out[f"{part}_n"][str(n)] = len(rows)
    out["accuracy"] = accuracy_table(records)
    out["digit_accuracy"] = accuracy_table(records, "digits")
    return out


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


def _length_label(n: int) -> str:
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20}M"
    return f"{n // 1024}K" if n >= 1024 else str(n)


def heatmap(records: list[dict], path: Path, title: str, score: str = "exact") -> None:
    """Heatmap of depth (rows) x length (columns). For exact match each cell shows the share right,
    k/n and its 95% Wilson interval; cells whose key was in the last chunk (read by local attention,
    not memory) are hatched. ``score='digits'`` shows the mean digit accuracy instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    lengths = sorted({r["length"] for r in records})
    depths = sorted({r["depth"] for r in records})
    grid, notes, local = [], [], []
    for d in depths:
        row, note, loc = [], [], []
        for n in lengths:
            cell = [r for r in records if r["length"] == n and r["depth"] == d]
            if not cell:
                row.append(float("nan"))
                note.append("")
                loc.append(False)
                continue
            loc.append(not all(r.get("memory", True) for r in cell))
            if score == "exact":
                k = sum(bool(r["correct"]) for r in cell)
                lo, hi = wilson(k, len(cell))
                row.append(k / len(cell))
                note.append(f"{k}/{len(cell)}\n[{lo:.2f},{hi:.2f}]")
            else:
                value = sum(digit_accuracy(r["answer"], r["key"]) for r in cell) / len(cell)
                row.append(value)
                note.append(f"{value:.2f}")
        grid.append(row)
        notes.append(note)
        local.append(loc)
    fig, ax = plt.subplots(figsize=(1.5 * len(lengths) + 2.5, 0.75 * len(depths) + 1.8))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(lengths)), [_length_label(n) for n in lengths])
    ax.set_yticks(
        range(len(depths)), [f"{d:.0%}" + (" (local)" if any(local[y]) else "") for y, d in enumerate(depths)]
    )
    for y, note in enumerate(notes):
        for x, text in enumerate(note):
            ax.text(x, y, text, ha="center", va="center", fontsize=7)
            if local[y][x]:
                ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="//", alpha=0.3))
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("key depth")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)
    plt.close(fig)
