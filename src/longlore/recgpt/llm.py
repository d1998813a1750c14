"""The three LLM stages of RecGPT behind the core text-model interface, with JSON repair and retries.

Interest mining -> ``[{interest, stage, reason}]``; tag prediction -> ``[{tag, interest, reason}]``
("modifier + core word", consistent, diverse, fresh, no vague words); explanation generation ->
a short reason per interest-item pair, kept as a lookup table. Every reply is parsed, repaired
when it is almost JSON, validated (grounded in the user's history, no copies of the
demonstration records that pre-fill the reply), and re-asked at most ``max_retries`` times with
a different request (sampled, new seed, the rejection reason in the prompt); a reply that never
validates is recorded as a failure and the run goes on. Requests go through whatever model is
passed, normally a :class:`CachedTextModel`, so a run resumes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from longlore.core.backends import GenerationRequest
from longlore.core.progress import track
from longlore.recgpt.prompts import (  # noqa: F401 (re-exported: the stages' texts live in prompts.py)
    GENRE_FORMS,
    explanation_prefix,
    explanation_prompt,
    explanation_seed,
    interest_prompt,
    interest_seed,
    retry_prompt,
    tag_prefix,
    tag_prompt,
    tag_seed,
)

SYSTEM = "You are a careful recommendation analyst. You answer with JSON only."
VAGUE_WORDS = {
    "good",
    "nice",
    "great",
    "best",
    "stuff",
    "things",
    "thing",
    "various",
    "some",
    "other",
    "misc",
    "interesting",
    "popular",
    "movie",
    "movies",
    "film",
    "films",
    "items",
    "item",
}


# Format examples shown in the prompts come from *other* domains (music, books): a 135M model
# tends to copy the example verbatim, and an off-domain copy is both detectable (it is in
# ``_COPIES``) and ungrounded in the user's movies, so it is never accepted.
INTEREST_EXAMPLE = [{"interest": "late-night jazz", "stage": "long-term", "reason": "many jazz albums over a year"}]
TAG_EXAMPLE = [{"interest": "detective novels", "tag": "cozy village mystery", "reason": "enjoys classic whodunits"}]
EXPLANATION_EXAMPLE = [{"id": 1, "explanation": "a cozy whodunit for a mystery reader"}]
# Earlier prompt versions used movie examples; copies of those are rejected too.
_COPIES = {
    INTEREST_EXAMPLE[0]["interest"],
    TAG_EXAMPLE[0]["tag"],
    TAG_EXAMPLE[0]["interest"],
    EXPLANATION_EXAMPLE[0]["explanation"],
    "space adventure",
    "dark crime thriller",
    "a funny family adventure",
}

# Words that ground an interest in a MovieLens genre: the genre's own name plus plain synonyms.
GENRE_TERMS = {
    "action": {"action", "explosive", "fight", "fighting", "martial", "stunt", "stunts", "hero", "heroes", "superhero"},
    "adventure": {"adventure", "adventures", "quest", "journey", "exploration", "epic", "swashbuckling"},
    "animation": {"animation", "animated", "cartoon", "cartoons", "anime", "pixar", "disney"},
    "children's": {"children", "child", "kids", "kid", "family", "families", "childhood"},
    "comedy": {
        "comedy",
        "comedies",
        "comic",
        "funny",
        "humor",
        "humour",
        "humorous",
        "laugh",
        "laughs",
        "satire",
        "parody",
    },
    "crime": {
        "crime",
        "crimes",
        "criminal",
        "gangster",
        "gangsters",
        "heist",
        "mafia",
        "mob",
        "police",
        "cop",
        "cops",
        "detective",
    },
    "documentary": {"documentary", "documentaries", "real-life", "nonfiction"},
    "drama": {"drama", "dramas", "dramatic", "emotional", "character"},
    "fantasy": {"fantasy", "magic", "magical", "myth", "mythical", "fairy", "fairytale", "wizard", "wizards"},
    "film-noir": {"noir", "film-noir", "hardboiled"},
    "horror": {"horror", "scary", "terror", "monster", "monsters", "slasher", "supernatural", "ghost", "ghosts"},
    "musical": {"musical", "musicals", "music", "songs", "song", "singing", "dance", "dancing"},
    "mystery": {"mystery", "mysteries", "whodunit", "detective", "puzzle", "suspense"},
    "romance": {"romance", "romantic", "love", "romcom", "relationships", "relationship"},
    "sci-fi": {
        "sci-fi",
        "scifi",
        "science",
        "fiction",
        "space",
        "futuristic",
        "future",
        "alien",
        "aliens",
        "robot",
        "robots",
        "dystopian",
    },
    "thriller": {"thriller", "thrillers", "suspense", "tense", "suspenseful", "psychological"},
    "war": {"war", "military", "soldiers", "soldier", "battle", "battles", "wartime"},
    "western": {"western", "westerns", "cowboy", "cowboys", "frontier", "outlaw", "outlaws"},
}
_STOP = {
    "the",
    "a",
    "an",
    "of",
    "and",
    "in",
    "on",
    "to",
    "for",
    "with",
    "at",
    "by",
    "from",
    "de",
    "la",
    "le",
    "les",
    "el",
    "il",
    "du",
    "der",
    "die",
    "das",
    "part",
    "ii",
    "iii",
}


class ParseError(ValueError):
    """A reply that is not (repairable) JSON of the expected shape."""


# --- parsing and repair -------------------------------------------------------------------


def _close_truncated(text: str) -> str:
    """Cut a truncated array after its last complete object and close the brackets."""
    end = text.rfind("}")
    if end < 0:
        return text
    head = text[: end + 1]
    opened = head.count("[") - head.count("]")
    return head + "]" * max(opened, 0)


def _salvage_objects(text: str) -> list[dict[str, Any]]:
    """The flat ``{...}`` objects of a partly broken array that parse on their own (a small model
    often writes good records, then one malformed record, or loops until the token limit)."""
    out = []
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            value = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def parse_json_list(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The JSON array of objects in a reply, and whether it needed repair.

    Repairs: code fences, prose around the JSON, smart or single quotes, trailing commas, Python
    literals, a single object instead of a list, a list wrapped in an object, a reply cut off
    by the token limit (kept up to its last complete object), and as a last resort an array with
    malformed records (the flat objects that parse are kept). Raises :class:`ParseError` otherwise.
    """
    raw = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)(?:```|$)", raw, re.DOTALL)
    body = fenced.group(1) if fenced else raw
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        raise ParseError("no JSON array or object in the reply")
    body = body[min(starts) :]
    candidates = [body]
    fixed = body.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    if '"' not in fixed:
        fixed = fixed.replace("'", '"')
    fixed = re.sub(r",\s*([\]}])", r"\1", fixed)
    fixed = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", re.sub(r"\bNone\b", "null", fixed)))
    candidates += [fixed, _close_truncated(fixed), "[" + _close_truncated(fixed).rstrip(",]") + "]"]
    value: Any = None
    for index, candidate in enumerate(candidates):  # noqa: B007 (index is read after the loop)
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate)
            break
        except json.JSONDecodeError:
            continue
    else:
        value, index = _salvage_objects(fixed), len(candidates)
        if not value:
            raise ParseError("reply is not valid JSON, even after repair")
    repaired = index > 0 or body.strip() != raw
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        value, repaired = (lists[0], True) if lists else ([value], True)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ParseError("expected a JSON array of objects")
    return [{_norm_key(k): v for k, v in obj.items()} for obj in value], repaired


def _norm_key(key: str) -> str:
    key = re.sub(r"[^a-z]+", "_", str(key).lower()).strip("_")
    return {
        "item_tag": "tag",
        "tags": "tag",
        "interests": "interest",
        "reasons": "reason",
        "explain": "explanation",
        "reason_text": "reason",
    }.get(key, key)


def is_placeholder(text: str) -> bool:
    """A value copied from the prompt (a ``<slot>`` or the format example) rather than written by the model."""
    return "<" in text or ">" in text or text.strip().lower() in _COPIES


def looks_copied_from_history(text: str) -> bool:
    """Dates, years, brackets or separators: the model echoed the history format, not a theme."""
    return bool(re.search(r"\d|[\[\]()|]", text))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'-]+", text.lower())


def _stem(word: str) -> str:
    """Crude plural folding ("comedies" -> "comedy", "thrillers" -> "thriller") for word matching."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def grounding_vocabulary(genres: Sequence[str], titles: Sequence[str]) -> set[str]:
    """Words that tie an interest to a user's history: the history's genres with their synonyms
    (``GENRE_TERMS``) and the content words of the titles watched (stemmed)."""
    vocab: set[str] = set()
    for genre in genres:
        vocab |= GENRE_TERMS.get(genre.lower(), {genre.lower()})
    for title in titles:
        vocab |= {w for w in _words(re.sub(r"\(\d{4}\)", "", title)) if len(w) > 2 and w not in _STOP}
    return {_stem(w) for w in vocab} | {w for part in vocab for w in part.split("-") if len(w) > 2}


def is_grounded(text: str, vocab: set[str] | None) -> bool:
    """True when ``text`` shares a content word with ``vocab`` (always true without a vocabulary)."""
    if vocab is None:
        return True
    words = {_stem(w) for w in _words(text)} | {_stem(p) for w in _words(text) for p in w.split("-")}
    return bool(words & vocab)


# --- validators: raw reply -> validated records (or ParseError) ---------------------------


def validate_interests(
    reply: str, vocab: set[str] | None = None, seeded: Sequence[str] = ()
) -> tuple[list[dict], bool, dict]:
    """``{interest, stage, reason}`` records; stage normalised to long-term / short-term.

    With ``vocab`` (see :func:`grounding_vocabulary`) an interest must share a word with the
    user's history genres (or their synonyms) or watched titles: "late-night jazz" copied from the
    format example, or an invented "Ozbekistan", is dropped. Records whose interest is one of
    ``seeded`` (pre-filled by us, see :func:`interest_seed`) are not the model's and are skipped,
    and so are later repeats of them. Also returns what was dropped, by reason.
    """
    records, repaired = parse_json_list(reply)
    seeds = {" ".join(_words(x)) for x in seeded}
    records = _skip_seed(records, "interest", seeds)
    out, seen, dropped = [], set(seeds), {}
    for rec in records:
        interest, stage = str(rec.get("interest", "")).strip(), str(rec.get("stage", "")).lower()
        stage = "long-term" if "long" in stage else "short-term" if "short" in stage else ""
        key = " ".join(_words(interest))
        problem = (
            "empty or too long"
            if not interest or len(interest) > 80
            else "copied the prompt's example"
            if is_placeholder(interest)
            else "echoes the history format (dates, brackets)"
            if looks_copied_from_history(interest)
            else "stage is not long-term / short-term"
            if not stage
            else "duplicate"
            if key in seen
            else "not grounded in the history (no genre or title word)"
            if not is_grounded(interest, vocab)
            else None
        )
        if problem:
            dropped[problem] = dropped.get(problem, 0) + 1
            continue
        seen.add(key)
        out.append({"interest": interest, "stage": stage, "reason": str(rec.get("reason", "")).strip()})
    if not out:
        raise ParseError(f"no valid {{interest, stage, reason}} record (dropped: {dropped or 'none given'})")
    return out, repaired, dropped


def _vague(domain: str) -> set[str]:
    """Vague words, plus the domain's own nouns ("book", "books"): "good books" names no kind of book."""
    return VAGUE_WORDS | {domain, f"{domain}s", domain.rstrip("s")}


def tag_problem(
    tag: str,
    interests: Sequence[str],
    recent_titles: Sequence[str],
    catalogue: set[str] | None = None,
    domain: str = "movie",
) -> str | None:
    """Why a tag breaks the tag-prediction constraints, or None if it is fine.

    ``catalogue`` (lower-cased titles) rejects a tag that is an item title: a tag names a kind of
    item (``domain``: movie, book, product)."""
    words = _words(tag)
    if is_placeholder(tag):
        return "copied the prompt's example"
    if looks_copied_from_history(tag):
        return "echoes the history format (dates, brackets)"
    if "_" in tag or not 2 <= len(words) <= 5 or len({_stem(w) for w in words}) < 2:
        return "not 'modifier + core word' (2-5 words)"
    if all(w in _vague(domain) for w in words):
        return "vague"
    if any(t and t.lower() in tag.lower() for t in recent_titles):
        return "not fresh (names an item seen in the last month)"
    if catalogue and tag.strip().lower() in catalogue:
        return f"a {domain} title, not a kind of {domain}"
    return None


def _skip_seed(records: list[dict], key: str, seeds: set[str]) -> list[dict]:
    """Drop the pre-filled demonstration record (the first one, when it is the seed)."""
    if seeds and records and " ".join(_words(str(records[0].get(key, "")))) in seeds:
        return records[1:]
    return records


def validate_tags(
    reply: str,
    interests: Sequence[str],
    recent_titles: Sequence[str],
    seeded: Sequence[str] = (),
    catalogue: set[str] | None = None,
    domain: str = "movie",
) -> tuple[list[dict], bool, dict]:
    """``{tag, interest, reason}`` records meeting the constraints; also counts what was dropped.

    ``seeded`` are pre-filled demonstration tags (see :func:`tag_seed`): skipped, and rejected as
    copies if the model repeats them."""
    records, repaired = parse_json_list(reply)
    seeds = {" ".join(_words(x)) for x in seeded}
    records = _skip_seed(records, "tag", seeds)
    out, seen, dropped = [], set(), {}
    vague = _vague(domain)
    interest_words = [{_stem(w) for w in _words(i)} - vague for i in interests]
    for rec in records:
        tag = str(rec.get("tag", "")).strip()
        problem = tag_problem(tag, interests, recent_titles, catalogue, domain)
        if problem is None and " ".join(_words(tag)) in seeds:
            problem = "copied the prompt's example"
        key = frozenset(_stem(w) for w in _words(tag))
        if problem is None and key in seen:
            problem = "duplicate (diversity)"
        linked = {_stem(w) for w in _words(str(rec.get("interest", "")))} - vague
        if problem is None and interest_words and not any(linked & w for w in interest_words):
            problem = "inconsistent (interest not among the mined interests)"
        if problem is None and key - {_stem(w) for w in vague} <= linked:
            problem = f"repeats its interest (not a new kind of {domain})"
        if problem:
            dropped[problem] = dropped.get(problem, 0) + 1
            continue
        seen.add(key)
        out.append(
            {"tag": tag, "interest": str(rec.get("interest", "")).strip(), "reason": str(rec.get("reason", "")).strip()}
        )
    if not out:
        raise ParseError(f"no tag met the constraints (dropped: {dropped or 'none given'})")
    return out, repaired, dropped


def validate_explanations(
    reply: str,
    n_pairs: int,
    titles: Sequence[str] = (),
    skip: int = 0,
    seeded: Sequence[str] = (),
    vocabs: Sequence[set[str]] = (),
    interests: Sequence[str] = (),
    domain: str = "movie",
) -> tuple[list[dict], bool, dict]:
    """``{id, explanation}`` records with ``skip`` < id <= n_pairs and a short (3-12 word) explanation.

    ``titles[id - 1]`` is pair ``id``'s item title: an explanation must say more than the title
    (>= 2 words besides the title's, the domain's nouns ("movie", "film", "book") and stop words). Pairs ``1..skip`` are
    pre-filled demonstrations (see :func:`explanation_seed`), not counted; repeats of ``seeded``
    texts are copies. With ``vocabs[id - 1]`` (the pair's movie genres and interest words, see
    :func:`grounding_vocabulary`) an explanation must share a word with it (relevance); with
    ``interests[id - 1]`` one that only repeats the pair's interest is dropped."""
    records, repaired = parse_json_list(reply)
    seeds = {" ".join(_words(x)) for x in seeded}
    nouns = {"movie", "film", domain}
    vague = _vague(domain)
    out, dropped = {}, {}
    for rec in records:
        try:
            pid = int(rec.get("id"))
        except (TypeError, ValueError):
            continue
        if pid <= skip:
            continue
        text = str(rec.get("explanation", rec.get("reason", ""))).strip()
        title = set(_words(titles[pid - 1])) if 0 < pid <= len(titles) else set()
        own = [w for w in _words(text) if w not in title and w not in _STOP and w not in nouns]
        problem = (
            "id out of range"
            if not 0 < pid <= n_pairs
            else "duplicate id"
            if pid in out
            else "not 3-12 words"
            if not 3 <= len(_words(text)) <= 12
            else "copied the prompt's example"
            if is_placeholder(text) or " ".join(_words(text)) in seeds
            else f"only names the {domain}"
            if len(own) < 2
            else "repeats the interest"
            if pid <= len(interests)
            and {_stem(w) for w in own} - vague <= {_stem(w) for w in _words(interests[pid - 1])}
            else f"not relevant (no word of the {domain}'s categories or the interest)"
            if pid <= len(vocabs) and not is_grounded(text, vocabs[pid - 1])
            else None
        )
        if problem:
            dropped[problem] = dropped.get(problem, 0) + 1
            continue
        out[pid] = text
    if not out:
        raise ParseError(f"no valid {{id, explanation}} record (dropped: {dropped or 'none given'})")
    return [{"id": k, "explanation": v} for k, v in sorted(out.items())], repaired, dropped


# --- the stage runner -------------------------------------------------------------------------


@dataclass
class StageOutcome:
    """One user's result of one stage: validated records or a recorded failure."""

    ok: bool
    records: list[dict] = field(default_factory=list)
    attempts: int = 0
    repaired: bool = False
    error: str = ""
    raw: list[str] = field(default_factory=list)
    dropped: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "records": self.records,
            "attempts": self.attempts,
            "repaired": self.repaired,
            "error": self.error,
            "raw": self.raw,
            "dropped": self.dropped,
        }


def run_stage(
    model: Any,
    prompts: dict[str, str],
    validate: Callable[[str, str], tuple],
    *,
    max_new_tokens: int,
    max_retries: int,
    description: str,
    chunk: int = 8,
    prefix: str | dict[str, str] = "",
    retry_temperature: float = 0.9,
    stop_at_close: bool = True,
    schema: dict | None = None,
) -> dict[str, StageOutcome]:
    """Ask ``prompts`` (key -> prompt) in batches; re-ask failures with sampling, then record them.

    ``prefix`` (one string, or one per key) pre-fills the assistant turn (e.g. ``[{"interest": "``)
    so that small models start inside the JSON instead of writing a numbered list; the reply
    validated is prefix + completion (``GenerationRequest.response_prefix``; local models only).

    ``schema`` (one JSON schema per key) constrains each reply to that schema (structured
    generation, see :mod:`longlore.recgpt.prompts`): it then always parses, and the validators
    judge only its content. Without a schema, generation stops at the first ``]`` (below).

    ``validate(key, reply)`` returns ``(records, repaired[, dropped])`` or raises ParseError. The
    first attempt is greedy; retry ``r`` differs from every earlier attempt in three ways: the
    prompt says why the last reply was rejected, it samples at ``retry_temperature``, and it uses
    seed ``r``. With ``stop_at_close`` generation stops at the first ``]`` (the array is closed;
    a small model otherwise rambles on and holds up its whole batch) and the ``]`` is put back
    when an array is left open.
    Each is a distinct request (temperature and seed are part of the cache key), so the
    cache never replays a greedy reply as a retry, and a resumed run replays the retries exactly.
    """
    outcomes = {key: StageOutcome(ok=False) for key in prompts}
    pending = list(prompts)
    for attempt in range(max_retries + 1):
        if not pending:
            break
        temperature = 0.0 if attempt == 0 else retry_temperature
        failed = []
        batches = [pending[i : i + chunk] for i in range(0, len(pending), chunk)]
        label = description if attempt == 0 else f"{description} (retry {attempt})"
        for keys in track(batches, label):
            texts = {k: prompts[k] if attempt == 0 else retry_prompt(prompts[k], outcomes[k].error) for k in keys}
            starts = {k: prefix.get(k, "") if isinstance(prefix, dict) else prefix for k in keys}
            requests = [
                GenerationRequest(
                    prompt=texts[k],
                    system=SYSTEM,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    seed=attempt,
                    stop=("]",) if stop_at_close and not (schema and schema.get(k)) else (),
                    json_schema=schema.get(k) if schema else None,
                    response_prefix=starts[k],
                )
                for k in keys
            ]
            for key, completions in zip(keys, model.generate(requests)):
                outcome = outcomes[key]
                outcome.attempts += 1
                reply = starts[key] + completions[0]
                if stop_at_close and not (schema and schema.get(key)) and reply.count("[") > reply.count("]"):
                    reply += "]"  # the stop string, cut off by the backend
                outcome.raw.append(reply)
                try:
                    result = validate(key, reply)
                except ParseError as err:
                    outcome.error = str(err)
                    failed.append(key)
                    continue
                outcome.ok, outcome.records, outcome.repaired, outcome.error = True, result[0], result[1], ""
                outcome.dropped = result[2] if len(result) > 2 else {}
        pending = failed
    return outcomes


def _strict_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def stage_stats(outcomes: dict[str, StageOutcome]) -> dict[str, Any]:
    """Rates of one stage: ``parse_rate`` = users with valid records (after the content validators),
    ``json_parse_rate`` = replies (every attempt) that are strict JSON as written (None when no
    reply was made), first-try rate, repairs, retries and failures."""
    n = max(len(outcomes), 1)
    values = list(outcomes.values())
    raws = [r for o in values for r in o.raw]
    return {
        "n": len(values),
        "json_parse_rate": sum(map(_strict_json, raws)) / len(raws) if raws else None,  # None: no reply made
        "replies": len(raws),
        "parse_rate": sum(o.ok for o in values) / n,
        "first_try_rate": sum(o.ok and o.attempts == 1 for o in values) / n,
        "repaired": sum(o.ok and o.repaired for o in values),
        "retries": sum(max(o.attempts - 1, 0) for o in values),
        "failures": sum(not o.ok for o in values),
        "mean_records": sum(len(o.records) for o in values if o.ok) / max(sum(o.ok for o in values), 1),
    }
