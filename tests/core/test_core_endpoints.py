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
