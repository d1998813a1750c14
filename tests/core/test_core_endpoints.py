"""Several endpoints as one text model, against two real `longlore serve` processes on 127.0.0.1:
results equal one local model's, requests are spread, and one endpoint dying mid-run loses nothing."""

from __future__ import annotations

import os

import pytest

from longlore.core.backends import GenerationRequest, HFTextModel, LoglikelihoodRequest, load_text_model
from longlore.core.endpoints import MultiEndpointTextModel
from longlore.core.errors import LongloreError
from longlore.core.serve import launch_server

WORDS = ["start", "end", "middle", "moral", "hero", "name"]
PROMPTS = [f"Item {i}: the {w} of the story is" for i, w in enumerate(WORDS)] * 3


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    folder = tmp_path_factory.mktemp("serve")
    processes, urls = [], []
    try:
        for i in range(2):
            process, url = launch_server("tiny-llama", extra_args=["--device", "cpu"], log_path=folder / f"{i}.log")
            processes.append(process)
            urls.append(url)
        yield processes, urls
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)


def test_recgpt_llm_stages_over_two_endpoints_equal_one_endpoint(two_servers) -> None:
    """(Runs before the test that kills a server: tests in a file run in order.) RecGPT's three LLM stages (interests, tags, explanations) as batch jobs against
    ``openai:M@U1,U2``: every reply (greedy first attempts and seeded sampled retries) equals the
    one-endpoint run's, and both endpoints served requests. Tags and explanations get hand-made
    upstream records, since a random tiny model's interests never validate."""
    from dataclasses import fields

    from longlore.recgpt.config import RecGPTConfig
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import StageOutcome
    from longlore.recgpt.mining import explain_top_items, predict_tags, run_interest_and_tags

    _, urls = two_servers
    settings = dict(
        interest_tokens=10,
        tag_tokens=10,
        explain_tokens=10,
        max_retries=1,
        history_token_budget=60,
        llm_batch=4,
        prefill=False,  # an endpoint cannot continue a pre-filled reply
        structured=False,  # `longlore serve` stands in for vLLM without a JSON-schema decoder
    )
    known = {f.name for f in fields(RecGPTConfig)}
    config = RecGPTConfig(**{k: v for k, v in settings.items() if k in known})
    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    users = sorted(split.train, key=int)[:4]
    interests = {u: StageOutcome(ok=True, records=[{"interest": "space adventure movies"}]) for u in users}
    mined = {u: {"interests": [{"interest": "space adventure movies"}], "tags": []} for u in users}
    top_items = {u: [{"item_id": item, "tag": None} for item in list(data.items)[:2]] for u in users}

    def replies(spec: str) -> tuple[dict, list[int]]:
        model = load_text_model(spec, concurrency=2)
        stages = run_interest_and_tags(model, data, split.train, users, config)
        tags = predict_tags(model, data, split.train, interests, config)
        _, explained = explain_top_items(model, data, mined, top_items, config)
        out = {
            "interests": {u: stages["interests"][u].raw for u in users},
            "tags": {u: tags[u].raw for u in users},
            "explanations": {u: explained[u].raw for u in users},
        }
        return out, list(getattr(model, "served", [len(users)]))

    one, _ = replies(f"openai:tiny-llama@{urls[0]}")
    two, served = replies(f"openai:tiny-llama@{urls[0]},{urls[1]}")
    assert all(one[stage][u] for stage in one for u in users)  # every stage asked every user
    assert two == one
    assert len(served) == 2 and min(served) > 0


def test_two_endpoints_equal_one_local_model_and_survive_one_dying(two_servers) -> None:
    processes, urls = two_servers
    local = HFTextModel.from_spec("tiny-llama", batch_size=4)
    requests = [GenerationRequest(p, chat=False, max_new_tokens=5) for p in PROMPTS]
    expected = local.generate(requests)

    both = load_text_model(f"openai:tiny-llama@{urls[0]},{urls[1]}", concurrency=2)
    assert isinstance(both, MultiEndpointTextModel)
    assert both.generate(requests) == expected
    assert min(both.served) > 0 and sum(both.served) == len(requests)  # spread over both
    pairs = [LoglikelihoodRequest("Once upon", " a time"), LoglikelihoodRequest("In the", " beginning")]
    for (remote, _), (mine, _) in zip(both.loglikelihood(pairs), local.loglikelihood(pairs)):
        assert remote == pytest.approx(mine, abs=1e-4)

    # endpoint 1 dies after the third answer, with requests in flight on it
    answered: list[int] = []

    def kill_second(index: int) -> None:
        answered.append(index)
        if len(answered) == 3:
            processes[1].kill()

    dying = MultiEndpointTextModel(urls, "tiny-llama", concurrency=2, backoff=0.05, on_result=kill_second)
    assert dying.generate(requests) == expected  # nothing lost, same answers, same order
    assert dying.served[0] > dying.served[1] and sum(dying.served) == len(requests)

    processes[0].kill()
    processes[0].wait(timeout=30)
    gone = MultiEndpointTextModel(urls, "tiny-llama", concurrency=1, backoff=0.05)
    with pytest.raises(LongloreError, match=r"all 2 endpoints of openai:tiny-llama failed with 2 of 2 requests"):
        gone.generate(requests[:2])
