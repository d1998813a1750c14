"""Run the LLM stages for a set of users: interests, then tags, then explanations for top items.

The history a stage sees is the user's *training* log (test and valid items are held out), so
tags never leak the item they are evaluated on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from longlore.recgpt.compress import DAY, compress_history
from longlore.recgpt.config import RecGPTConfig
from longlore.recgpt.data import Dataset
from longlore.recgpt.llm import (
    StageOutcome,
    grounding_vocabulary,
    run_stage,
    validate_explanations,
    validate_interests,
    validate_tags,
)
from longlore.recgpt.prompts import (
    explanation_prefix,
    explanation_prompt,
    explanation_schema,
    explanation_seed,
    interest_prompt,
    interest_schema,
    interest_seed,
    tag_prefix,
    tag_prompt,
    tag_schema,
    tag_seed,
)


def _profile(data: Dataset, uid: str) -> str:
    feats = data.users.get(uid, {})
    return ", ".join(f"{k}: {v}" for k, v in feats.items() if k != "zip_code") or "unknown"


def histories(
    data: Dataset, train: dict[str, list], users: Sequence[str], config: RecGPTConfig, count_tokens: Any = None
) -> dict[str, Any]:
    """Compressed history of each user's training log (within ``history_token_budget``)."""
    kwargs = {"count_tokens": count_tokens} if count_tokens else {}
    return {
        u: compress_history(
            data,
            train[u],
            config.history_token_budget,
            strong=config.strong_rating,
            minimum=config.min_rating,
            **kwargs,
        )
        for u in users
    }


def recent_titles(data: Dataset, events: Sequence[Any]) -> list[str]:
    """Titles seen in the last 31 days of the log (tags must not name them: freshness)."""
    if not events:
        return []
    last = events[-1].timestamp
    return list(dict.fromkeys(data.items[e.item_id].title for e in reversed(events) if last - e.timestamp < 31 * DAY))


def fresh_genres(data: Dataset) -> list[str]:
    """Categories a "fresh" demonstration tag may point to: the catalogue's categories, least
    populated first (a user has usually seen the big ones), those with fewer than 10 items left out."""
    sizes = Counter(g for item in data.items.values() for g in item.genres if g.lower() != "unknown")
    usable = [g for g, n in sizes.items() if n >= 10] or list(sizes)
    return sorted(usable, key=lambda g: (sizes[g], g))


def history_facts(data: Dataset, events: Sequence[Any], minimum: float) -> dict[str, Any]:
    """What the prompts and validators use from the (behaviour-filtered) log: category counts as
    text, the grounding vocabulary, the top category, the least-chosen catalogue category, the seed
    interest record and a demonstration item (the newest item of the top category)."""
    kept = [(e.item_id, data.items[e.item_id]) for e in events if e.rating >= minimum]
    counts = Counter(g for _, item in kept for g in item.genres if g.lower() != "unknown")
    top = counts.most_common(1)[0][0] if counts else ""
    newest = [(iid, item) for iid, item in reversed(kept) if top in item.genres]
    fresh = fresh_genres(data) or [top]
    titles = list(dict.fromkeys(item.title for _, item in newest))
    return {
        "counts": ", ".join(f"{g} {c}" for g, c in counts.most_common(6)),
        "vocab": grounding_vocabulary(list(counts), [item.title for _, item in kept]),
        "top": top,
        "rare": min(fresh, key=lambda g: (counts.get(g, 0), fresh.index(g))),
        "seed": interest_seed(top, titles, data.domain_plural) if top else None,
        "demo_item": newest[0][0] if newest else None,
    }


def mine_interests(
    model: Any, data: Dataset, train: dict[str, list], hist: dict[str, Any], config: RecGPTConfig
) -> dict[str, StageOutcome]:
    """Stage 1: ``config.n_interests`` interests per user, each grounded in the user's own log.

    With ``config.prefill`` the reply is pre-filled with a demonstration record built from the
    user's top genre (the format in the user's own domain) and the opening of the next record;
    the demonstration is not counted as a mined interest."""
    facts = {u: history_facts(data, train[u], config.min_rating) for u in hist}
    domain = config.domain or data.domain
    prompts = {
        u: interest_prompt(h.text, _profile(data, u), config.n_interests, facts[u]["counts"], domain)
        for u, h in hist.items()
    }
    prefixes = (
        {
            u: ("[" + json.dumps(facts[u]["seed"]) + ', {"interest": "') if facts[u]["seed"] else '[{"interest": "'
            for u in hist
        }
        if config.prefill
        else ""
    )
    seeds = {u: [facts[u]["seed"]["interest"]] if config.prefill and facts[u]["seed"] else [] for u in hist}
    schemas = {u: interest_schema(config.n_interests, len(seeds[u])) for u in hist} if config.structured else None
    return run_stage(
        model,
        prompts,
        lambda u, reply: validate_interests(reply, facts[u]["vocab"], seeds[u]),
        max_new_tokens=config.interest_tokens,
        max_retries=config.max_retries,
        retry_temperature=config.retry_temperature,
        description="RecGPT: mining interests",
        chunk=config.llm_batch,
        prefix=prefixes,
        schema=schemas,
    )


def predict_tags(
    model: Any, data: Dataset, train: dict[str, list], interests: dict[str, StageOutcome], config: RecGPTConfig
) -> dict[str, StageOutcome]:
    """Stage 2: tags for users whose interests validated (others are recorded as failures upstream).

    With ``config.prefill`` the reply starts with a demonstration tag for the user's top genre
    (:func:`tag_seed`; not counted, copies rejected), then the record of the first mined interest."""
    prompts, names, recents, prefixes, seeds, schemas = {}, {}, {}, {}, {}, {}
    catalogue = {item.title.lower() for item in data.items.values()}
    domain = config.domain or data.domain
    for u, outcome in interests.items():
        if not outcome.ok:
            continue
        facts = history_facts(data, train[u], config.min_rating)
        names[u] = [r["interest"] for r in outcome.records][: config.n_tags]
        recents[u] = recent_titles(data, train[u])
        seed = (
            tag_seed(facts["seed"]["interest"], facts["top"], facts["rare"], data.domain_plural)
            if config.prefill and facts["seed"]
            else None
        )
        seeds[u] = [seed["tag"]] if seed else []
        listed = ([seed["interest"]] if seed else []) + names[u]
        prompts[u] = tag_prompt(listed, recents[u], domain)
        prefixes[u] = tag_prefix(seed, names[u])
        schemas[u] = tag_schema(listed, len(names[u]), len(seeds[u]))

    def validate(u: str, reply: str) -> tuple:
        return validate_tags(reply, names[u], recents[u], seeds[u], catalogue, domain)

    return run_stage(
        model,
        prompts,
        validate,
        max_new_tokens=config.tag_tokens,
        max_retries=config.max_retries,
        retry_temperature=config.retry_temperature,
        description="RecGPT: predicting tags",
        chunk=config.llm_batch,
        prefix=prefixes if config.prefill else "",
        schema=schemas if config.structured else None,
    )


def explain(
    model: Any,
    data: Dataset,
    pairs: dict[str, list[tuple[str, str]]],
    config: RecGPTConfig,
    demos: dict[str, tuple[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Interest-item explanation table: user -> item_id -> explanation (pairs: (interest, item_id)).

    ``demos[u]`` = (interest, item_id of a movie from the user's history) becomes pair 1, explained
    in the pre-fill by :func:`explanation_seed` (not counted). Failed users get no entries (the API
    then serves the tag alone); outcomes come back too.
    """
    demos = (demos or {}) if config.prefill else {}
    domain = config.domain or data.domain
    full = {u: ([demos[u]] if u in demos else []) + list(ps) for u, ps in pairs.items() if ps}
    skip = {u: int(u in demos) for u in full}
    seeds = {
        u: explanation_seed(demos[u][0], data.items[demos[u][1]].genres, data.domain_plural) for u in full if u in demos
    }
    prompts = {u: explanation_prompt([(i, data.item_text(v)) for i, v in ps], domain) for u, ps in full.items()}
    titles = {u: [data.items[v].title for _, v in ps] for u, ps in full.items()}
    vocabs = {
        u: [grounding_vocabulary(data.items[v].genres, []) | grounding_vocabulary([], [i]) for i, v in ps]
        for u, ps in full.items()
    }
    outcomes = run_stage(
        model,
        prompts,
        lambda u, reply: validate_explanations(
            reply,
            len(full[u]),
            titles[u],
            skip[u],
            [seeds[u]] if u in seeds else [],
            vocabs[u],
            [i for i, _ in full[u]],
            domain,
        ),
        max_new_tokens=config.explain_tokens,
        max_retries=config.max_retries,
        retry_temperature=config.retry_temperature,
        description="RecGPT: explaining",
        chunk=config.llm_batch,
        prefix={u: explanation_prefix(seeds.get(u)) for u in full} if config.prefill else "",
        schema={u: explanation_schema(len(full[u])) for u in full} if config.structured else None,
    )
    table = {u: {full[u][r["id"] - 1][1]: r["explanation"] for r in o.records} for u, o in outcomes.items() if o.ok}
    return {"table": table, "outcomes": outcomes}  # type: ignore[return-value]


def run_interest_and_tags(
    model: Any,
    data: Dataset,
    train: dict[str, list],
    users: Sequence[str],
    config: RecGPTConfig,
    count_tokens: Any = None,
) -> dict[str, dict[str, StageOutcome]]:
    """Stages 1 and 2 for ``users``; returns {"interests": ..., "tags": ...} outcomes."""
    hist = histories(data, train, users, config, count_tokens)
    interests = mine_interests(model, data, train, hist, config)
    tags = predict_tags(model, data, train, interests, config)
    for u in users:  # a user whose interests failed has a failed tag stage too, with the reason
        tags.setdefault(u, StageOutcome(ok=False, error="skipped: interest mining failed"))
    return {"interests": interests, "tags": tags, "histories": {u: h.text for u, h in hist.items()}}  # type: ignore[dict-item]


def to_mined(outcomes: dict[str, dict]) -> dict[str, dict]:
    """Per-user serving view of stage outcomes: validated interests and tags (empty on failure)."""
    return {u: {"interests": o["interests"]["records"], "tags": o["tags"]["records"]} for u, o in outcomes.items()}


def explain_top_items(
    model: Any,
    data: Dataset,
    mined: dict[str, dict],
    top_items: dict[str, list[dict]],
    config: RecGPTConfig,
    train: dict[str, list] | None = None,
) -> tuple[dict[str, dict[str, str]], dict[str, StageOutcome]]:
    """Explain each user's first ``n_explain`` recommended items against the interest behind the
    tag that retrieved them (or the user's first interest). With ``train``, a movie from the
    user's own history (newest of the top genre) is the pre-filled demonstration pair."""
    pairs, demos = {}, {}
    for u, items in top_items.items():
        interests = {t["tag"]: t["interest"] for t in mined.get(u, {}).get("tags", [])}
        fallback = f"{data.domain_plural} like the ones chosen before"
        default = (mined.get(u, {}).get("interests") or [{"interest": fallback}])[0]["interest"]
        pairs[u] = [(interests.get(it.get("tag") or "", default), it["item_id"]) for it in items[: config.n_explain]]
        facts = history_facts(data, train[u], config.min_rating) if train and u in train else None
        if facts and facts["demo_item"]:
            demos[u] = (facts["seed"]["interest"], facts["demo_item"])
    result = explain(model, data, pairs, config, demos)
    return result["table"], result["outcomes"]  # type: ignore[index]
