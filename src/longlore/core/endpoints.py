"""Several OpenAI-compatible endpoints serving the same model, used as one text model.

``openai:MODEL@http://a:8000/v1,http://b:8000/v1`` (replicas of one model behind vLLM, SGLang or
``longlore serve``): requests are spread over the endpoints through one shared queue, at most
``concurrency`` in flight per endpoint, so a faster replica takes more. When an endpoint stops
answering (connection errors or 408/429/5xx after its retries) it is dropped for the rest of the
call and every request it held goes back to the queue for the others: nothing is lost, and results
come back in request order, the same as from one endpoint. A request the server refuses (other
4xx) is an error at once, since every replica would refuse it too. Only when every endpoint is
gone does the call fail, naming each endpoint's last error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from longlore.core.backends import (
    EndpointUnavailable,
    GenerationRequest,
    LoglikelihoodRequest,
    OpenAITextModel,
)
from longlore.core.errors import LongloreError


class MultiEndpointTextModel:
    """One :class:`~longlore.core.backends.TextModel` over replicas at ``base_urls``.

    ``served[i]`` counts the requests endpoint ``i`` answered (over the object's life);
    ``on_result(index)`` is called after each request is answered (progress, tests).
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        api_key: str | None = None,
        concurrency: int = 4,
        max_retries: int = 1,
        timeout: float = 120.0,
        backoff: float = 0.5,
        on_result: Callable[[int], None] | None = None,
    ) -> None:
        urls = [u.strip().rstrip("/") for u in base_urls if u.strip()]
        if not urls:
            raise LongloreError(f"openai:{model}: no endpoint URLs given")
        self.clients = [OpenAITextModel(u, model, api_key, concurrency, max_retries, timeout, backoff) for u in urls]
        self.model, self.concurrency, self.on_result = model, concurrency, on_result
        self.model_id = f"openai:{model}@{','.join(urls)}"
        self.served = [0] * len(urls)

    def format_chat(self, prompt: str | list[dict[str, str]], system: str | None = None) -> str:
        return self.clients[0].format_chat(prompt, system)

    def _dispatch(self, method: str, requests: Sequence[Any]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        answered = [False] * len(requests)
        pending: queue.Queue[int] = queue.Queue()
        for i in range(len(requests)):
            pending.put(i)
        lock = threading.Lock()
        state = {"remaining": len(requests), "fatal": None}
        alive = set(range(len(self.clients)))
        last_error: dict[int, str] = {}

        def finished() -> bool:
            return state["remaining"] == 0 or state["fatal"] is not None or not alive

        def worker(endpoint: int) -> None:
            client = self.clients[endpoint]
            while True:
                with lock:
                    if finished() or endpoint not in alive:
                        return
                try:
                    i = pending.get(timeout=0.05)
                except queue.Empty:
                    continue
                try:
                    value = getattr(client, method)(requests[i])
                except EndpointUnavailable as err:
                    with lock:
                        alive.discard(endpoint)
                        last_error[endpoint] = str(err)
                    pending.put(i)  # another replica answers it
                    return
                except BaseException as err:  # a refused request: every replica would refuse it
                    with lock:
                        state["fatal"] = state["fatal"] or err
                    return
                with lock:
                    results[i], answered[i] = value, True
                    state["remaining"] -= 1
                    self.served[endpoint] += 1
                if self.on_result is not None:
                    self.on_result(i)

        threads = [
            threading.Thread(target=worker, args=(e,), daemon=True)
            for e in range(len(self.clients))
            for _ in range(max(1, self.concurrency))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if state["fatal"] is not None:
            raise state["fatal"]  # type: ignore[misc]
        if not all(answered):
            detail = "; ".join(last_error[e] for e in sorted(last_error))
            raise LongloreError(
                f"all {len(self.clients)} endpoints of openai:{self.model} failed with "
                f"{answered.count(False)} of {len(requests)} requests unanswered ({detail})"
            )
        return results

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        return self._dispatch("_generate_one", requests)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        return self._dispatch("_loglikelihood_one", requests)
