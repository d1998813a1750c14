"""End-to-end latency and time-to-first-token: RAM vs the full-context decoder, side by side.

Both run the same backbone (SmolLM2-135M-Instruct weights; RAM's encoder is its first 8 layers)
on the same machine in one process, alternating per length. End-to-end = compression + prefill +
``new_tokens`` greedy tokens (EOS ignored so both decode the same number of tokens).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from longlore.core.io import save_figure, write_json
from longlore.core.progress import console
from longlore.core.text import public_domain_text


def _context_of(tokenizer: Any, n_tokens: int) -> str:
    ids = tokenizer(public_domain_text()[: n_tokens * 6], add_special_tokens=False)["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


@torch.no_grad()
def _time(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def measure(ram: Any, context: str, question: str, keep_ratio: float, new_tokens: int) -> dict[str, float]:
    """Seconds for: RAM compression, RAM TTFT / end-to-end, full-context TTFT / end-to-end."""
    embed = ram.decoder.get_input_embeddings()
    tok = ram.tokenizer
    compressed: dict[str, Any] = {}

    def compress() -> None:
        compressed["c"] = ram.compress(context, question, keep_ratio=keep_ratio)

    def full_prompt() -> torch.Tensor:
        ids = tok(context, add_special_tokens=False)["input_ids"]
        return embed(torch.tensor(ids + ram.question_ids(question)))

    t_compress = _time(compress)
    ram_prompt = ram.prompt_embeddings(compressed["c"], question)
    ram_first = _time(lambda: ram.generate_from_embeddings([ram_prompt], max_new_tokens=1, ignore_eos=True))
    ram_all = _time(lambda: ram.generate_from_embeddings([ram_prompt], max_new_tokens=new_tokens, ignore_eos=True))
    prompt = full_prompt()
    full_first = _time(lambda: ram.generate_from_embeddings([prompt], max_new_tokens=1, ignore_eos=True))
    full_all = _time(lambda: ram.generate_from_embeddings([prompt], max_new_tokens=new_tokens, ignore_eos=True))
    return {
        "ram_compress_s": t_compress,
        "ram_ttft_s": t_compress + ram_first,
        "ram_e2e_s": t_compress + ram_all,
        "full_ttft_s": full_first,
        "full_e2e_s": full_all,
        "compressed_length": compressed["c"].compressed_length,
        "original_tokens": compressed["c"].original_tokens,
    }


def run_speed_benchmark(
    lengths: list[int],
    keep_ratio: float,
    out: str | Path,
    new_tokens: int = 32,
    model: str = "smollm2-135m",
    device: str = "cpu",
    dtype: str = "float32",
    ram_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Measure every length (resuming from ``out`` if it holds some already); write JSON + plot.

    Speed depends on the architecture, not on trained weights: by default the RAM is the paper's
    form with ``RAMConfig`` defaults (no LoRA: unmerged adapters would add their own matmuls);
    ``ram_dir`` measures a saved one instead."""
    from longlore.core.models import load_causal_lm
    from longlore.ram.config import RAMConfig
    from longlore.ram.model import RAMModel

    out = Path(out)
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    rows = {int(r["length"]): r for r in results.get("rows", [])}
    torch.manual_seed(0)
    decoder, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
    decoder.config.max_position_embeddings = max(lengths) + 1024  # timing only: rope extrapolates numerically
    if ram_dir is not None:
        ram = RAMModel.from_pretrained(decoder, tokenizer, ram_dir).eval()
        ram.config.max_doc_tokens = max(lengths)
    else:
        ram = RAMModel(decoder, tokenizer, RAMConfig(keep_ratio=keep_ratio, max_doc_tokens=max(lengths))).eval()
    question = "What is the registration code of Lumora?"
    measure(ram, _context_of(tokenizer, 256), question, keep_ratio, 2)  # warm-up: first calls pay one-off costs
    for length in lengths:
        if length in rows:
            continue
        console.print(f"[bold]length {length}[/bold] ...")
        row = {"length": length, **measure(ram, _context_of(tokenizer, length), question, keep_ratio, new_tokens)}
        row["speedup_e2e"] = row["full_e2e_s"] / row["ram_e2e_s"]
        row["speedup_ttft"] = row["full_ttft_s"] / row["ram_ttft_s"]
        rows[length] = row
        console.print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
        results = {
            "benchmark": "ram_speed",
            "model": model,
            "ram": str(ram_dir) if ram_dir else "untrained RAMConfig(keep_ratio)",
            "ram_config": ram.config.to_dict(),
            "keep_ratio": keep_ratio,
            "new_tokens": new_tokens,
            "command": f"longlore ram bench --lengths {','.join(map(str, lengths))} --keep-ratio {keep_ratio}",
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
            },
            "seed": 0,
            "note": "one run; both methods measured side by side per length, same process",
            "rows": [rows[k] for k in sorted(rows)],
        }
        write_json(out, results, overwrite=True)  # after every length: a stopped run resumes
    _plot(results, out.with_suffix(".png"))
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    lengths = [r["length"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lengths, [r["full_e2e_s"] for r in rows], "o-", label="full context, end-to-end")
    ax.plot(
        lengths,
        [r["ram_e2e_s"] for r in rows],
        "o-",
        label=f"RAM (keep 1/{1 / results['keep_ratio']:.0f} of segments), end-to-end",
    )
    ax.plot(lengths, [r["full_ttft_s"] for r in rows], "x--", label="full context, TTFT")
    ax.plot(lengths, [r["ram_ttft_s"] for r in rows], "x--", label="RAM, TTFT")
    for r in rows:
        ax.annotate(
            f"{r['speedup_e2e']:.1f}x", (r["length"], r["ram_e2e_s"]), textcoords="offset points", xytext=(0, -12)
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context tokens")
    ax.set_ylabel("seconds")
    ax.set_title(f"RAM vs full context, {results['model']}, {results['new_tokens']} new tokens")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)
