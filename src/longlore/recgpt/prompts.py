"""The LLM stages' prompts, pre-filled demonstrations and JSON schemas, in the dataset's own domain.

Every text speaks of the dataset's items ("movie", "book", "product": ``Dataset.domain``), never of
movies by default. Each stage has a JSON schema that the local backend enforces token by token
(``GenerationRequest.json_schema``), so every reply parses; content rules (grounding, freshness,
copies) stay in the validators of :mod:`longlore.recgpt.llm`, which re-ask on failure.

The schemas fix the key order (that of ``required``), the record count and the string lengths
(a 135M model otherwise loops until the token limit), and what the data decides: a stage is
long-term or short-term, a tag links to one of the user's mined interests (an enum), an
explanation has one record per numbered pair.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

# Adjective and plural-noun forms of each MovieLens genre, used to build the demonstration records
# that pre-fill the replies from the user's own history (see the ``*_seed`` functions). "films" is
# replaced by the domain's plural for other domains; unknown genres get ("<genre>", "<genre> <plural>").
GENRE_FORMS = {
    "action": ("action-packed", "action films"),
    "adventure": ("adventurous", "adventures"),
    "animation": ("animated", "cartoons"),
    "children's": ("family", "family films"),
    "comedy": ("comic", "comedies"),
    "crime": ("crime", "crime films"),
    "documentary": ("documentary", "documentaries"),
    "drama": ("dramatic", "dramas"),
    "fantasy": ("fantasy", "fantasies"),
    "film-noir": ("noir", "noir films"),
    "horror": ("horror", "horror films"),
    "musical": ("musical", "musicals"),
    "mystery": ("mysterious", "mysteries"),
    "romance": ("romantic", "romances"),
    "sci-fi": ("sci-fi", "sci-fi films"),
    "thriller": ("suspenseful", "thrillers"),
    "war": ("wartime", "war films"),
    "western": ("western", "westerns"),
}
# String budgets of the schemas: a 135M model otherwise writes long rambling reasons, and CPU time
# goes with generated tokens. A reason is kept short on purpose; retrieval uses only the tags.
TEXT_CHARS = 40  # maxLength of an interest or a tag
REASON_CHARS = 40  # maxLength of a reason
EXPLANATION_CHARS = 70  # maxLength of an explanation


def _forms(genre: str, plural: str = "movies") -> tuple[str, str]:
    adjective, noun = GENRE_FORMS.get(genre.lower(), (genre.lower(), f"{genre.lower()} films"))
    return adjective, noun.replace("films", plural) if plural != "movies" else noun


def _fit(text: str, limit: int) -> str:
    """``text`` cut on a word boundary to at most ``limit`` characters (demonstrations must fit the schema)."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;: ") or text[:limit]


# --- prompts ----------------------------------------------------------------------------------


def interest_prompt(history: str, profile: str, n: int, genre_counts: str = "", domain: str = "movie") -> str:
    """Interest mining: the compressed history (+ category counts) and the keys in words. No example
    object: SmolLM2-135M copies any example verbatim; the format is shown by :func:`interest_seed`."""
    plural = f"{domain}s" if not domain.endswith("s") else domain
    counts = f"Categories (count): {genre_counts}\n" if genre_counts else ""
    return (
        f"A user's {domain} history, newest first, as Time(Behaviour)|{plural.capitalize()}:\n{history}\n{counts}"
        f"Profile: {profile}\n\n"
        f"List {n} more interests of this user as a JSON array of objects with the keys "
        f'"interest" (a theme of these {plural}: category, mood or subject, 1-4 words, no title or date), '
        '"stage" ("long-term" or "short-term") and '
        f'"reason" (one or two {plural} of the history that show it).'
    )


def interest_seed(genre: str, titles: Sequence[str], plural: str = "movies") -> dict[str, str]:
    """The demonstration record that pre-fills the interest reply, built from the user's most
    frequent category and two of its titles: the format, in the user's own domain. It is not counted
    as a mined interest, and a model that merely repeats it gets no credit (see validate_interests)."""
    return {
        "interest": _fit(f"{genre.lower()} {plural}", TEXT_CHARS),
        "stage": "long-term",
        "reason": _fit(", ".join(titles[:2]), REASON_CHARS),
    }


def tag_seed(interest: str, top_genre: str, new_genre: str, plural: str = "movies") -> dict[str, str]:
    """The demonstration record that pre-fills the tag reply: a modifier from the user's top category
    on a category the user rarely chooses ("dramatic westerns"). Not counted; copies are rejected."""
    return {
        "interest": interest,
        "tag": _fit(f"{_forms(top_genre, plural)[0]} {_forms(new_genre, plural)[1]}", TEXT_CHARS),
        "reason": _fit(f"{_forms(new_genre, plural)[1]} are new to this user", REASON_CHARS),
    }


def explanation_seed(interest: str, genres: Sequence[str], plural: str = "movies") -> str:
    """The demonstration explanation (pair 1, an item from the user's own history): its categories in
    words plus the interest. Not counted; copies are rejected."""
    genres = list(genres) or ["drama"]
    words = (
        f"{_forms(genres[0], plural)[0]} {_forms(genres[1], plural)[1]}"
        if len(genres) > 1
        else _forms(genres[0], plural)[1]
    )
    return _fit(f"{words} for a fan of {interest}", EXPLANATION_CHARS)


def tag_prompt(interests: Sequence[str], recent: Sequence[str], domain: str = "movie") -> str:
    """Tag prediction from the interests (not the full history, to keep the prompt short): one tag
    per interest, each a modifier plus a core word, excluding recently chosen titles. With
    pre-fill, ``interests[0]`` is the demonstration's interest (see :func:`tag_seed`)."""
    listed = "\n".join(f"{i}. {interest}" for i, interest in enumerate(interests, 1))
    return (
        f"A {domain} fan's interests:\n{listed}\n"
        f"Recently chosen (do not name these): {', '.join(recent[:5]) or 'none'}.\n\n"
        f"For each interest, suggest one new kind of {domain} to try next, as a short tag: a modifier "
        "plus a core word, 2 to 4 words, no titles, no vague words, all tags different. Answer with a "
        'JSON array; each element has the keys "interest" (copied from the list), "tag" and "reason".'
    )


def tag_prefix(seed: dict[str, str] | None, interests: Sequence[str]) -> str:
    """Assistant-turn pre-fill of the tag reply: the demonstration record, then the opening of the
    record for the first mined interest, so the model writes its tag and continues with the others."""
    head = "[" + (json.dumps(seed) + ", " if seed else "")
    return head + '{"interest": ' + json.dumps(interests[0]) + ', "tag": "'


def explanation_prompt(pairs: Sequence[tuple[str, str]], domain: str = "movie") -> str:
    lines = "\n".join(f"{i}. interest: {interest}; {domain}: {item}" for i, (interest, item) in enumerate(pairs, 1))
    return (
        f"For each numbered pair, say in 4 to 10 words why the {domain} fits the interest: name its mood, "
        "category or subject; do not repeat the title. Be factual and safe.\n"
        + lines
        + '\nAnswer with a JSON array; each element has the keys "id" (the pair number) and "explanation".'
    )


def explanation_prefix(seed: str | None) -> str:
    """Pre-fill: pair 1's demonstration explanation (when given), then the opening of the next."""
    if seed is None:
        return '[{"id": 1, "explanation": "'
    return '[{"id": 1, "explanation": ' + json.dumps(seed) + '}, {"id": 2, "explanation": "'


def retry_prompt(prompt: str, error: str) -> str:
    """The prompt of a re-ask: the original plus why the last reply was rejected."""
    return f"{prompt}\n\nA previous answer was rejected ({error[:160]}). Write a new, different answer."


# --- JSON schemas of the replies ---------------------------------------------------------------


def _records(properties: dict[str, Any], min_items: int, max_items: int) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": min_items,
        "maxItems": max_items,
        "items": {"type": "object", "properties": properties, "required": list(properties)},
    }


def interest_schema(n: int, seeded: int = 0) -> dict[str, Any]:
    """``seeded`` demonstration records (pre-filled) plus 1..n interests ``{interest, stage, reason}``."""
    return _records(
        {
            "interest": {"type": "string", "maxLength": TEXT_CHARS},
            "stage": {"type": "string", "enum": ["long-term", "short-term"]},
            "reason": {"type": "string", "maxLength": REASON_CHARS},
        },
        seeded + 1,
        seeded + n,
    )


def tag_schema(interests: Sequence[str], n: int, seeded: int = 0) -> dict[str, Any]:
    """``seeded`` + 1..n ``{interest, tag, reason}`` records whose interest is one of ``interests``
    (consistency with the mined interests holds by construction)."""
    return _records(
        {
            "interest": {"type": "string", "enum": list(dict.fromkeys(interests))},
            "tag": {"type": "string", "maxLength": TEXT_CHARS},
            "reason": {"type": "string", "maxLength": REASON_CHARS},
        },
        seeded + 1,
        seeded + n,
    )


def explanation_schema(n_pairs: int) -> dict[str, Any]:
    """One ``{id, explanation}`` record per numbered pair (ids 1..n_pairs, demonstration included)."""
    return _records(
        {
            "id": {"type": "integer", "enum": list(range(1, n_pairs + 1))},
            "explanation": {"type": "string", "maxLength": EXPLANATION_CHARS},
        },
        n_pairs,
        n_pairs,
    )
