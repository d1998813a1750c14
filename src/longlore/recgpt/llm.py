"""The three LLM stages of RecGPT behind the core text-model interface, with JSON repair and retries.

Interest mining -> ``[{interest, stage, reason}]``; tag prediction -> ``[{tag, interest, reason}]``
("modifier + core word", consistent, diverse, fresh, no vague words); explanation generation ->
a short reason per interest-item pair, kept as a lookup table. Every reply is parsed, repaired
when it is almost JSON, validated, and re-asked (sampling, new seed) at most ``max_retries``
times; a reply that never validates is recorded as a failure and the run goes on. Requests go
through whatever model is passed, normally a :class:`CachedTextModel`, so a run resumes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from longlore.core.backends import GenerationRequest
from longlore.core.progress import track

SYSTEM = "You are a careful recommendation analyst. You answer with JSON only."
VAGUE_WORDS = {"good", "nice", "great", "best", "stuff", "things", "thing", "various", "some", "other", "misc",
               "interesting", "popular", "movie", "movies", "film", "films", "items", "item"}


# Format examples shown in the prompts; a record that merely copies one is rejected.
INTEREST_EXAMPLE = [{"interest": "space adventure", "stage": "long-term", "reason": "many sci-fi films over a year"}]
TAG_EXAMPLE = [{"tag": "dark crime thriller", "interest": "crime stories", "reason": "likes gangster films"}]
EXPLANATION_EXAMPLE = [{"id": 1, "explanation": "a funny family adventure"}]
_COPIES = {INTEREST_EXAMPLE[0]["interest"], TAG_EXAMPLE[0]["tag"], EXPLANATION_EXAMPLE[0]["explanation"]}


class ParseError(ValueError):
    """A reply that is not (repairable) JSON of the expected shape."""


# --- parsing and repair -------------------------------------------------------------------

def _close_truncated(text: str) -> str:
    """Cut a truncated array after its last complete object and close the brackets."""
    end = text.rfind("}")
    if end < 0:
        return text
    head = text[:end + 1]
    opened = head.count("[") - head.count("]")
    return head + "]" * max(opened, 0)


def parse_json_list(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The JSON array of objects in a reply, and whether it needed repair.

    Repairs: code fences, prose around the JSON, smart or single quotes, trailing commas, Python
    literals, a single object instead of a list, a list wrapped in an object, and a reply cut off
    by the token limit (kept up to its last complete object). Raises :class:`ParseError` otherwise.
    """
    raw = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)(?:```|$)", raw, re.DOTALL)
    body = fenced.group(1) if fenced else raw
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        raise ParseError("no JSON array or object in the reply")
    body = body[min(starts):]
    candidates = [body]
    fixed = body.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    if '"' not in fixed:
        fixed = fixed.replace("'", '"')
    fixed = re.sub(r",\s*([\]}])", r"\1", fixed)
    fixed = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", re.sub(r"\bNone\b", "null", fixed)))
    candidates += [fixed, _close_truncated(fixed), "[" + _close_truncated(fixed).rstrip(",]") + "]"]
    value: Any = None
    for index, candidate in enumerate(candidates):
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate)
            break
        except json.JSONDecodeError:
            continue
    else:
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
    return {"item_tag": "tag", "tags": "tag", "interests": "interest", "reasons": "reason",
            "explain": "explanation", "reason_text": "reason"}.get(key, key)


def is_placeholder(text: str) -> bool:
    """A value copied from the prompt (a ``<slot>`` or the format example) rather than written by the model."""
    return "<" in text or ">" in text or text.strip().lower() in _COPIES


def looks_copied_from_history(text: str) -> bool:
    """Dates, years, brackets or separators: the model echoed the history format, not a theme."""
    return bool(re.search(r"\d|[\[\]()|]", text))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'-]+", text.lower())


# --- validators: raw reply -> validated records (or ParseError) ---------------------------

def validate_interests(reply: str) -> tuple[list[dict], bool]:
    """``{interest, stage, reason}`` records; stage normalised to long-term / short-term."""
    records, repaired = parse_json_list(reply)
    out, seen = [], set()
    for rec in records:
        interest, stage = str(rec.get("interest", "")).strip(), str(rec.get("stage", "")).lower()
        stage = "long-term" if "long" in stage else "short-term" if "short" in stage else ""
        key = " ".join(_words(interest))
        if (not interest or len(interest) > 80 or not stage or key in seen or is_placeholder(interest)
                or looks_copied_from_history(interest)):
            continue
        seen.add(key)
        out.append({"interest": interest, "stage": stage, "reason": str(rec.get("reason", "")).strip()})
    if not out:
        raise ParseError("no valid {interest, stage, reason} record")
    return out, repaired


def tag_problem(tag: str, interests: Sequence[str], recent_titles: Sequence[str]) -> str | None:
    """Why a tag breaks the tag-prediction constraints, or None if it is fine."""
    words = _words(tag)
    if is_placeholder(tag):
        return "copied the prompt's example"
    if looks_copied_from_history(tag):
        return "echoes the history format (dates, brackets)"
    if not 2 <= len(words) <= 5:
        return "not 'modifier + core word' (2-5 words)"
    if all(w in VAGUE_WORDS for w in words):
        return "vague"
    if any(t and t.lower() in tag.lower() for t in recent_titles):
        return "not fresh (names an item seen in the last month)"
    return None


def validate_tags(reply: str, interests: Sequence[str], recent_titles: Sequence[str]) -> tuple[list[dict], bool, dict]:
    """``{tag, interest, reason}`` records meeting the constraints; also counts what was dropped."""
    records, repaired = parse_json_list(reply)
    out, seen, dropped = [], set(), {}
    interest_words = [set(_words(i)) - VAGUE_WORDS for i in interests]
    for rec in records:
        tag = str(rec.get("tag", "")).strip()
        problem = tag_problem(tag, interests, recent_titles)
        key = frozenset(_words(tag))
        if problem is None and key in seen:
            problem = "duplicate (diversity)"
        linked = set(_words(str(rec.get("interest", "")))) - VAGUE_WORDS
        if problem is None and interest_words and not any(linked & w for w in interest_words):
            problem = "inconsistent (interest not among the mined interests)"
        if problem:
            dropped[problem] = dropped.get(problem, 0) + 1
            continue
        seen.add(key)
        out.append({"tag": tag, "interest": str(rec.get("interest", "")).strip(), "reason": str(rec.get("reason", "")).strip()})
    if not out:
        raise ParseError(f"no tag met the constraints (dropped: {dropped or 'none given'})")
    return out, repaired, dropped


def validate_explanations(reply: str, n_pairs: int) -> tuple[list[dict], bool]:
    """``{id, explanation}`` records with 1 <= id <= n_pairs and a short (2-12 word) explanation."""
    records, repaired = parse_json_list(reply)
    out = {}
    for rec in records:
        try:
            pid = int(rec.get("id"))
        except (TypeError, ValueError):
            continue
        text = str(rec.get("explanation", rec.get("reason", ""))).strip()
        if 1 <= pid <= n_pairs and 2 <= len(_words(text)) <= 12 and pid not in out and not is_placeholder(text):
            out[pid] = text
    if not out:
        raise ParseError("no valid {id, explanation} record")
    return [{"id": k, "explanation": v} for k, v in sorted(out.items())], repaired


# --- prompts --------------------------------------------------------------------------------

def interest_prompt(history: str, profile: str, n: int) -> str:
    return (f"A user's movie history, newest first, as Time(Behaviour)|Movies:\n{history}\n"
            f"User profile: {profile}\n\n"
            f"List about {n} of this user's interests. Mark each as long-term (steady over time) or "
            'short-term (recent); "stage" is exactly "long-term" or "short-term". An interest is a theme '
            "(a genre, mood or subject), not a title or a date. Answer with a JSON array only, for example:\n"
            + json.dumps(INTEREST_EXAMPLE))


def tag_prompt(history: str, interests: Sequence[str], recent: Sequence[str], n: int) -> str:
    return (f"A user's movie history, newest first:\n{history}\n"
            f"The user's interests: {'; '.join(interests)}.\n\n"
            f"Predict {n} short tags of movies this user would like next. Each tag is a modifier plus a "
            "core word (like \"dark crime thriller\"), matches one interest, differs from the others, "
            f"and does not name a movie watched recently ({', '.join(recent[:5]) or 'none'}). "
            "No brands, no vague words. Answer with a JSON array only, for example:\n" + json.dumps(TAG_EXAMPLE))


def explanation_prompt(pairs: Sequence[tuple[str, str]]) -> str:
    lines = "\n".join(f"{i}. interest: {interest}; movie: {item}" for i, (interest, item) in enumerate(pairs, 1))
    return ("For each numbered pair, write a short reason (3 to 10 words) why the movie fits the interest. "
            "Be relevant, factual, clear and safe.\n" + lines + "\nAnswer with a JSON array only, for example:\n"
            + json.dumps(EXPLANATION_EXAMPLE))


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
        return {"ok": self.ok, "records": self.records, "attempts": self.attempts, "repaired": self.repaired,
                "error": self.error, "raw": self.raw, "dropped": self.dropped}


def run_stage(model: Any, prompts: dict[str, str], validate: Callable[[str, str], tuple], *,
              max_new_tokens: int, max_retries: int, description: str, chunk: int = 8,
              prefix: str = "") -> dict[str, StageOutcome]:
    """Ask ``prompts`` (key -> prompt) in batches; re-ask failures with sampling, then record them.

    ``prefix`` pre-fills the assistant turn (e.g. ``[{"interest": "``) so that small models start
    inside the JSON instead of writing a numbered list; the reply validated is prefix + completion.
    The request is then the chat-formatted text with ``chat=False`` (an OpenAI endpoint serves it
    through /v1/completions).

    ``validate(key, reply)`` returns ``(records, repaired[, dropped])`` or raises ParseError. The
    first attempt is greedy; retry ``r`` samples at temperature 0.7 with seed ``r`` — each is a
    distinct request, so the cache stores it and a resumed run replays it exactly.
    """
    outcomes = {key: StageOutcome(ok=False) for key in prompts}
    pending = list(prompts)
    for attempt in range(max_retries + 1):
        if not pending:
            break
        temperature = 0.0 if attempt == 0 else 0.7
        failed = []
        batches = [pending[i:i + chunk] for i in range(0, len(pending), chunk)]
        label = description if attempt == 0 else f"{description} (retry {attempt})"
        for keys in track(batches, label):
            if prefix:
                requests = [GenerationRequest(prompt=model.format_chat(prompts[k], SYSTEM) + prefix, chat=False,
                                              max_new_tokens=max_new_tokens, temperature=temperature, seed=attempt)
                            for k in keys]
            else:
                requests = [GenerationRequest(prompt=prompts[k], system=SYSTEM, max_new_tokens=max_new_tokens,
                                              temperature=temperature, seed=attempt) for k in keys]
            for key, completions in zip(keys, model.generate(requests)):
                outcome = outcomes[key]
                outcome.attempts += 1
                reply = prefix + completions[0]
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


def stage_stats(outcomes: dict[str, StageOutcome]) -> dict[str, Any]:
    """Parse rate, first-try rate, repairs, retries and failures of one stage."""
    n = max(len(outcomes), 1)
    values = list(outcomes.values())
    return {"n": len(values), "parse_rate": sum(o.ok for o in values) / n,
            "first_try_rate": sum(o.ok and o.attempts == 1 for o in values) / n,
            "repaired": sum(o.ok and o.repaired for o in values), "retries": sum(max(o.attempts - 1, 0) for o in values),
            "failures": sum(not o.ok for o in values),
            "mean_records": sum(len(o.records) for o in values if o.ok) / max(sum(o.ok for o in values), 1)}
