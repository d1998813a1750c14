"""Multiple-choice questions built from real knowledge that ships offline (no QA set does).

* UMLS semantic network (pykeen's copy: 135 biomedical concept types, 46 relations, official
  train/valid/test triple splits): a triple ``(h, r, t)`` becomes "What does {h} cause?" with the
  gold ``t`` and three distractors that are tails of ``r`` elsewhere in the graph but *not* valid
  for ``h`` in any split (so no distractor is secretly correct).
* MovieLens-100k (recbole's copy): "What kind of film is {title}?" with one of the film's genres
  and three genres it does not have, as "{genre} film".

:func:`build_benchmark` makes the CET experiment: a target task (UMLS relations other than
``isa``, train from the train split, test from the test split) and two retention probes the
target never trains: ``isa`` facts about the same concepts (related knowledge) and movie genres
(general world knowledge). Files are located with ``find_spec`` through :mod:`longlore.core.assets`
so recbole and pykeen are never imported.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from longlore.cet.data import MCQuestion
from longlore.core.assets import asset_path
from longlore.core.errors import LongloreError

Triple = tuple[str, str, str]

RELATION_TEMPLATES: dict[str, str] = {
    "isa": "What is {h} a kind of?",
    "affects": "What does {h} affect?",
    "causes": "What does {h} cause?",
    "result_of": "What is {h} a result of?",
    "process_of": "What is {h} a process of?",
    "interacts_with": "What does {h} interact with?",
    "location_of": "What is found in {h}?",
    "produces": "What does {h} produce?",
    "complicates": "What does {h} complicate?",
    "associated_with": "What is {h} associated with?",
    "part_of": "What is {h} part of?",
    "manifestation_of": "What is {h} a manifestation of?",
    "measures": "What does {h} measure?",
    "disrupts": "What does {h} disrupt?",
    "occurs_in": "What does {h} occur in?",
    "co-occurs_with": "What does {h} co-occur with?",
    "precedes": "What does {h} precede?",
    "treats": "What does {h} treat?",
    "prevents": "What does {h} prevent?",
    "diagnoses": "What does {h} diagnose?",
    "uses": "What does {h} use?",
}
TARGET_RELATIONS = tuple(r for r in RELATION_TEMPLATES if r != "isa")
PROBE_RELATIONS = ("isa",)


def pretty(entity: str) -> str:
    """``disease_or_syndrome`` -> ``disease or syndrome``."""
    return entity.replace("_", " ")


def read_kg(name: str = "umls", folder: Path | None = None) -> dict[str, list[Triple]]:
    """Triples of a pykeen KG by split (``train``, ``valid``, ``test``)."""
    folder = Path(folder) if folder is not None else asset_path(f"kg-{name}")
    splits: dict[str, list[Triple]] = {}
    for split in ("train", "valid", "test"):
        path = folder / f"{split}.txt"
        if not path.is_file():
            raise LongloreError(f"{path}: missing KG split; reinstall pykeen (`pip install --no-deps pykeen`)")
        rows = []
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.strip().split("\t")
            if len(parts) != 3:
                raise LongloreError(f"{path}:{line_no}: expected 3 tab-separated fields (head, relation, tail)")
            rows.append((parts[0], parts[1], parts[2]))
        splits[split] = rows
    return splits


def kg_questions(
    triples: list[Triple],
    all_triples: list[Triple],
    relations: tuple[str, ...],
    n: int,
    rng: random.Random,
    n_options: int = 4,
    prefix: str = "kg",
) -> list[MCQuestion]:
    """One question per triple of ``triples`` whose relation has a template; ``n`` sampled.

    Distractors come first from the relation's other tails (type-plausible), then from any entity;
    none is a valid tail of ``(h, r)`` in ``all_triples``.
    """
    valid: dict[tuple[str, str], set[str]] = defaultdict(set)
    tails_of: dict[str, set[str]] = defaultdict(set)
    for h, r, t in all_triples:
        valid[(h, r)].add(t)
        tails_of[r].add(t)
    entities = sorted({h for h, _, _ in all_triples} | {t for _, _, t in all_triples})
    pool = sorted({tr for tr in triples if tr[1] in relations and tr[1] in RELATION_TEMPLATES})
    rng.shuffle(pool)
    questions = []
    for h, r, t in pool:
        if len(questions) >= n:
            break
        bad = valid[(h, r)] | {h}
        plausible = sorted(tails_of[r] - bad)
        distractors = rng.sample(plausible, min(n_options - 1, len(plausible)))
        if len(distractors) < n_options - 1:
            rest = sorted(set(entities) - bad - set(distractors))
            distractors += rng.sample(rest, n_options - 1 - len(distractors))
        options = [pretty(t)] + [pretty(d) for d in distractors]
        rng.shuffle(options)
        questions.append(
            MCQuestion(
                f"{prefix}-{len(questions)}",
                RELATION_TEMPLATES[r].format(h=pretty(h)),
                tuple(options),
                options.index(pretty(t)),
            )
        )
    return questions


def _natural_title(title: str) -> str:
    """MovieLens' 'Usual Suspects, The' -> 'The Usual Suspects'."""
    title = title.strip()
    for article in ("The", "A", "An"):
        if title.endswith(f", {article}"):
            return f"{article} {title[: -len(article) - 2]}"
    return title


def movie_genre_questions(
    n: int, rng: random.Random, folder: Path | None = None, n_options: int = 4
) -> list[MCQuestion]:
    """'What kind of film is {title}?' over MovieLens-100k items with known genres."""
    folder = Path(folder) if folder is not None else asset_path("movielens-100k")
    path = folder / "ml-100k.item"
    if not path.is_file():
        raise LongloreError(f"{path}: missing; reinstall recbole (`pip install --no-deps recbole`)")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = lines[0].split("\t")
    try:
        title_col = header.index("movie_title:token_seq")
        genre_col = header.index("class:token_seq")
    except ValueError:
        raise LongloreError(
            f"{path}:1: expected columns movie_title:token_seq and class:token_seq; got {header}"
        ) from None
    films = []
    for line in lines[1:]:
        cols = line.split("\t")
        genres = [g for g in cols[genre_col].split() if g != "unknown"] if len(cols) > genre_col else []
        if genres:
            films.append((_natural_title(cols[title_col]), genres))
    all_genres = sorted({g for _, gs in films for g in gs})
    rng.shuffle(films)
    questions = []
    for title, genres in films[:n]:
        gold = rng.choice(genres)
        options = [gold] + rng.sample([g for g in all_genres if g not in genres], n_options - 1)
        rng.shuffle(options)
        # MiniLM matches "What kind of film is Scream?" with "horror film" far better than with a
        # bare "horror" or with the year in the title (zero-shot 0.19 -> 0.4 on 200 questions)
        questions.append(
            MCQuestion(
                f"movie-{len(questions)}",
                f"What kind of film is {title}?",
                tuple(f"{o.lower()} film" for o in options),
                options.index(gold),
            )
        )
    return questions


def build_benchmark(
    n_train: int = 300, n_test: int = 200, n_probe: int = 200, seed: int = 0, split: str = "test"
) -> dict[str, list[MCQuestion]]:
    """The CET experiment's four question sets (see module docstring); deterministic in ``seed``.

    ``split="dev"`` gives a tuning split that shares nothing with the test split's evaluation
    questions: target questions from pykeen's *valid* triples, and probe questions that follow
    the test probes in the same sampling order (questions ``n_probe .. 2 n_probe - 1``).
    The training questions are the same for both splits.
    """
    if split not in ("test", "dev"):
        raise LongloreError(f"split '{split}' is unknown; use 'test' or 'dev'")
    kg = read_kg("umls")
    everything = kg["train"] + kg["valid"] + kg["test"]
    lo, hi = (0, n_probe) if split == "test" else (n_probe, 2 * n_probe)
    eval_triples, eval_seed = (kg["test"], seed + 1) if split == "test" else (kg["valid"], seed + 4)
    return {
        "target_train": kg_questions(
            kg["train"], everything, TARGET_RELATIONS, n_train, random.Random(seed), prefix="train"
        ),
        "target_test": kg_questions(
            eval_triples, everything, TARGET_RELATIONS, n_test, random.Random(eval_seed), prefix=split
        ),
        "probe_isa": kg_questions(everything, everything, PROBE_RELATIONS, hi, random.Random(seed + 2), prefix="isa")[
            lo:hi
        ],
        "probe_movies": movie_genre_questions(hi, random.Random(seed + 3))[lo:hi],
    }
