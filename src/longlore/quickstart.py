"""``longlore quickstart``: the core demo, then every built system's small end-to-end demo.

Each system ``x`` with a ``longlore.x.quickstart`` module contributes ``run(out_dir) -> str``
(a Markdown section). A failing demo is recorded in the report and the run goes on; the command
exits non-zero at the end if any failed.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import time
import traceback
from pathlib import Path

from longlore.core.io import atomic_write_text
from longlore.core.progress import console

CORE_QUESTIONS = [
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("How many days are in a week?", ["7", "seven"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("Which planet do we live on?", ["Earth"]),
    ("What is the largest ocean on Earth?", ["Pacific"]),
    ("What do bees make?", ["honey"]),
    ("What is the opposite of hot?", ["cold"]),
]


def core_demo(out_dir: Path) -> str:
    """SmolLM2 through the core backend: short QA with metrics, then the same run from the cache."""
    from longlore.core.backends import GenerationRequest, load_text_model
    from longlore.core.metrics import bootstrap_ci, substring_match, token_f1

    cache = out_dir / "core_cache.sqlite"
    cache.unlink(missing_ok=True)
    model = load_text_model("smollm2-135m", cache=cache)
    requests = [GenerationRequest(q, system="Answer in a few words.", max_new_tokens=16) for q, _ in CORE_QUESTIONS]
    start = time.perf_counter()
    answers = [a[0] for a in model.generate(requests)]
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.generate(requests)
    second = time.perf_counter() - start
    em = [substring_match(a, g) for a, (_, g) in zip(answers, CORE_QUESTIONS)]
    f1 = [token_f1(a, g) for a, (_, g) in zip(answers, CORE_QUESTIONS)]
    mean, low, high = bootstrap_ci(em)
    rows = "\n".join(
        f"| {q} | {a.strip()[:60]} | {'/'.join(g)} | {int(e)} |" for (q, g), a, e in zip(CORE_QUESTIONS, answers, em)
    )
    return (
        f"## core: SmolLM2-135M-Instruct through the text-model interface\n\n"
        f"| question | answer (greedy) | gold | substring EM |\n|---|---|---|---|\n{rows}\n\n"
        f"Substring EM {mean:.2f} (95% bootstrap CI {low:.2f}-{high:.2f}), token F1 {sum(f1) / len(f1):.2f}. "
        f"First pass {first:.1f} s; the same requests again {second:.3f} s, all {model.hits} answered from the "
        f"SQLite request cache.\n"
    )


def run_quickstart(out_dir: Path, systems: list[str] | None = None) -> tuple[Path, list[str]]:
    """Run the demos; returns the report path and the names of demos that failed."""
    from longlore.cli import available_systems

    out_dir.mkdir(parents=True, exist_ok=True)
    built = [s for s in available_systems() if importlib.util.find_spec(f"longlore.{s}.quickstart")]
    chosen = ["core"] + [s for s in built if systems is None or s in systems]
    sections, failures, timings = [], [], []
    for index, name in enumerate(chosen, start=1):
        console.rule(f"[bold]quickstart {index}/{len(chosen)}: {name}")
        start = time.perf_counter()
        try:
            if name == "core":
                sections.append(core_demo(out_dir))
            else:
                system_dir = out_dir / name
                system_dir.mkdir(exist_ok=True)
                sections.append(importlib.import_module(f"longlore.{name}.quickstart").run(system_dir))
        except Exception as err:
            failures.append(name)
            detail = traceback.format_exc(limit=3)
            sections.append(f"## {name}: FAILED\n\n`{type(err).__name__}: {err}`\n\n```\n{detail}\n```\n")
            console.print(f"[red]{name} failed:[/red] {err}")
        timings.append((name, time.perf_counter() - start))
    header = (
        f"# longlore quickstart report\n\nMachine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}. Demos: {', '.join(chosen)}.\n\n| demo | seconds |\n|---|---|\n"
        + "".join(f"| {n} | {t:.1f} |\n" for n, t in timings)
        + "\n"
    )
    report = atomic_write_text(out_dir / "REPORT.md", header + "\n".join(sections), overwrite=True)
    return report, failures
