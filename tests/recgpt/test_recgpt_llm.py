"""JSON parsing/repair, constraint validation, bounded retries and the request cache."""

from __future__ import annotations

import json

import pytest

from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.llm import (
    ParseError,
    StageOutcome,
    grounding_vocabulary,
    is_grounded,
    parse_json_list,
    retry_prompt,
    run_stage,
    stage_stats,
    tag_problem,
    validate_explanations,
    validate_interests,
    validate_tags,
)

GOOD = '[{"interest": "space opera", "stage": "long-term", "reason": "many sci-fi films"}]'


@pytest.mark.parametrize(
    "reply, repaired",
    [
        (GOOD, False),
        ("```json\n" + GOOD + "\n```", True),
        ("Sure! Here it is: " + GOOD + " Hope it helps.", True),
        ("[{'interest': 'space opera', 'stage': 'long-term', 'reason': 'x'}]", True),
        ('[{"interest": "space opera", "stage": "long-term", "reason": "x"},]', True),
        ('[{"interest": "space opera", "stage": "long-term", "reason": "x"}, {"interest": "cut of', True),
        ('{"interests": ' + GOOD + "}", True),
        ('{"interest": "space opera", "stage": "long-term", "reason": "x"}', True),
    ],
)
def test_parse_repairs_almost_json(reply, repaired):
    records, was_repaired = parse_json_list(reply)
    assert records[0]["interest"] == "space opera" and was_repaired is repaired


@pytest.mark.parametrize("reply", ["I like movies.", "", "[1, 2, 3]", "{{{{"])
def test_non_json_reply_raises_parse_error(reply):
    with pytest.raises(ParseError):
        parse_json_list(reply)


def test_interest_validation_normalises_and_drops_bad_records():
    reply = json.dumps(
        [
            {"Interest": "Space opera", "Stage": "Long term", "Reason": "r"},
            {"interest": "space  opera", "stage": "short-term"},  # duplicate
            {"interest": "late-night jazz", "stage": "long-term"},  # copied the prompt's example
            {"interest": "space adventure", "stage": "long-term"},  # copied an older example
            {"interest": "1997-11 (loved)", "stage": "long-term"},  # echoes the history format
            {"interest": "heists", "stage": "forever"},  # bad stage
            {"interest": "heists", "stage": "recent short-term"},
        ]
    )
    records, _, dropped = validate_interests(reply)
    assert records == [
        {"interest": "Space opera", "stage": "long-term", "reason": "r"},
        {"interest": "heists", "stage": "short-term", "reason": ""},
    ]
    assert dropped == {
        "duplicate": 1,
        "copied the prompt's example": 2,
        "echoes the history format (dates, brackets)": 1,
        "stage is not long-term / short-term": 1,
    }
    with pytest.raises(ParseError, match="no valid"):
        validate_interests('[{"interest": "<a theme>", "stage": "long-term"}]')  # an unfilled slot


def test_interests_must_be_grounded_in_the_users_history():
    vocab = grounding_vocabulary(["Comedy", "Sci-Fi", "Children's"], ["Star Wars (1977)", "Wrong Trousers, The (1993)"])
    assert is_grounded("funny animated comedies", vocab)  # genre word, plural folded
    assert is_grounded("space travel", vocab)  # synonym of Sci-Fi
    assert is_grounded("family adventures", vocab)  # "family" stands for Children's
    assert is_grounded("Star Wars saga", vocab)  # a watched title's word
    assert not is_grounded("Ozbekistan", vocab) and not is_grounded("romantic weepies", vocab)
    assert not is_grounded("1977", vocab)  # years are not content words of titles
    reply = json.dumps(
        [{"interest": "romantic weepies", "stage": "long-term"}, {"interest": "quirky sci-fi", "stage": "short-term"}]
    )
    records, _, dropped = validate_interests(reply, vocab)
    assert [r["interest"] for r in records] == ["quirky sci-fi"]
    assert dropped == {"not grounded in the history (no genre or title word)": 1}
    with pytest.raises(ParseError, match="not grounded"):
        validate_interests('[{"interest": "Ozbekistan", "stage": "long-term"}]', vocab)


def test_tag_constraints():
    assert tag_problem("gritty crime thriller", [], []) is None
    assert tag_problem("dark crime thriller", [], []) == "copied the prompt's example"
    assert tag_problem("cozy village mystery", [], []) == "copied the prompt's example"
    assert "history format" in tag_problem("1997 crime (thriller)", [], [])
    assert "2-5 words" in tag_problem("thrillers", [], [])
    assert "2-5 words" in tag_problem("thriller thrillers", [], [])  # no modifier, one core word twice
    assert tag_problem("good movies", [], []) == "vague"
    assert "fresh" in tag_problem("more star wars sequels", [], ["Star Wars"])
    reply = json.dumps(
        [
            {"tag": "gritty crime thriller", "interest": "crime stories"},
            {"tag": "thriller crime gritty", "interest": "crime stories"},  # same words: not diverse
            {"tag": "gentle family comedy", "interest": "cooking"},  # not a mined interest
            {"tag": "gritty space western", "interest": "space operas"},
        ]
    )  # plural still links
    records, _, dropped = validate_tags(reply, ["crime stories", "space opera"], [])
    assert [r["tag"] for r in records] == ["gritty crime thriller", "gritty space western"]
    assert dropped == {"duplicate (diversity)": 1, "inconsistent (interest not among the mined interests)": 1}


def test_explanations_keep_valid_ids_only():
    reply = (
        '[{"id": 1, "explanation": "a tense crime story"}, {"id": 9, "explanation": "out of range"},'
        ' {"id": 2, "explanation": "ok"}]'
    )
    assert validate_explanations(reply, 2)[0] == [{"id": 1, "explanation": "a tense crime story"}]


class ScriptedModel:
    """Replies from a script per attempt (temperature 0 first, then retries); records the requests."""

    model_id = "scripted"

    def __init__(self, replies):
        self.replies, self.calls, self.requests = replies, [], []

    def format_chat(self, prompt, system=None):
        return f"<system>{system}</system><user>{prompt}</user><assistant>"

    def generate(self, requests):
        self.calls.append([(r.temperature, r.seed) for r in requests])
        self.requests += list(requests)
        return [
            [self.replies[min(r.seed, len(self.replies) - 1)] if r.temperature > 0 else self.replies[0]]
            for r in requests
        ]


def test_not_json_is_retried_then_recorded_as_failure_without_crashing():
    flaky = ScriptedModel(["not json at all", GOOD])
    out = run_stage(
        flaky, {"u1": "p"}, lambda k, r: validate_interests(r), max_new_tokens=8, max_retries=2, description="t"
    )
    assert out["u1"].ok and out["u1"].attempts == 2 and flaky.calls == [[(0.0, 0)], [(0.9, 1)]]
    broken = ScriptedModel(["nope"])
    out = run_stage(
        broken,
        {"u1": "p", "u2": "q"},
        lambda k, r: validate_interests(r),
        max_new_tokens=8,
        max_retries=2,
        description="t",
    )
    assert not out["u1"].ok and out["u1"].attempts == 3 and "no JSON" in out["u1"].error
    assert out["u1"].raw == ["nope"] * 3
    stats = stage_stats(out)
    assert stats["parse_rate"] == 0.0 and stats["failures"] == 2 and stats["retries"] == 4
    assert stats["json_parse_rate"] == 0.0 and stats["replies"] == 6
    skipped = {"u1": StageOutcome(ok=False, error="skipped: interest mining failed")}  # no reply made
    assert stage_stats(skipped)["json_parse_rate"] is None


@pytest.mark.parametrize("prefix", ["", '[{"interest": "'])
def test_every_retry_is_a_different_request_from_earlier_attempts(prefix, tmp_path):
    """A re-ask must not replay the greedy reply: it samples, with its own seed, and its prompt
    says why the last reply was rejected, so each attempt has its own cache key too."""
    from longlore.core.backends import CachedTextModel

    copy = '[{"interest": "late-night jazz", "stage": "long-term"}]'
    copier = ScriptedModel([copy[len(prefix) :]])  # the model continues after the pre-filled opening
    out = run_stage(
        copier,
        {"u1": "p"},
        lambda k, r: validate_interests(r),
        max_new_tokens=8,
        max_retries=2,
        description="t",
        prefix=prefix,
        retry_temperature=0.8,
    )
    first, second, third = copier.requests
    assert first.temperature == 0.0 and second.temperature == third.temperature == 0.8
    assert len({first.seed, second.seed, third.seed}) == 3
    assert "copied the prompt's example" in str(second.prompt) and first.prompt != second.prompt
    assert len({json.dumps(r.__dict__, default=list, sort_keys=True) for r in copier.requests}) == 3
    assert out["u1"].attempts == 3 and not out["u1"].ok
    cache = CachedTextModel(copier, tmp_path / "c.sqlite")
    keys = {cache._key("generate", r) for r in copier.requests}
    assert len(keys) == 3  # the cache cannot serve a retry with the first (greedy) reply
    assert retry_prompt("p", "bad") != "p"


def test_per_key_prefix_prefills_the_assistant_turn():
    model = ScriptedModel(['"quirky space comedy", "reason": "x"}]'])
    prefixes = {"u1": '[{"interest": "sci-fi", "tag": ', "u2": '[{"interest": "comedy", "tag": '}
    out = run_stage(
        model,
        {"u1": "p", "u2": "q"},
        lambda k, r: validate_tags(r, ["sci-fi", "comedy"], []),
        max_new_tokens=8,
        max_retries=0,
        description="t",
        prefix=prefixes,
    )
    assert [r.response_prefix for r in model.requests] == [prefixes["u1"], prefixes["u2"]]
    assert all(r.prompt in ("p", "q") and r.system for r in model.requests)  # the pre-fill is not in the prompt
    assert out["u1"].records == [{"tag": "quirky space comedy", "interest": "sci-fi", "reason": "x"}]
    assert out["u2"].records[0]["interest"] == "comedy"


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


def test_the_seed_record_prefilled_from_the_history_is_not_counted():
    from longlore.recgpt.llm import interest_seed

    seed = interest_seed("Comedy", ["Clerks", "Groundhog Day", "Kingpin"])
    assert seed == {"interest": "comedy movies", "stage": "long-term", "reason": "Clerks, Groundhog Day"}
    vocab = grounding_vocabulary(["Comedy", "Romance"], ["Clerks", "Groundhog Day"])
    only_seed = json.dumps([seed, {"interest": "Comedy  movies", "stage": "long-term"}])  # the model repeated it
    with pytest.raises(ParseError, match="duplicate"):
        validate_interests(only_seed, vocab, [seed["interest"]])
    records, _, _ = validate_interests(
        json.dumps([seed, {"interest": "romantic comedies", "stage": "short-term"}]), vocab, [seed["interest"]]
    )
    assert records == [{"interest": "romantic comedies", "stage": "short-term", "reason": ""}]


def test_tag_demonstration_is_skipped_and_its_copies_and_titles_rejected():
    from longlore.recgpt.llm import tag_prefix, tag_seed

    seed = tag_seed("drama movies", "Drama", "Western")
    assert seed["tag"] == "dramatic westerns"
    prefix = tag_prefix(seed, ["romantic comedies"])
    reply = (
        prefix + 'quirky romances", "reason": "x"}, {"interest": "romantic comedies", "tag": "dramatic westerns"},'
        ' {"interest": "romantic comedies", "tag": "grumpier_old_men"}, {"interest": "romantic comedies", "tag": "Sleepless in Seattle"}]'
    )
    records, _, dropped = validate_tags(reply, ["romantic comedies"], [], [seed["tag"]], {"sleepless in seattle"})
    assert [r["tag"] for r in records] == ["quirky romances"]
    assert dropped == {
        "copied the prompt's example": 1,
        "not 'modifier + core word' (2-5 words)": 1,
        "a movie title, not a kind of movie": 1,
    }


def test_explanations_must_say_more_than_the_title_and_skip_the_demonstration():
    from longlore.recgpt.llm import explanation_prefix, explanation_seed

    seed = explanation_seed("drama movies", ["Drama", "War"])
    assert seed == "dramatic war films for a fan of drama movies"
    reply = (
        explanation_prefix(seed) + 'Movie: Wedding Singer, The"}, {"id": 3, "explanation": "a sweet romantic comedy'
        ' for comedy fans"}, {"id": 2, "explanation": "dramatic war films for a fan of drama movies"}]'
    )
    records, _, dropped = validate_explanations(
        reply, 3, ["Glory", "Wedding Singer, The", "Clueless"], skip=1, seeded=[seed]
    )
    assert records == [{"id": 3, "explanation": "a sweet romantic comedy for comedy fans"}]
    assert dropped == {"only names the movie": 1, "copied the prompt's example": 1}


def test_generation_stops_at_the_closing_bracket_and_it_is_put_back():
    class Cut(ScriptedModel):
        def generate(self, requests):
            self.requests += list(requests)
            return [['space opera", "stage": "long-term", "reason": "r"}'] for _ in requests]  # cut at "]"

    model = Cut([])
    out = run_stage(
        model,
        {"u1": "p"},
        lambda k, r: validate_interests(r),
        max_new_tokens=8,
        max_retries=0,
        description="t",
        prefix='[{"interest": "',
    )
    assert model.requests[0].stop == ("]",)
    assert out["u1"].ok and not out["u1"].repaired and out["u1"].raw[0].endswith("}]")


def test_salvage_keeps_the_records_that_parse_around_a_malformed_one():
    reply = (
        '[{"interest": "space opera", "stage": "long-term", "reason": "x"}, {stage: "long-term", "reason": "y"},'
        ' {"interest": "heists", "stage": "short-term", "reason": "z"}, {"interest": "cut of'
    )
    records, repaired = parse_json_list(reply)
    assert [r["interest"] for r in records] == ["space opera", "heists"] and repaired
    with pytest.raises(ParseError):
        parse_json_list('[{stage: "long-term"}, {"interest": ]')


def test_a_tag_or_explanation_that_only_repeats_its_interest_is_dropped():
    records, _, dropped = validate_tags(
        json.dumps(
            [
                {"interest": "action movies", "tag": "action films"},
                {"interest": "action movies", "tag": "action westerns"},
            ]
        ),
        ["action movies"],
        [],
    )
    assert [r["tag"] for r in records] == ["action westerns"]
    assert dropped == {"repeats its interest (not a new kind of movie)": 1}
    reply = json.dumps(
        [{"id": 1, "explanation": "the comedy movies"}, {"id": 2, "explanation": "a comedy for a fan of comedy movies"}]
    )
    records, _, dropped = validate_explanations(reply, 2, ["Clerks", "Kingpin"], interests=["comedy movies"] * 2)
    assert [r["id"] for r in records] == [2] and dropped == {"repeats the interest": 1}
