"""Runner, request cache, OpenAI endpoint, `bench score` and the CLI, on a tiny seeded model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from longlore.bench.cli import app
from longlore.bench.config import BenchConfig
from longlore.bench.data import benchmark_file
from longlore.bench.report import render_report, write_run
from longlore.bench.runner import evaluate, score_responses
from longlore.core.backends import CachedTextModel, HFTextModel, load_text_model
from longlore.core.errors import LongloreError
from longlore.core.io import read_text
from longlore.core.serve import serve_openai

TASKS = ["conceptmath/element_zh", "eckgbench/main", "eckgbench/main_mc"]


def _config(bench_data: Path, **kw) -> BenchConfig:
    base = dict(tasks=TASKS, model="tiny-llama", limit=6, max_new_tokens=12, data=str(bench_data))
    return BenchConfig(**{**base, **kw})


def _verdicts(samples: dict) -> dict:
    return {t: [(s["item_id"], s["response"], s["correct"]) for s in rows] for t, rows in samples.items()}


def test_results_identical_with_batch_1_and_8(tiny: HFTextModel, bench_data: Path) -> None:
    tiny.batch_size = 8
    res8, samples8 = evaluate(_config(bench_data), model=tiny)
    tiny.batch_size = 1
    res1, samples1 = evaluate(_config(bench_data, batch_size=1), model=tiny)
    tiny.batch_size = 8
    assert _verdicts(samples1) == _verdicts(samples8)
    flat = lambda rows: [lp for s in rows for lp in s["logprobs"]]
    assert flat(samples1["eckgbench/main_mc"]) == pytest.approx(flat(samples8["eckgbench/main_mc"]), abs=1e-4)
    assert res1["results"]["eckgbench/main"]["acc,none"] == res8["results"]["eckgbench/main"]["acc,none"]
    # lm-eval's shape.
    for key in ("results", "groups", "configs", "versions", "n-shot", "n-samples", "config", "higher_is_better"):
        assert key in res8
    assert res8["n-samples"]["eckgbench/main"] == {"original": 816, "effective": 6}
    assert res8["configs"]["eckgbench/main"]["max_new_tokens"] == 8


class _Interrupted(RuntimeError):
    pass


class _FailsOnSecondCall:
    """A backend that dies on its second generate call, like a run killed half-way."""

    def __init__(self, inner: HFTextModel) -> None:
        self.inner, self.model_id, self.calls = inner, inner.model_id, 0

    def format_chat(self, prompt, system=None):
        return self.inner.format_chat(prompt, system)

    def generate(self, requests):
        self.calls += 1
        if self.calls == 2:
            raise _Interrupted("killed")
        return self.inner.generate(requests)


def test_interrupted_run_resumes_from_the_request_cache(tiny: HFTextModel, bench_data: Path, tmp_path: Path) -> None:
    config = _config(bench_data, tasks=["eckgbench/main"], limit=40)
    cache = tmp_path / "cache.sqlite"
    with pytest.raises(_Interrupted):
        evaluate(config, model=CachedTextModel(_FailsOnSecondCall(tiny), cache))
    resumed = CachedTextModel(tiny, cache)
    _, samples = evaluate(config, model=resumed)
    assert (resumed.hits, resumed.misses) == (32, 8)  # the first chunk of 32 survived the crash
    _fresh_res, fresh = evaluate(config, model=tiny)
    assert _verdicts(samples) == _verdicts(fresh)


def test_openai_endpoint_as_model_and_as_judge(tiny: HFTextModel, bench_data: Path) -> None:
    server, url = serve_openai(tiny)
    try:
        endpoint = load_text_model(f"openai:tiny-llama@{url}")
        config = _config(
            bench_data, tasks=["eckgbench/main", "chineseecomqa/BC"], limit=3, judge=f"openai:tiny-llama@{url}"
        )
        res, samples = evaluate(config, model=endpoint, judge=endpoint)
        _, direct = evaluate(_config(bench_data, tasks=["eckgbench/main"], limit=3), model=tiny)
    finally:
        server.shutdown()
    # The server applies the same chat template: same greedy responses as the local model.
    assert [s["response"] for s in samples["eckgbench/main"]] == [s["response"] for s in direct["eckgbench/main"]]
    bc = res["results"]["chineseecomqa/BC"]
    assert res["config"]["ecomqa_grader"].startswith("judge:openai:tiny-llama@")
    # A random tiny judge gives no A/B/C: every reply is counted as not attempted and listed.
    judged = samples["chineseecomqa/BC"]
    unparsed = [s["item_id"] for s in judged if not s["judge_parsed"]]
    assert bc["unparsed_judge_replies"] == unparsed
    assert all(s["verdict"] == "not_attempted" for s in judged if not s["judge_parsed"])
    assert bc["not_attempted,none"] >= len(unparsed) / 3
    assert all("judge_reply" in s and "extracted" in s for s in judged)


def test_score_responses_file(bench_data: Path, tmp_path: Path) -> None:
    lines = read_text(benchmark_file(bench_data, "conceptmath", "element_en")).splitlines()[:5]
    records = [json.loads(line) for line in lines]
    for i, rec in enumerate(records):
        rec["response"] = f"Therefore, the answer is {rec['answer']}." if i else "I am not sure."
    path = tmp_path / "responses.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    res, samples = score_responses("conceptmath/element_en", path, BenchConfig(tasks=["conceptmath/element_en"]))
    assert res["results"]["conceptmath/element_en"]["acc,none"] == pytest.approx(0.8)
    assert [s["correct"] for s in samples["conceptmath/element_en"]] == [0.0, 1.0, 1.0, 1.0, 1.0]
    # The same file without `response` is rejected with the line and the fix.
    bare = tmp_path / "bare.jsonl"
    bare.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LongloreError, match=r"bare.jsonl:1: field 'response' missing"):
        score_responses("conceptmath/element_en", bare, BenchConfig(tasks=["conceptmath/element_en"]))


def test_unknown_task_lists_valid_names(bench_data: Path) -> None:
    with pytest.raises(LongloreError, match=r"unknown task 'conceptmath/elem'.*conceptmath/element_en"):
        evaluate(_config(bench_data, tasks=["conceptmath/elem"]), model=object())
    with pytest.raises(LongloreError, match="at most 2 shots"):
        evaluate(_config(bench_data, tasks=["eckgbench/main"], shots=3), model=object())


def test_cli_run_score_report_list(bench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGLORE_BENCH_DATA", str(bench_data))
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", "--task", "eckgbench/main", "--model", "tiny-llama", "--limit", "3", "--shots", "2", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["n-shot"]["eckgbench/main"] == 2
    assert (out / "samples_eckgbench__main.jsonl").exists() and (out / "cache.sqlite").exists()
    assert "## Summary" in (out / "report.md").read_text(encoding="utf-8")
    # Existing results are not replaced silently.
    again = runner.invoke(app, ["run", "--task", "eckgbench/main", "--model", "tiny-llama", "--out", str(out)])
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)
    (out / "report.md").unlink()
    assert runner.invoke(app, ["report", str(out / "results.json")]).exit_code == 0
    assert (out / "report.md").exists()
    listing = runner.invoke(app, ["list"])
    assert listing.exit_code == 0 and "conceptmath/element_en" in listing.output and "786" in listing.output


def test_report_renders_concept_tree_and_groups(bench_data: Path, tiny: HFTextModel, tmp_path: Path) -> None:
    res, samples = evaluate(
        _config(bench_data, tasks=["chineseecomqa"], limit=1, max_new_tokens=4, fallback_grader=True), model=tiny
    )
    group = res["groups"]["chineseecomqa"]
    accs = [res["results"][t]["acc,none"] for t in res["group_subtasks"]["chineseecomqa"]]
    assert group["subtasks"] == 10 and group["acc,none"] == pytest.approx(sum(accs) / 10)
    text = render_report(res)
    assert "| chineseecomqa | 10 | 10 |" in text and "fallback:normalised-match (judge-free; not the official" in text
    write_run(tmp_path, res, samples)
    assert (tmp_path / "summary.png").exists()


class _ScriptedJudge:
    """A judge whose replies are fixed: a letter, a Chinese label, chatter and garbage."""

    model_id = "scripted"
    replies: ClassVar[list[str]] = ["A", "【错误】", "I think the answer is wrong, C.", "garbage ???"]

    def generate(self, requests):
        return [[self.replies[i % 4]] for i in range(len(requests))]


def test_judge_verdicts_and_unparsed_replies(bench_data: Path) -> None:
    from longlore.bench.data import load_benchmark
    from longlore.bench.runner import Grader
    from longlore.bench.tasks import TASKS

    items = [it for it in load_benchmark("chineseecomqa", "all", bench_data) if it.concept[0] == "BC"][:4]
    graded = Grader(BenchConfig(tasks=["chineseecomqa/BC"], judge_parser="robust"), _ScriptedJudge()).grade(
        TASKS["chineseecomqa/BC"], items, ["x"] * 4
    )
    assert [g["verdict"] for g in graded] == ["correct", "incorrect", "not_attempted", "not_attempted"]
    assert [g["judge_parsed"] for g in graded] == [True, True, True, False]
    from longlore.bench.scoring import summarize

    samples = [{"item_id": it.id, "concept": it.concept, **g} for it, g in zip(items, graded)]
    metrics = summarize(TASKS["chineseecomqa/BC"], samples)
    assert metrics["acc,none"] == 0.25 and metrics["not_attempted,none"] == 0.5
    assert metrics["accuracy_given_attempted,none"] == 0.5
    assert metrics["unparsed_judge_replies"] == [items[3].id]


def test_seeded_subsets_are_nested_and_first_takes_the_head(bench_data: Path) -> None:
    from longlore.bench.data import load_benchmark
    from longlore.bench.runner import select_items
    from longlore.bench.tasks import TASKS

    spec = TASKS["eckgbench/main"]
    items = load_benchmark("eckgbench", "main", bench_data)
    small = {it.id for it in select_items(spec, items, 10, "seeded", 0)}
    large = [it.id for it in select_items(spec, items, 30, "seeded", 0)]
    assert small < set(large) and len(large) == 30
    assert large == sorted(large, key=[it.id for it in items].index)  # file order kept
    assert small != {it.id for it in select_items(spec, items, 10, "seeded", 1)}
    assert [it.id for it in select_items(spec, items, 3, "first", 0)] == [it.id for it in items[:3]]


def test_calibration_task_runs_and_reports(bench_data: Path, tiny: HFTextModel, tmp_path: Path) -> None:
    res, samples = evaluate(
        _config(bench_data, tasks=["chineseecomqa/calibration"], limit=3, max_new_tokens=6, fallback_grader=True),
        model=tiny,
    )
    metrics = res["results"]["chineseecomqa/calibration"]
    rows = samples["chineseecomqa/calibration"]
    assert {r["concept"][0] for r in rows} <= {"CC", "BC"} and len(rows) == 3
    assert all("confidence" in r and "extracted" in r for r in rows)
    rated = [r for r in rows if r["confidence"] is not None]
    assert metrics["n_with_confidence"] == len(rated)
    assert (metrics["ece,none"] is None) == (not rated)
    write_run(tmp_path, res, samples, samples_dir=tmp_path / "elsewhere")
    assert (tmp_path / "chineseecomqa__calibration_reliability.png").exists()
    assert (tmp_path / "elsewhere" / "samples_chineseecomqa__calibration.jsonl").exists()
    assert not list(tmp_path.glob("samples_*.jsonl"))
