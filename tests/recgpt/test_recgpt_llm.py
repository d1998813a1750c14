"""JSON parsing/repair, constraint validation, bounded retries and the request cache."""

from __future__ import annotations

import json

import pytest

from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.llm import (
    ParseError,
    parse_json_list,
    run_stage,
    stage_stats,
    tag_problem,
    validate_explanations,
    validate_interests,
    validate_tags,
)

GOOD = '[{"interest": "space opera", "stage": "long-term", "reason": "many sci-fi films"}]'


@pytest.mark.parametrize("reply, repaired", [
    (GOOD, False),
    ("```json\n" + GOOD + "\n```", True),
    ("Sure! Here it is: " + GOOD + " Hope it helps.", True),
    ("[{'interest': 'space opera', 'stage': 'long-term', 'reason': 'x'}]", True),
    ('[{"interest": "space opera", "stage": "long-term", "reason": "x"},]', True),
    ('[{"interest": "space opera", "stage": "long-term", "reason": "x"}, {"interest": "cut of', True),
    ('{"interests": ' + GOOD + "}", True),
    ('{"interest": "space opera", "stage": "long-term", "reason": "x"}', True),
])
def test_parse_repairs_almost_json(reply, repaired):
    records, was_repaired = parse_json_list(reply)
    assert records[0]["interest"] == "space opera" and was_repaired is repaired


@pytest.mark.parametrize("reply", ["I like movies.", "", "[1, 2, 3]", "{{{{"])
def test_non_json_reply_raises_parse_error(reply):
    with pytest.raises(ParseError):
        parse_json_list(reply)


def test_interest_validation_normalises_and_drops_bad_records():
    reply = json.dumps([{"Interest": "Space opera", "Stage": "Long term", "Reason": "r"},
                        {"interest": "space  opera", "stage": "short-term"},       # duplicate
                        {"interest": "space adventure", "stage": "long-term"},     # copied the prompt's example
                        {"interest": "1997-11 (loved)", "stage": "long-term"},     # echoes the history format
                        {"interest": "heists", "stage": "forever"},                # bad stage
                        {"interest": "heists", "stage": "recent short-term"}])
    records, _ = validate_interests(reply)
    assert records == [{"interest": "Space opera", "stage": "long-term", "reason": "r"},
                       {"interest": "heists", "stage": "short-term", "reason": ""}]
    with pytest.raises(ParseError, match="no valid"):
        validate_interests('[{"interest": "<a theme>", "stage": "long-term"}]')  # an unfilled slot


def test_tag_constraints():
    assert tag_problem("gritty crime thriller", [], []) is None
    assert tag_problem("dark crime thriller", [], []) == "copied the prompt's example"
    assert "history format" in tag_problem("1997 crime (thriller)", [], [])
    assert "2-5 words" in tag_problem("thrillers", [], [])
    assert tag_problem("good movies", [], []) == "vague"
    assert "fresh" in tag_problem("more star wars sequels", [], ["Star Wars"])
    reply = json.dumps([{"tag": "gritty crime thriller", "interest": "crime stories"},
                        {"tag": "thriller crime gritty", "interest": "crime stories"},   # same words: not diverse
                        {"tag": "gentle family comedy", "interest": "cooking"},        # not a mined interest
                        {"tag": "gritty space western", "interest": "space opera"}])
    records, _, dropped = validate_tags(reply, ["crime stories", "space opera"], [])
    assert [r["tag"] for r in records] == ["gritty crime thriller", "gritty space western"]
    assert dropped == {"duplicate (diversity)": 1, "inconsistent (interest not among the mined interests)": 1}


def test_explanations_keep_valid_ids_only():
    reply = '[{"id": 1, "explanation": "a tense crime story"}, {"id": 9, "explanation": "out of range"},' \
            ' {"id": 2, "explanation": "ok"}]'
    assert validate_explanations(reply, 2)[0] == [{"id": 1, "explanation": "a tense crime story"}]


class ScriptedModel:
    """Replies from a script per attempt (temperature 0 first, then retries); counts calls."""

    model_id = "scripted"

    def __init__(self, replies):
        self.replies, self.calls = replies, []

    def generate(self, requests):
        self.calls.append([(r.temperature, r.seed) for r in requests])
        return [[self.replies[min(r.seed, len(self.replies) - 1)] if r.temperature > 0 else self.replies[0]] for r in requests]


def test_not_json_is_retried_then_recorded_as_failure_without_crashing():
    flaky = ScriptedModel(["not json at all", GOOD])
    out = run_stage(flaky, {"u1": "p"}, lambda k, r: validate_interests(r), max_new_tokens=8, max_retries=2,
                    description="t")
    assert out["u1"].ok and out["u1"].attempts == 2 and flaky.calls == [[(0.0, 0)], [(0.7, 1)]]
    broken = ScriptedModel(["nope"])
    out = run_stage(broken, {"u1": "p", "u2": "q"}, lambda k, r: validate_interests(r), max_new_tokens=8,
                    max_retries=2, description="t")
    assert not out["u1"].ok and out["u1"].attempts == 3 and "no JSON" in out["u1"].error
    assert out["u1"].raw == ["nope"] * 3
    stats = stage_stats(out)
    assert stats["parse_rate"] == 0.0 and stats["failures"] == 2 and stats["retries"] == 4


def test_stages_run_through_the_request_cache_with_a_tiny_model(toy_data, tmp_path):
    from longlore.core.backends import load_text_model
    from longlore.recgpt.data import leave_last_out
    from longlore.recgpt.mining import run_interest_and_tags

    config = RecGPTConfig(interest_tokens=12, tag_tokens=12, max_retries=1, history_token_budget=60)
    split = leave_last_out(toy_data)
    users = ["1", "2"]
    model = load_text_model("tiny-llama", cache=tmp_path / "cache.sqlite")
    first = run_interest_and_tags(model, toy_data, split.train, users, config)
    # a random tiny model writes no JSON: both users fail cleanly after 1 retry, and tags are skipped
    assert all(not first["interests"][u].ok and first["interests"][u].attempts == 2 for u in users)
    assert all(first["tags"][u].error.startswith("skipped") for u in users)
    misses = model.misses
    again = load_text_model("tiny-llama", cache=tmp_path / "cache.sqlite")
    second = run_interest_and_tags(again, toy_data, split.train, users, config)
    assert again.misses == 0 and again.hits == misses  # the rerun is served from the cache
    assert [second["interests"][u].raw for u in users] == [first["interests"][u].raw for u in users]
