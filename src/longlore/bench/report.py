"""Writing a run: ``results.json`` (lm-eval shape), ``samples_<task>.jsonl``, ``report.md``, plots.

The Markdown report holds a summary table with bootstrap 95% intervals, group averages, each
task's concept tree (every level weakest first), the ChineseEcomQA grading breakdown with the
judge replies that could not be parsed, the ECKGBench knowledge-boundary buckets and the
reliability diagram of the calibration task. ``render_report(results)`` needs only the results
JSON, so ``longlore bench report`` can re-render an old run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longlore.core.io import atomic_write_text, save_figure, write_json, write_jsonl

PRIMARY = ("acc", "hit_rate", "ece")


def task_file_stem(task: str) -> str:
    return task.replace("/", "__")


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _primary(metrics: dict[str, Any]) -> tuple[str, float, list[float] | None]:
    for name in PRIMARY:
        if metrics.get(f"{name},none") is not None:
            return name, metrics[f"{name},none"], metrics.get(f"{name}_ci95,none")
    return "-", float("nan"), None


def _tree_lines(rows_by_level: dict[str, list[dict[str, Any]]], max_leaves: int | None) -> list[str]:
    """Nested Markdown list: each level's children under their parent, weakest first."""
    levels = list(rows_by_level)
    lines: list[str] = []

    def children(level: int, parent: list[str]) -> None:
        if level >= len(levels):
            return
        rows = [r for r in rows_by_level[levels[level]] if r["path"][:-1] == parent]
        shown = rows if (max_leaves is None or level < len(levels) - 1) else rows[:max_leaves]
        for row in shown:
            lines.append(f"{'  ' * level}- {row['path'][-1]}: {row['acc']:.3f} (n={row['n']})")
            children(level + 1, row["path"])
        if len(shown) < len(rows):
            lines.append(f"{'  ' * level}- ... {len(rows) - len(shown)} stronger concepts omitted")

    children(0, [])
    return lines


def render_report(results: dict[str, Any], plots: dict[str, str] | None = None, max_leaves: int | None = None) -> str:
    """The Markdown report of one results JSON."""
    cfg = results.get("config", {})
    out = [
        f"# longlore bench report: {results.get('model_id', cfg.get('model', '?'))}",
        "",
        f"- date: {results.get('date', '?')}; machine: {results.get('machine', {}).get('platform', '?')}",
        f"- tasks: {', '.join(results['results'])}",
        f"- limit: {cfg.get('limit')} ({cfg.get('subset')}, seed {cfg.get('seed')}); "
        f"scoring: {cfg.get('scoring')}; ChineseEcomQA grader: {cfg.get('ecomqa_grader')}",
        f"- evaluation time: {results.get('total_evaluation_time_seconds')} s; "
        f"request cache: {results.get('request_cache', 'off')}",
        "",
    ]
    if cfg.get("command"):
        out += [f"Command: `{cfg['command']}`", ""]
    out += ["## Summary", "", "| task | n | shots | metric | value | 95% CI |", "|---|---|---|---|---|---|"]
    for task, metrics in results["results"].items():
        name, value, ci = _primary(metrics)
        ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
        n = results["n-samples"][task]
        out.append(
            f"| {task} | {n['effective']}/{n['original']} | {results['n-shot'][task]} | {name} | "
            f"{value:.4f} | {ci_text} |"
        )
    if results.get("groups"):
        out += [
            "",
            "## Groups",
            "",
            "| group | subtasks | n | acc (unweighted mean) | acc (micro) |",
            "|---|---|---|---|---|",
        ]
        for group, g in results["groups"].items():
            out.append(f"| {group} | {g['subtasks']} | {g['n']} | {g['acc,none']:.4f} | {g['acc_micro,none']:.4f} |")
    for task, metrics in results["results"].items():
        out += ["", f"## {task}", ""]
        extras = {
            k: v
            for k, v in metrics.items()
            if k not in ("alias", "reliability_bins", "unparsed_judge_replies") and "_ci95" not in k
        }
        out.append(", ".join(f"{k.replace(',none', '')}={_fmt(v)}" for k, v in extras.items()))
        unparsed = metrics.get("unparsed_judge_replies")
        if unparsed is not None:
            out += [
                "",
                f"Judge replies not parsed (counted as not attempted): {len(unparsed)}"
                + (f": {', '.join(unparsed[:50])}" if unparsed else ""),
            ]
        tree = results.get("concepts", {}).get(task)
        if tree:
            out += ["", "Concepts (weakest first at every level):", ""] + _tree_lines(tree, max_leaves)
        if plots and task in plots:
            out += ["", f"![{task}]({plots[task]})"]
    if plots and "summary" in plots:
        out += ["", "## Plot", "", f"![summary]({plots['summary']})"]
    return "\n".join(out) + "\n"


def make_plots(results: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Summary bar chart with CIs, weakest-leaf-concept charts and reliability diagrams."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    rows = [(t, *_primary(m)) for t, m in results["results"].items() if _primary(m)[0] != "ece"]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
        values = [r[2] for r in rows]
        err = [
            [max(r[2] - r[3][0], 0) if r[3] else 0 for r in rows],
            [max(r[3][1] - r[2], 0) if r[3] else 0 for r in rows],
        ]
        ax.barh([r[0] for r in rows], values, xerr=err, color="#4c72b0")
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy / hit-rate (95% bootstrap CI)")
        ax.invert_yaxis()
        fig.tight_layout()
        save_figure(fig, out_dir / "summary.png")
        plt.close(fig)
        plots["summary"] = "summary.png"
    for task, metrics in results["results"].items():
        stem = task_file_stem(task)
        if "reliability_bins" in metrics:
            bins = metrics["reliability_bins"]
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.plot([0, 1], [0, 1], "--", color="gray")
            ax.bar(
                [(b["low"] + b["high"]) / 2 for b in bins],
                [b["accuracy"] for b in bins],
                width=0.09,
                color="#dd8452",
                label="accuracy",
            )
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="black")
            ax.set_xlabel("stated confidence")
            ax.set_ylabel("accuracy")
            ece = metrics["ece,none"]
            ax.set_title(
                f"ECE = {ece:.3f} (n={metrics['n_with_confidence']})"
                if ece is not None
                else "no stated confidence parsed"
            )
            fig.tight_layout()
            save_figure(fig, out_dir / f"{stem}_reliability.png")
            plt.close(fig)
            plots[task] = f"{stem}_reliability.png"
            continue
        tree = results.get("concepts", {}).get(task) or {}
        if len(tree) < 2:
            continue
        leaves = list(tree.values())[-1][:15]
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(leaves) + 1.2))
        ax.barh([r["path"][-1][:40] for r in leaves], [r["acc"] for r in leaves], color="#55a868")
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(f"{task}: weakest concepts")
        fig.tight_layout()
        save_figure(fig, out_dir / f"{stem}_concepts.png")
        plt.close(fig)
        plots[task] = f"{stem}_concepts.png"
    return plots


def write_run(
    out_dir: str | Path,
    results: dict[str, Any],
    samples: dict[str, list[dict[str, Any]]],
    overwrite: bool = False,
    plots: bool = True,
    samples_dir: str | Path | None = None,
) -> Path:
    """Write results.json, one samples JSONL per task, the plots and report.md into ``out_dir``.

    ``samples_dir`` puts the samples elsewhere: they quote benchmark items (prompts, golds), so a
    run recorded inside a repository keeps them out of it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", results, overwrite=overwrite)
    sample_root = Path(samples_dir) if samples_dir else out_dir
    sample_root.mkdir(parents=True, exist_ok=True)
    for task, rows in samples.items():
        write_jsonl(sample_root / f"samples_{task_file_stem(task)}.jsonl", rows, overwrite=overwrite)
    figures = make_plots(results, out_dir) if plots else {}
    atomic_write_text(out_dir / "report.md", render_report(results, figures), overwrite=overwrite)
    return out_dir
