"""Schema-constrained generation (core backends): every reply parses, pre-fills continue, endpoints get the schema."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import httpx
import pytest

from longlore.core.backends import CachedTextModel, GenerationRequest, HFTextModel, OpenAITextModel
from longlore.core.errors import LongloreError

SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": 2,
    "items": {
        "type": "object",
        "properties": {
            "interest": {"type": "string", "maxLength": 12},
            "stage": {"type": "string", "enum": ["long-term", "short-term"]},
        },
        "required": ["interest", "stage"],
    },
}
PROMPTS = ["List interests as JSON.", "hello", "1, 2, 3", "The weather today"]


@pytest.fixture(scope="module")
def tiny() -> HFTextModel:
    return HFTextModel.from_spec("tiny-llama", batch_size=4)


def _check(reply: str) -> list[dict]:
    """An independent check of SCHEMA (not the enforcer's own parser)."""
    value = json.loads(reply)
    assert isinstance(value, list) and 1 <= len(value) <= 2, reply
    for record in value:
        assert set(record) == {"interest", "stage"}, reply
        # maxLength bounds the reply; lm-format-enforcer's token-level shortcut may overshoot by a token's tail
        assert record["stage"] in ("long-term", "short-term") and len(record["interest"]) <= 20, reply
    return value


def test_a_random_model_under_a_schema_always_writes_valid_json(tiny):
    free = [GenerationRequest(p, chat=False, max_new_tokens=60) for p in PROMPTS]
    unparsed = 0
    for [reply] in tiny.generate(free):
        try:
            _check(reply)
        except (ValueError, AssertionError):
            unparsed += 1
    assert unparsed == len(PROMPTS)  # without the schema a random model writes no such JSON
    constrained = [GenerationRequest(p, chat=False, max_new_tokens=120, json_schema=SCHEMA) for p in PROMPTS]
    sampled = [
        GenerationRequest(p, chat=False, max_new_tokens=120, json_schema=SCHEMA, temperature=1.0, n=2, seed=3)
        for p in PROMPTS
    ]
    for completions in tiny.generate(constrained) + tiny.generate(sampled):
        for reply in completions:
            _check(reply)


def test_a_prefilled_reply_is_continued_under_the_schema(tiny):
    prefix = '[{"interest": "'
    mixed = [
        GenerationRequest("a", chat=False, max_new_tokens=120, json_schema=SCHEMA, response_prefix=prefix),
        GenerationRequest("b", chat=False, max_new_tokens=8),  # a free row in the same batch
    ]
    [[constrained], [free]] = tiny.generate(mixed)
    assert not constrained.startswith(prefix)  # the completion continues the prefix, it does not repeat it
    assert list(_check(prefix + constrained)[0]) == ["interest", "stage"]  # the order of `required`
    assert isinstance(free, str)
    with pytest.raises(LongloreError, match="breaks the JSON schema at character 0"):
        tiny.generate([GenerationRequest("a", chat=False, json_schema=SCHEMA, response_prefix='{"')])


def test_cache_keys_of_plain_requests_are_unchanged_and_schemas_get_their_own(tmp_path):
    class Inner:
        model_id = "m"

    cache = CachedTextModel(Inner(), tmp_path / "c.sqlite")
    plain = GenerationRequest("p", max_new_tokens=5)
    old_fields = {
        k: v for k, v in asdict(plain).items() if k not in ("json_schema", "response_prefix", "repetition_penalty")
    }
    old = json.dumps({"model": "m", "kind": "generate", "request": old_fields}, sort_keys=True, ensure_ascii=False)
    assert cache._key("generate", plain) == hashlib.sha256(old.encode()).hexdigest()  # caches written before resume
    keyed = {
        cache._key("generate", r)
        for r in (
            plain,
            GenerationRequest("p", max_new_tokens=5, json_schema=SCHEMA),
            GenerationRequest("p", max_new_tokens=5, json_schema={**SCHEMA, "maxItems": 3}),
            GenerationRequest("p", max_new_tokens=5, response_prefix="["),
        )
    }
    assert len(keyed) == 4
    assert GenerationRequest("p", json_schema=SCHEMA) == GenerationRequest("p", json_schema=json.dumps(SCHEMA))


def test_endpoints_get_the_schema_as_response_format_or_guided_json():
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, json.loads(request.content)))
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json={"choices": [{"message": {"content": '[{"interest": "x"}]'}}]})
        return httpx.Response(200, json={"choices": [{"text": "[]"}]})

    model = OpenAITextModel("http://127.0.0.1:1/v1", "m", max_retries=0)
    model._client = httpx.Client(transport=httpx.MockTransport(handler))
    model.generate([GenerationRequest("p", json_schema=SCHEMA), GenerationRequest("q", chat=False, json_schema=SCHEMA)])
    by_route = dict(sent)
    chat, plain = by_route["/v1/chat/completions"], by_route["/v1/completions"]
    assert (
        chat["response_format"]["type"] == "json_schema" and chat["response_format"]["json_schema"]["schema"] == SCHEMA
    )
    assert plain["guided_json"] == SCHEMA and "response_format" not in plain
    with pytest.raises(LongloreError, match="pre-filled reply"):
        model.generate([GenerationRequest("p", response_prefix="[")])


def test_a_reply_short_of_tokens_is_closed_in_time_and_still_valid(tiny):
    # room for about one record: an unconstrained ending would stop mid-string or mid-record
    schema = {**SCHEMA, "maxItems": 3}
    budget = 45
    requests = [
        GenerationRequest(p, chat=False, max_new_tokens=budget, json_schema=schema, temperature=1.0, n=2, seed=i)
        for i, p in enumerate(PROMPTS * 2)
    ]
    completions = [c for row in tiny.generate_detailed(requests) for c in row]
    assert max(c.completion_tokens for c in completions) <= budget
    for completion in completions:
        value = json.loads(completion.text)
        assert 1 <= len(value) <= 3 and all(set(r) == {"interest", "stage"} for r in value), completion.text
        assert all(r["stage"] in ("long-term", "short-term") for r in value), completion.text
