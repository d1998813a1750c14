"""RAM data: the QA record schema, its validation, and the long-document QA generator.

``make_dataset`` plants facts about synthetic brands (names no pretrained model knows) at random
depths of real public-domain text. Every document also holds near-duplicate distractor facts about
*other* brands with the same relations (so reading the wrong segment gives a wrong answer), and a
share of questions needs two facts (a brand's parent company, then that company's city).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from longlore.core.errors import LongloreError
from longlore.core.io import read_jsonl
from longlore.core.text import EcomWorld, public_domain_text


class QARecord(BaseModel):
    """One long-document QA example (JSONL line)."""

    context: str = Field(description="The long document.")
    question: str
    answers: list[str] = Field(description="Accepted answers; the first is the training target.")
    positive_spans: list[str] = Field(default_factory=list, description="Evidence sentences (optional).")
    id: str = ""
    doc: str = Field(default="", description="Records with the same doc share one context (optional).")

    @field_validator("context")
    @classmethod
    def _context_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty context")
        return value

    @field_validator("question")
    @classmethod
    def _question_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty question")
        return value

    @field_validator("answers")
    @classmethod
    def _has_answer(cls, value: list[str]) -> list[str]:
        if not value or not any(a.strip() for a in value):
            raise ValueError("no answers: give at least one non-empty answer")
        return value

    def as_example(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "question": self.question,
            "answer": self.answers[0],
            "answers": self.answers,
            "positive_spans": self.positive_spans,
            "id": self.id,
            "doc": self.doc,
        }


def load_qa(path: str | Path, tokenizer: Any = None, max_question_tokens: int | None = None) -> list[QARecord]:
    """Read and validate a QA JSONL file; optionally reject questions longer than a token budget."""
    records = read_jsonl(path, QARecord)
    if tokenizer is not None and max_question_tokens is not None:
        for line, record in enumerate(records, start=1):
            n = len(tokenizer(record.question, add_special_tokens=False)["input_ids"])
            if n > max_question_tokens:
                raise LongloreError(
                    f"{path}:{line}: field 'question': {n} tokens exceeds the budget of "
                    f"{max_question_tokens}; shorten it or raise the budget"
                )
    return records


CITIES = [
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Lima",
    "Hanoi",
    "Kraków",
    "Tbilisi",
    "Montevideo",
    "Accra",
    "Quito",
    "Tallinn",
    "Da Nang",
    "Porto",
    "Valparaíso",
    "Cebu",
    "Bergen",
    "Zanzibar",
    "Tromsø",
    "Cusco",
    "Sapporo",
]
COLOURS = ["amber", "teal", "crimson", "ivory", "olive", "indigo", "coral", "slate", "saffron", "jade"]


def _facts_for(brand: str, parent: str, rng: random.Random) -> dict[str, tuple[str, str, str]]:
    """relation -> (fact sentence, question, answer) for one brand."""
    city, colour, year, code = (
        rng.choice(CITIES),
        rng.choice(COLOURS),
        str(rng.randint(1890, 2015)),
        str(rng.randint(1000, 9999)),
    )
    return {
        "city": (
            f"The headquarters of {brand} are in {city}.",
            f"In which city are the headquarters of {brand}?",
            city,
        ),
        "year": (f"{brand} was founded in {year}.", f"In which year was {brand} founded?", year),
        "colour": (f"The logo of {brand} is {colour}.", f"What colour is the logo of {brand}?", colour),
        "code": (f"The registration code of {brand} is {code}.", f"What is the registration code of {brand}?", code),
        "parent": (f"{brand} is owned by {parent}.", f"Which company owns {brand}?", parent),
    }


def make_example(
    tokenizer: Any, n_tokens: int, rng: random.Random, brands: list[str], two_fact: bool
) -> dict[str, Any]:
    """One document of about ``n_tokens`` tokens with planted facts, distractors and a question."""
    target, parent, *others = rng.sample(brands, 6)
    facts = _facts_for(target, parent, rng)
    relation = rng.choice(["city", "year", "colour", "code"])
    sentence, question, answer = facts[relation]
    evidence = [sentence]
    planted = [sentence]
    if two_fact:  # the answer needs the parent link and the parent's city
        parent_facts = _facts_for(parent, rng.choice(others), rng)
        question = f"In which city are the headquarters of the company that owns {target}?"
        answer = parent_facts["city"][2]
        evidence = [facts["parent"][0], parent_facts["city"][0]]
        planted = list(evidence)
    # near-duplicate distractors: the same relation for other brands (and the target's other relations)
    for other in others:
        planted.append(_facts_for(other, rng.choice(brands), rng)["city" if two_fact else relation][0])
    planted += [facts[r][0] for r in ("city", "year", "colour", "code") if r != relation and not two_fact]
    rng.shuffle(planted)
    text = public_domain_text()
    chars = int(n_tokens * 4.2)  # ~4.2 characters per token for this tokenizer family on KJV text
    start = rng.randrange(0, len(text) - chars)
    sentences = text[start : start + chars].replace("\n\n", " ").split(". ")[1:-1]
    for fact in planted:
        sentences.insert(rng.randint(0, len(sentences)), fact.rstrip("."))
    context = ". ".join(s.strip() for s in sentences) + "."
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    while len(ids) > n_tokens * 1.15 and len(sentences) > len(planted) + 1:  # trim filler, keep facts
        victim = next(i for i in range(len(sentences) - 1, -1, -1) if sentences[i] + "." not in planted)
        del sentences[victim]
        context = ". ".join(s.strip() for s in sentences) + "."
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return {"context": context, "question": question, "answers": [answer], "positive_spans": evidence}


def _fit_text(tokenizer: Any, n_tokens: int, rng: random.Random, planted: list[str]) -> str:
    """Public-domain text of about ``n_tokens`` tokens with the ``planted`` sentences at random depths."""
    text = public_domain_text()
    chars = int(n_tokens * 4.2)  # ~4.2 characters per token for this tokenizer family on KJV text
    start = rng.randrange(0, len(text) - chars)
    sentences = text[start : start + chars].replace("\n\n", " ").split(". ")[1:-1]
    for fact in planted:
        sentences.insert(rng.randint(0, len(sentences)), fact.rstrip("."))
    context = ". ".join(s.strip() for s in sentences) + "."
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    keep = {f.rstrip(".") for f in planted}
    while len(ids) > n_tokens * 1.15 and len(sentences) > len(planted) + 1:  # trim filler, keep facts
        victim = next(i for i in range(len(sentences) - 1, -1, -1) if sentences[i] not in keep)
        del sentences[victim]
        context = ". ".join(s.strip() for s in sentences) + "."
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return context


def make_document(
    tokenizer: Any,
    n_tokens: int,
    rng: random.Random,
    brands: list[str],
    n_questions: int,
    two_fact_share: float,
    distractors: int = 4,
) -> list[dict[str, Any]]:
    """One document of about ``n_tokens`` tokens and ``n_questions`` questions about it.

    Each question is about its own target brand; the document holds its evidence, the target's
    other facts, and ``distractors`` near-duplicates (the same relation for brands asked about
    nowhere, so no planted fact contradicts another). Two-fact questions need the owner link and
    the owner's city.
    """
    pool = rng.sample(brands, n_questions * (2 + distractors))
    questions, planted = [], []
    for q in range(n_questions):
        target, parent = pool[q], pool[n_questions + q]
        others = pool[2 * n_questions + q * distractors : 2 * n_questions + (q + 1) * distractors]
        facts = _facts_for(target, parent, rng)
        if rng.random() < two_fact_share:
            parent_city = _facts_for(parent, rng.choice(brands), rng)["city"]
            evidence = [facts["parent"][0], parent_city[0]]
            question = f"In which city are the headquarters of the company that owns {target}?"
            answer, relation = parent_city[2], "city"
        else:
            relation = rng.choice(["city", "year", "colour", "code"])
            sentence, question, answer = facts[relation]
            evidence = [sentence]
            planted += [facts[r][0] for r in ("city", "year", "colour", "code") if r != relation]
        planted += evidence + [_facts_for(o, rng.choice(brands), rng)[relation][0] for o in others]
        questions.append({"question": question, "answers": [answer], "positive_spans": evidence})
    planted = list(dict.fromkeys(planted))
    rng.shuffle(planted)
    context = _fit_text(tokenizer, n_tokens, rng, planted)
    return [{"context": context, **q} for q in questions]


def make_dataset(
    tokenizer: Any,
    n: int,
    min_tokens: int,
    max_tokens: int,
    seed: int = 0,
    two_fact_share: float = 0.25,
    world_seed: int = 0,
    questions_per_doc: int = 1,
) -> list[dict[str, Any]]:
    """``n`` seeded examples with lengths uniform in [min_tokens, max_tokens].

    ``questions_per_doc`` > 1 asks that many questions about each document (records of one
    document share ``doc``; ``n`` counts questions): long-document benchmarks ask several
    questions per document, and a reader that caches the document answers them all cheaply.
    """
    rng = random.Random(seed)
    brands = sorted({b.name_en for b in EcomWorld.generate(world_seed, n_brands=120).brands})
    if questions_per_doc == 1:
        return [
            dict(
                make_example(
                    tokenizer, rng.randint(min_tokens, max_tokens), rng, brands, rng.random() < two_fact_share
                ),
                id=f"{seed}-{i}",
            )
            for i in range(n)
        ]
    rows: list[dict[str, Any]] = []
    for doc in range(-(-n // questions_per_doc)):
        length = rng.randint(min_tokens, max_tokens)
        for q, row in enumerate(make_document(tokenizer, length, rng, brands, questions_per_doc, two_fact_share)):
            rows.append(dict(row, id=f"{seed}-{doc}-{q}", doc=f"{seed}-{doc}"))
    return rows[:n]
