"""Fact sets: (subject, relation, object) facts with cloze prompts, from JSONL, TSV or a real KG.

A :class:`Fact` carries everything scoring needs: the cloze ``prompt`` whose continuation is
``" " + object``, every true object of its (subject, relation) (so an alternative truth is never a
negative), the closed candidate set its rank is measured in, an optional question form for the SFT
baseline, and how often its subject occurs in the training corpus (``count`` -> ``bucket``).

Sources:

* JSONL — one fact per line: ``subject``, ``relation``, ``object`` required; ``prompt``,
  ``question``, ``paraphrases``, ``objects``, ``candidates``, ``count``, ``bucket`` optional.
* TSV — ``subject<TAB>relation<TAB>object`` (the pykeen triple format; a typed header is skipped).
* ``kg-nations`` / ``kg-kinships`` / ``kg-umls`` — pykeen's bundled graphs (train split).
* ``movielens`` — MovieLens-100k movies rendered as facts: release year and genres.

Prompts come from ``templates`` (relation -> ``"{subject} ..."``); without one the relation name is
spelled out (``located_in`` -> ``"{subject} located in"``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from longlore.core.errors import LongloreError
from longlore.core.io import read_jsonl, write_jsonl
from longlore.core.metrics import normalize_answer

KG_NAMES = ("kg-nations", "kg-kinships", "kg-umls")


class Fact(BaseModel):
    """One fact and the strings needed to score it."""

    id: str = ""
    subject: str
    relation: str
    object: str = Field(min_length=1)
    prompt: str = ""
    question: str | None = None
    paraphrases: list[str] = Field(default_factory=list)  # other cloze prompts, never trained on (held out)
    objects: list[str] = Field(default_factory=list)
    candidates: list[str] = Field(default_factory=list)
    count: int | None = None
    bucket: str = "all"

    @property
    def truths(self) -> list[str]:
        """All true objects (the canonical one first)."""
        return list(dict.fromkeys([self.object, *self.objects]))

    def continuation(self, value: str) -> str:
        """The text that follows the prompt for answer ``value`` (a leading space, as in prose)."""
        return " " + value.strip()


def is_true(value: str, truths: Sequence[str]) -> bool:
    """Whether ``value`` names a true object: equal after SQuAD normalisation, or a word-prefix of one
    (a truncated truth) or starting with one (a truth followed by more words)."""
    norm = normalize_answer(value).split()
    if not norm:
        return True  # an empty continuation is never a usable negative
    for truth in truths:
        gold = normalize_answer(truth).split()
        shorter = min(len(norm), len(gold))
        if shorter and norm[:shorter] == gold[:shorter]:
            return True
    return False


def default_template(relation: str) -> str:
    words = relation.replace("_", " ").replace(".", " ").strip()
    return "{subject} " + words


def build_facts(
    triples: Sequence[tuple[str, str, str]],
    templates: dict[str, str] | None = None,
    questions: dict[str, str] | None = None,
    max_candidates: int = 50,
    seed: int = 0,
    id_prefix: str = "f",
) -> list[Fact]:
    """Facts from raw triples: one per (subject, relation), every true object kept in ``objects``,
    candidates = the relation's object range (at most ``max_candidates``, truths always included)."""
    templates, questions = templates or {}, questions or {}
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for subject, relation, obj in triples:
        if obj not in grouped[(subject, relation)]:
            grouped[(subject, relation)].append(obj)
    ranges: dict[str, list[str]] = defaultdict(list)
    for (_, relation), objs in grouped.items():
        ranges[relation].extend(o for o in objs if o not in ranges[relation])
    rng = random.Random(seed)
    facts = []
    for i, ((subject, relation), objs) in enumerate(grouped.items()):
        template = templates.get(relation, default_template(relation))
        others = [o for o in ranges[relation] if o not in objs]
        rng.shuffle(others)
        candidates = objs + others[: max(0, max_candidates - len(objs))]
        question = questions[relation].format(subject=subject) if relation in questions else None
        facts.append(
            Fact(
                id=f"{id_prefix}{i}",
                subject=subject,
                relation=relation,
                object=objs[0],
                objects=objs,
                prompt=template.format(subject=subject),
                question=question,
                candidates=candidates,
            )
        )
    return facts


def _read_tsv(path: Path) -> list[tuple[str, str, str]]:
    triples = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise LongloreError(
                f"{path}:{line_no}: expected 3 tab-separated fields (subject, relation, object), got {len(parts)}"
            )
        if line_no == 1 and parts[0].endswith(":token"):
            continue  # a typed header (RecBole atomic-file style)
        triples.append((parts[0].strip(), parts[1].strip(), parts[2].strip()))
    return triples


def _finish_jsonl(records: list[Fact], templates: dict[str, str] | None) -> list[Fact]:
    """Fill what a hand-written JSONL may omit: ids, prompts, the all-truths list and candidate ranges."""
    templates = templates or {}
    truths: dict[tuple[str, str], list[str]] = defaultdict(list)
    ranges: dict[str, list[str]] = defaultdict(list)
    for fact in records:
        for obj in fact.truths:
            if obj not in truths[(fact.subject, fact.relation)]:
                truths[(fact.subject, fact.relation)].append(obj)
            if obj not in ranges[fact.relation]:
                ranges[fact.relation].append(obj)
    out = []
    for i, fact in enumerate(records):
        update = {"objects": truths[(fact.subject, fact.relation)]}
        update["id"] = fact.id or f"f{i}"
        if not fact.prompt:
            update["prompt"] = templates.get(fact.relation, default_template(fact.relation)).format(
                subject=fact.subject
            )
        if not fact.candidates:
            update["candidates"] = list(ranges[fact.relation])
        out.append(fact.model_copy(update=update))
    return out


def _natural_title(title: str) -> str:
    """MovieLens files articles last ("Usual Suspects, The"); prose puts them first."""
    for article in ("The", "A", "An"):
        if title.endswith(f", {article}"):
            return f"{article} {title[: -len(article) - 2]}"
    return title


def movielens_facts(n_movies: int | None = None, seed: int = 0) -> list[Fact]:
    """MovieLens-100k movies as facts: release year (candidates: every year in the set) and genres
    (all of a movie's genres are true objects). Read from the installed ``recbole`` example files."""
    from longlore.core.assets import asset_path

    path = asset_path("movielens-100k") / "ml-100k.item"
    triples = []
    for _line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()[1:], start=2):
        parts = line.split("\t")
        if len(parts) < 4 or not parts[1].strip() or not parts[2].strip().isdigit():
            continue  # a few items lack a title or year; they carry no fact
        title, year, genres = _natural_title(parts[1].strip()), parts[2].strip(), parts[3].split()
        triples.append((title, "release_year", year))
        triples.extend((title, "genre", g) for g in genres if g != "unknown")
    if n_movies is not None:
        titles = sorted({t for t, _, _ in triples})
        keep = set(random.Random(seed).sample(titles, min(n_movies, len(titles))))
        triples = [t for t in triples if t[0] in keep]
    templates = {
        "release_year": "The movie {subject} was released in the year",
        "genre": "The movie {subject} belongs to the genre",
    }
    questions = {
        "release_year": "Question: In which year was the movie {subject} released?\nAnswer:",
        "genre": "Question: What is a genre of the movie {subject}?\nAnswer:",
    }
    return build_facts(triples, templates, questions, seed=seed, id_prefix="ml")


def load_facts(
    source: str | Path, templates: dict[str, str] | None = None, limit: int | None = None, seed: int = 0
) -> list[Fact]:
    """Load a fact set from a JSONL/TSV path, a pykeen KG name (``kg-nations`` ...) or ``movielens``."""
    name = str(source)
    if name == "movielens":
        facts = movielens_facts(seed=seed)
    elif name in KG_NAMES:
        from longlore.core.assets import asset_path

        facts = build_facts(_read_tsv(asset_path(name) / "train.txt"), templates, seed=seed)
    else:
        path = Path(name)
        if not path.exists():
            raise LongloreError(
                f"fact source '{name}': no such file; give a .jsonl/.tsv path, 'movielens' or one of "
                f"{', '.join(KG_NAMES)}"
            )
        if path.suffix == ".jsonl":
            facts = _finish_jsonl(read_jsonl(path, Fact), templates)
        elif path.suffix in (".tsv", ".txt", ".kg"):
            facts = build_facts(_read_tsv(path), templates, seed=seed)
        else:
            raise LongloreError(f"{path}: unknown fact file type '{path.suffix}'; use .jsonl or .tsv")
    if not facts:
        raise LongloreError(f"fact source '{name}' holds no facts")
    if limit is not None and limit < len(facts):
        facts = random.Random(seed).sample(facts, limit)
    return facts


def save_facts(path: str | Path, facts: Sequence[Fact], overwrite: bool = False) -> Path:
    """Write facts as JSONL (readable again by :func:`load_facts`)."""
    return write_jsonl(path, facts, overwrite=overwrite)
