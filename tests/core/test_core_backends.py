import httpx
import pytest
import torch

from longlore.core.backends import (
    CachedTextModel,
    GenerationRequest,
    HFTextModel,
    LoglikelihoodRequest,
    OpenAITextModel,
    load_text_model,
    parse_endpoint,
    truncate_at_stop,
)
from longlore.core.errors import LongloreError
from longlore.core.serve import serve_openai

PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "1, 2, 3, 4,",
    "The opposite of hot is",
    "Water boils at",
    "My favourite colour is",
    "The first month of the year is",
    "Dogs like to",
    "In the beginning God created",
]


@pytest.fixture(scope="module")
def tiny() -> HFTextModel:
    return HFTextModel.from_spec("tiny-llama", batch_size=4)


def test_greedy_identical_for_batch_1_and_8(smollm2) -> None:
    requests = [GenerationRequest(p, chat=False, max_new_tokens=12) for p in PROMPTS]
    smollm2.batch_size = 1
    one = smollm2.generate(requests)
    smollm2.batch_size = 8
    eight = smollm2.generate(requests)
    assert one == eight
    assert len({c[0] for c in one}) > 5  # real, distinct completions


def test_chat_requests_and_stop_strings(smollm2) -> None:
    chat = smollm2.generate([GenerationRequest("What is the capital of France? One word.", max_new_tokens=10)])[0][0]
    assert "Paris" in chat
    stopped = smollm2.generate([GenerationRequest("1, 2, 3, 4,", chat=False, max_new_tokens=20, stop=(" 7",))])[0][0]
    assert " 7" not in stopped and "5" in stopped
    assert truncate_at_stop("a b STOP c END", ["END", "STOP"]) == "a b "


def test_sampling_n_and_seed(tiny) -> None:
    request = GenerationRequest("hello", chat=False, max_new_tokens=6, temperature=1.0, n=3, seed=5)
    first, second = tiny.generate([request])[0], tiny.generate([request])[0]
    assert len(first) == 3 and first == second


def test_loglikelihood_matches_manual_computation(tiny) -> None:
    context, continuation = "In the beginning", " God created"
    score, greedy = tiny.loglikelihood([LoglikelihoodRequest(context, continuation)])[0]
    ctx = tiny.tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = tiny.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(input_ids=torch.tensor([ctx + cont])).logits[0], -1)
    manual = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
    assert score == pytest.approx(manual, abs=1e-4)
    argmax = [logp[len(ctx) - 1 + i].argmax().item() for i in range(len(cont))]
    assert greedy == (argmax == cont)
    # batched scoring of ragged pairs equals one-by-one scoring
    pairs = [LoglikelihoodRequest(p, " and then") for p in PROMPTS]
    batched = tiny.loglikelihood(pairs)
    single = [tiny.loglikelihood([p])[0] for p in pairs]
    assert [b[0] for b in batched] == pytest.approx([s[0] for s in single], abs=1e-4)


class CountingModel:
    """Wraps a TextModel and counts what reaches it; can fail after some calls (an interruption)."""

    def __init__(self, inner, fail_after: int | None = None) -> None:
        self.inner, self.model_id, self.calls, self.seen, self.fail_after = inner, inner.model_id, 0, 0, fail_after

    def generate(self, requests):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.seen += len(requests)
        return self.inner.generate(requests)

    def loglikelihood(self, requests):
        self.seen += len(requests)
        return self.inner.loglikelihood(requests)

    def format_chat(self, prompt, system=None):
        return self.inner.format_chat(prompt, system)


def test_cache_answers_second_run_and_resumes(tiny, tmp_path) -> None:
    requests = [GenerationRequest(p, chat=False, max_new_tokens=5) for p in PROMPTS]
    interrupted = CachedTextModel(CountingModel(tiny, fail_after=1), tmp_path / "c.sqlite", flush_every=4)
    with pytest.raises(KeyboardInterrupt):
        interrupted.generate(requests)  # first chunk of 4 is committed, then the run dies
    counting = CountingModel(tiny)
    resumed = CachedTextModel(counting, tmp_path / "c.sqlite", flush_every=4)
    first = resumed.generate(requests)
    assert counting.seen == len(PROMPTS) - 4 and resumed.hits == 4
    again = CachedTextModel(counting, tmp_path / "c.sqlite")
    assert again.generate(requests) == first == tiny.generate(requests)
    assert counting.seen == len(PROMPTS) - 4 and again.hits == len(PROMPTS) and again.misses == 0
    lls = [LoglikelihoodRequest("a", " b"), LoglikelihoodRequest("a", " b")]
    assert again.loglikelihood(lls) == again.loglikelihood(lls) == tiny.loglikelihood(lls)
    other = CachedTextModel(CountingModel(HFTextModel.from_spec("tiny-llama:seed=1")), tmp_path / "c.sqlite")
    other.inner.model_id = "tiny-llama:seed=1"
    other.generate(requests[:2])
    assert other.misses == 2  # the model id is part of the key


def test_openai_backend_against_local_server(tiny) -> None:
    server, url = serve_openai(tiny, api_key="sekret")
    try:
        client = OpenAITextModel(url, "tiny", api_key="sekret", concurrency=3)
        requests = [GenerationRequest(p, chat=False, max_new_tokens=6, stop=("\n",)) for p in PROMPTS]
        requests.append(GenerationRequest("hi", system="be brief", max_new_tokens=6))
        assert client.generate(requests) == tiny.generate(requests)
        pairs = [LoglikelihoodRequest("In the beginning", " God created"), LoglikelihoodRequest("Once upon", " a time")]
        for (remote, remote_greedy), (local, local_greedy) in zip(
            client.loglikelihood(pairs), tiny.loglikelihood(pairs)
        ):
            assert remote == pytest.approx(local, abs=1e-4) and remote_greedy == local_greedy
        wrong_key = OpenAITextModel(url, "tiny", api_key="nope", max_retries=0)
        with pytest.raises(LongloreError, match="HTTP 401"):
            wrong_key.generate([GenerationRequest("x", chat=False, max_new_tokens=2)])
        assert (
            httpx.get(f"{url}/models", headers={"Authorization": "Bearer sekret"}).json()["data"][0]["id"]
            == "tiny-llama"
        )
    finally:
        server.shutdown()


def test_endpoint_without_echo_logprobs_gives_clear_error() -> None:
    class GenerateOnly:
        model_id = "gen-only"

        def generate(self, requests):
            return [["ok"] * r.n for r in requests]

    server, url = serve_openai(GenerateOnly())
    try:
        client = OpenAITextModel(url, "m", max_retries=0)
        assert client.generate([GenerationRequest("x", chat=False)]) == [["ok"]]
        with pytest.raises(LongloreError, match="refused the request|no prompt log-probs"):
            client.loglikelihood([LoglikelihoodRequest("a", " b")])
    finally:
        server.shutdown()


def test_unreachable_endpoint_is_one_line_error() -> None:
    client = OpenAITextModel("http://127.0.0.1:9/v1", "m", max_retries=2, backoff=0.01)
    with pytest.raises(LongloreError, match=r"unreachable after 3 tries .*check that the server is running") as info:
        client.generate([GenerationRequest("x")])
    assert "\n" not in str(info.value)


def test_endpoint_spec_parsing(monkeypatch) -> None:
    assert parse_endpoint("openai:qwen@http://h:8000/v1") == ("qwen", "http://h:8000/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.example.com/v1")
    assert parse_endpoint("openai:gpt") == ("gpt", "https://api.example.com/v1")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(LongloreError, match="expected openai:MODEL@http"):
        load_text_model("openai:gpt")


def test_server_reports_finish_reason_and_usage(tiny) -> None:
    server, url = serve_openai(tiny)
    try:
        prompt = "Once upon a time"
        n_prompt = len(tiny.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        body = {"model": "m", "prompt": prompt, "max_tokens": 3, "temperature": 0}
        out = httpx.post(f"{url}/completions", json=body).json()
        assert out["choices"][0]["finish_reason"] == "length"  # the token limit stopped it
        assert out["usage"] == {"prompt_tokens": n_prompt, "completion_tokens": 3, "total_tokens": n_prompt + 3}
        # a stop string met before the limit: "stop", fewer tokens, text cut before the stop string
        long = tiny.generate_detailed([GenerationRequest(prompt, chat=False, max_new_tokens=8)])[0][0]
        ids = tiny.tokenizer(long.text, add_special_tokens=False)["input_ids"]
        stop = tiny.tokenizer.decode(ids[1:2])
        out = httpx.post(f"{url}/completions", json={**body, "max_tokens": 8, "stop": [stop]}).json()
        choice = out["choices"][0]
        assert choice["finish_reason"] == "stop" and stop not in choice["text"]
        assert 1 <= out["usage"]["completion_tokens"] < 8
        chat = httpx.post(
            f"{url}/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "n": 2, "temperature": 1.0},
        ).json()
        assert [c["finish_reason"] for c in chat["choices"]] == ["length", "length"]
        assert chat["usage"]["completion_tokens"] == 4
    finally:
        server.shutdown()
