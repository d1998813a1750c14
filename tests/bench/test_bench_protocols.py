"""The official protocols: exact prompt strings against fixtures made by the upstream code itself
(``fixtures/official_prompts.json``, see its ``_how``), the repetition penalty reaching the local
model and an endpoint's request body, macro group means, the ECE bin count, shipped data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from longlore.bench import ecomqa
from longlore.bench.config import BenchConfig
from longlore.bench.data import benchmark_file, data_source, eckg_options, load_benchmark
from longlore.bench.pack import ORIGINS, SHIPPED_ROOT, verify_shipped
from longlore.bench.prompts import build_messages
from longlore.bench.runner import evaluate
from longlore.bench.scoring import group_summary, summarize
from longlore.bench.tasks import TASKS
from longlore.core.backends import GenerationRequest, HFTextModel, OpenAITextModel
from longlore.core.serve import serve_openai

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "official_prompts.json").read_text(encoding="utf-8"))


def test_eckgbench_official_two_shot_prompt_exactly() -> None:
    item = load_benchmark("eckgbench", "main")[0]
    expected = FIXTURES["eckgbench_main_id1"]
    assert item.provenance.source_id == expected["id"]
    messages, system = build_messages(TASKS["eckgbench/main"], item, shots=2)
    # One user turn holding the suffix, both fixed examples and the item, under the system prompt.
    assert messages == [{"role": "user", "content": expected["user_2shot"]}]
    assert system == expected["system"] == "直接输出答案。"
    assert build_messages(TASKS["eckgbench/main"], item, shots=0) == (
        [{"role": "user", "content": expected["user_0shot"]}],
        expected["system"],
    )
    # The knowledge boundary: the raw published question, no system prompt.
    assert build_messages(TASKS["eckgbench/main_boundary"], item, shots=0) == (
        [{"role": "user", "content": expected["user_0shot"]}],
        None,
    )
    # The echo rule's "choice" is the upstream split on '*选项*：'.
    assert eckg_options(item.question)[0] == expected["choice"]


def test_eckgbench_task_defaults_are_the_notebooks() -> None:
    gen, boundary = TASKS["eckgbench/main"], TASKS["eckgbench/main_boundary"]
    assert (gen.default_shots, gen.max_new_tokens, gen.repetition_penalty, gen.temperature, gen.chat) == (
        2,
        8,
        1.1,
        0.0,
        True,
    )
    assert (boundary.chat, boundary.n_samples, boundary.temperature, boundary.repetition_penalty) == (
        False,
        5,
        0.2,
        1.0,
    )


@pytest.mark.parametrize("split", ["element_en", "middle_zh"])
def test_conceptmath_official_five_shot_prompt_exactly(split: str) -> None:
    item = load_benchmark("conceptmath", split)[0]
    messages, system = build_messages(TASKS[f"conceptmath/{split}"], item, shots=5)
    assert messages == FIXTURES[f"conceptmath_{split}_line1"]["messages_5shot"]
    assert system is None and len(messages) == 11
    three, _ = build_messages(TASKS[f"conceptmath/{split}"], item, shots=3)
    assert three == messages[:6] + messages[-1:]  # k shots: the first k official pairs


def test_conceptmath_allows_at_most_five_shots(tiny: HFTextModel) -> None:
    from longlore.core.errors import LongloreError

    with pytest.raises(LongloreError, match="at most 5 shots"):
        evaluate(BenchConfig(tasks=["conceptmath/element_en"], limit=1, shots=6), model=tiny)


def test_chineseecomqa_official_judge_and_confidence_prompts_exactly() -> None:
    expected = FIXTURES["chineseecomqa_first_BC"]
    item = next(it for it in load_benchmark("chineseecomqa", "all") if it.provenance.line == expected["line"])
    assert ecomqa.judge_prompt(item.question, item.answers[0], expected["predicted_answer"]) == expected["judge"]
    assert ecomqa.judge_system() == "你是一个智能助手。"
    messages, system = build_messages(TASKS["chineseecomqa/calibration"], item)
    assert messages == [{"role": "user", "content": expected["confidence"]}]
    assert system == item.system_prompt


class _Recorder:
    """A TextModel that records the requests it gets and answers with fixed text."""

    model_id = "recorder"

    def __init__(self, inner: HFTextModel | None = None) -> None:
        self.inner, self.requests = inner, []

    def format_chat(self, prompt, system=None):
        return self.inner.format_chat(prompt, system) if self.inner else str(prompt)

    def generate(self, requests):
        self.requests.extend(requests)
        return [["润色"] * r.n for r in requests]


def test_repetition_penalty_reaches_the_local_model(tiny: HFTextModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict] = []
    original = tiny.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "generate", spy)
    evaluate(BenchConfig(tasks=["eckgbench/main"], limit=2), model=tiny)
    assert seen and all(kw["repetition_penalty"] == 1.1 for kw in seen)
    seen.clear()
    evaluate(BenchConfig(tasks=["eckgbench/main"], limit=2, repetition_penalty=1.0), model=tiny)
    assert seen and all("repetition_penalty" not in kw for kw in seen)
    seen.clear()
    evaluate(BenchConfig(tasks=["eckgbench/main_boundary"], limit=2), model=tiny)
    assert all("repetition_penalty" not in kw and kw["do_sample"] and kw["temperature"] == 0.2 for kw in seen)
    assert all(kw["num_return_sequences"] == 5 for kw in seen)
    # The penalty changes what the model says: greedy continuations differ with and without it.
    prompt = "a a a a a a a a"
    plain = tiny.generate([GenerationRequest(prompt, chat=False, max_new_tokens=12)])[0][0]
    penalised = tiny.generate([GenerationRequest(prompt, chat=False, max_new_tokens=12, repetition_penalty=5.0)])
    assert penalised[0][0] != plain


class _FiveSamples(_Recorder):
    def generate(self, requests):
        self.requests.extend(requests)
        return [["润色\n\n['调色', '润色', '隐形', '卸妆']", "润色", "x", "润色", "调色"] for _ in requests]


def test_boundary_requests_are_raw_and_samples_are_judged_whole() -> None:
    recorder = _FiveSamples()
    _, samples = evaluate(BenchConfig(tasks=["eckgbench/main_boundary"], limit=1, subset="first"), model=recorder)
    request = recorder.requests[0]
    assert (request.chat, request.system, request.n, request.temperature) == (False, None, 5, 0.2)
    assert request.prompt == load_benchmark("eckgbench", "main")[0].question
    # The first sample echoes the options after a blank line: wrong without the generation cut.
    assert samples["eckgbench/main_boundary"][0]["sample_verdicts"] == [False, True, False, True, False]


def test_repetition_penalty_reaches_the_endpoint_request_body(tiny: HFTextModel) -> None:
    recorder = _Recorder(tiny)
    server, url = serve_openai(recorder)
    try:
        endpoint = OpenAITextModel(url, "recorder")
        bodies: list[dict] = []
        post = endpoint._post
        endpoint._post = lambda route, payload: bodies.append(payload) or post(route, payload)  # type: ignore[method-assign]
        evaluate(BenchConfig(tasks=["eckgbench/main"], limit=2), model=endpoint)
    finally:
        server.shutdown()
    assert len(bodies) == 2 and all(b["repetition_penalty"] == 1.1 for b in bodies)
    assert all(b["messages"][0] == {"role": "system", "content": "直接输出答案。"} for b in bodies)
    # The server turned the body back into the same request.
    assert [r.repetition_penalty for r in recorder.requests] == [1.1, 1.1]
    plain = OpenAITextModel("http://127.0.0.1:9/v1", "m")
    captured: list[dict] = []
    plain._post = lambda route, payload: captured.append(payload) or {"choices": [{"message": {"content": ""}}]}  # type: ignore[method-assign]
    plain.generate([GenerationRequest("hi")])
    assert "repetition_penalty" not in captured[0]  # left out when off: plain OpenAI servers reject unknown fields


def test_group_average_is_the_macro_mean_over_unequal_subtasks() -> None:
    spec = TASKS["chineseecomqa/IC"]
    samples = {
        "chineseecomqa/IC": [{"item_id": "a", "concept": ["IC"], "correct": 1.0, "verdict": "correct"}],
        "chineseecomqa/BC": [
            {"item_id": str(i), "concept": ["BC"], "correct": 0.0, "verdict": "incorrect"} for i in range(3)
        ],
    }
    metrics = {t: summarize(spec, rows) for t, rows in samples.items()}
    group = group_summary(metrics, list(samples), {t: len(r) for t, r in samples.items()})
    assert group["acc,none"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2, not 1/4
    assert group["acc_micro,none"] == pytest.approx(0.25)
    assert group["n"] == 4


def test_ece_uses_ten_equal_bins() -> None:
    # 0.05 and 0.15 share a bin when there are 5 bins (ECE 0.4) but not with 10 (ECE 0.55).
    cal = ecomqa.calibration([0.05, 0.15], [True, False])
    assert cal["ece"] == pytest.approx(0.5 * 0.95 + 0.5 * 0.15)
    assert [(b["low"], b["high"]) for b in cal["bins"]] == [(0.0, 0.1), (0.1, pytest.approx(0.2))]
    spread = ecomqa.calibration([(i + 0.5) / 10 for i in range(10)] + [1.0], [True] * 11)
    assert len(spread["bins"]) == 10 and spread["bins"][-1]["n"] == 2  # 1.0 falls in the last bin


def test_shipped_data_matches_its_sources_record(bench_data: Path) -> None:
    checked = verify_shipped()
    assert set(checked) == set(ORIGINS) and len(checked) == 12
    assert checked["eckgbench/ECKGBench.jsonl"].startswith("4d9a687817feb27a")  # sha256 of the upstream file


def test_data_override_reads_plain_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LONGLORE_BENCH_DATA", raising=False)
    assert data_source().startswith("shipped with longlore")
    (tmp_path / "eckgbench").mkdir()
    shipped = benchmark_file(SHIPPED_ROOT, "eckgbench", "main")
    (tmp_path / "eckgbench" / "ECKGBench.jsonl").write_bytes(gzip.decompress(shipped.read_bytes()))
    monkeypatch.setenv("LONGLORE_BENCH_DATA", str(tmp_path))
    assert data_source() == f"{tmp_path} (from $LONGLORE_BENCH_DATA)"
    assert load_benchmark("eckgbench", "main") == load_benchmark("eckgbench", "main", root=SHIPPED_ROOT)
