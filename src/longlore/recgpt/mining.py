"""Run the LLM stages for a set of users: interests, then tags, then explanations for top items.

The history a stage sees is the user's *training* log (test and valid items are held out), so
tags never leak the item they are evaluated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from longlore.recgpt.compress import DAY, compress_history
from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.data import Dataset
from longlore.recgpt.llm import (
    StageOutcome,
    explanation_prompt,
    interest_prompt,
    run_stage,
    tag_prompt,
    validate_explanations,
    validate_interests,
    validate_tags,
)


def _profile(data: Dataset, uid: str) -> str:
    feats = data.users.get(uid, {})
    return ", ".join(f"{k}: {v}" for k, v in feats.items() if k != "zip_code") or "unknown"


def histories(data: Dataset, train: dict[str, list], users: Sequence[str], config: RecGPTConfig,
              count_tokens: Any = None) -> dict[str, Any]:
    """Compressed history of each user's training log (within ``history_token_budget``)."""
    kwargs = {"count_tokens": count_tokens} if count_tokens else {}
    return {u: compress_history(data, train[u], config.history_token_budget, strong=config.strong_rating,
                                minimum=config.min_rating, **kwargs) for u in users}


def recent_titles(data: Dataset, events: Sequence[Any]) -> list[str]:
    """Titles seen in the last 31 days of the log (tags must not name them: freshness)."""
    if not events:
        return []
    last = events[-1].timestamp
    return list(dict.fromkeys(data.items[e.item_id].title for e in reversed(events) if last - e.timestamp < 31 * DAY))


def mine_interests(model: Any, data: Dataset, hist: dict[str, Any], config: RecGPTConfig, n: int = 5) -> dict[str, StageOutcome]:
    prompts = {u: interest_prompt(h.text, _profile(data, u), n) for u, h in hist.items()}
    return run_stage(model, prompts, lambda _k, reply: validate_interests(reply), max_new_tokens=config.interest_tokens,
                     max_retries=config.max_retries, description="RecGPT: mining interests",
                     prefix='[{"interest": "' if config.prefill else "")


def predict_tags(model: Any, data: Dataset, train: dict[str, list], hist: dict[str, Any],
                 interests: dict[str, StageOutcome], config: RecGPTConfig, n: int = 6) -> dict[str, StageOutcome]:
    """Tags for users whose interests validated (others are recorded as failures upstream)."""
    prompts, names, recents = {}, {}, {}
    for u, outcome in interests.items():
        if not outcome.ok:
            continue
        names[u] = [r["interest"] for r in outcome.records]
        recents[u] = recent_titles(data, train[u])
        prompts[u] = tag_prompt(hist[u].text, names[u], recents[u], n)

    def validate(u: str, reply: str) -> tuple:
        return validate_tags(reply, names[u], recents[u])

    return run_stage(model, prompts, validate, max_new_tokens=config.tag_tokens, max_retries=config.max_retries,
                     description="RecGPT: predicting tags", prefix='[{"tag": "' if config.prefill else "")


def explain(model: Any, data: Dataset, pairs: dict[str, list[tuple[str, str]]], config: RecGPTConfig) -> dict[str, dict[str, str]]:
    """Interest-item explanation table: user -> item_id -> explanation (pairs: (interest, item_id)).

    Failed users get no entries (the API then serves the tag alone); outcomes come back too.
    """
    prompts = {u: explanation_prompt([(i, data.item_text(v)) for i, v in ps]) for u, ps in pairs.items() if ps}
    outcomes = run_stage(model, prompts, lambda u, reply: validate_explanations(reply, len(pairs[u])),
                         max_new_tokens=config.explain_tokens, max_retries=config.max_retries,
                         description="RecGPT: explaining", prefix='[{"id": 1, "explanation": "' if config.prefill else "")
    table = {u: {pairs[u][r["id"] - 1][1]: r["explanation"] for r in o.records} for u, o in outcomes.items() if o.ok}
    return {"table": table, "outcomes": outcomes}  # type: ignore[return-value]


def run_interest_and_tags(model: Any, data: Dataset, train: dict[str, list], users: Sequence[str],
                          config: RecGPTConfig, count_tokens: Any = None) -> dict[str, dict[str, StageOutcome]]:
    """Stages 1 and 2 for ``users``; returns {"interests": ..., "tags": ...} outcomes."""
    hist = histories(data, train, users, config, count_tokens)
    interests = mine_interests(model, data, hist, config)
    tags = predict_tags(model, data, train, hist, interests, config)
    for u in users:  # a user whose interests failed has a failed tag stage too, with the reason
        tags.setdefault(u, StageOutcome(ok=False, error="skipped: interest mining failed"))
    return {"interests": interests, "tags": tags, "histories": {u: h.text for u, h in hist.items()}}  # type: ignore[dict-item]




def to_mined(outcomes: dict[str, dict]) -> dict[str, dict]:
    """Per-user serving view of stage outcomes: validated interests and tags (empty on failure)."""
    return {u: {"interests": o["interests"]["records"], "tags": o["tags"]["records"]} for u, o in outcomes.items()}


def explain_top_items(model: Any, data: Dataset, mined: dict[str, dict], top_items: dict[str, list[dict]],
                      config: RecGPTConfig) -> tuple[dict[str, dict[str, str]], dict[str, StageOutcome]]:
    """Explain each user's first ``n_explain`` recommended items against the interest behind the
    tag that retrieved them (or the user's first interest)."""
    pairs = {}
    for u, items in top_items.items():
        interests = {t["tag"]: t["interest"] for t in mined.get(u, {}).get("tags", [])}
        default = (mined.get(u, {}).get("interests") or [{"interest": "movies like the ones watched"}])[0]["interest"]
        pairs[u] = [(interests.get(it.get("tag") or "", default), it["item_id"]) for it in items[:config.n_explain]]
    result = explain(model, data, pairs, config)
    return result["table"], result["outcomes"]  # type: ignore[index]
