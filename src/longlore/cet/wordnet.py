"""Retention probes from WordNet 3.0 (Debian's ``wordnet-base``): general English knowledge that a
pretrained encoder has and that fine-tuning on a narrow task can erode.

* **hypernyms** — "What is violin a kind of?" gold: the first lemma of the first sense's direct
  hypernym ("bowed stringed instrument"); distractors: hypernyms of *other* probe words that are
  none of the word's own ancestors, so no distractor is secretly true.
* **antonyms** — "What is the opposite of hot?" gold: its WordNet antonym ("cold"); distractors:
  other adjectives with antonyms, never the word's antonyms or synonyms.

Words are the most frequent senses in the SemCor counts that ship with WordNet (``cntlist.rev``),
so the probes ask about common words. Only the database files are read (a small parser of the
documented ``wndb(5WN)`` format); nothing is imported from nltk.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from longlore.cet.data import MCQuestion
from longlore.core.errors import LongloreError

DEFAULT_DIR = Path("/usr/share/wordnet")
_WORD = re.compile(r"^[a-z]{3,}$")


def wordnet_dir() -> Path:
    """The WordNet database folder: ``$LONGLORE_WORDNET_DIR`` or Debian's ``/usr/share/wordnet``."""
    folder = Path(os.environ.get("LONGLORE_WORDNET_DIR", DEFAULT_DIR))
    if not (folder / "data.noun").is_file():
        raise LongloreError(
            f"{folder}: no WordNet database (data.noun missing); install Debian's wordnet-base "
            "(`apt-get install wordnet-base`, listed in scripts/system-packages.txt) or set LONGLORE_WORDNET_DIR"
        )
    return folder


def available() -> bool:
    try:
        wordnet_dir()
    except LongloreError:
        return False
    return True


@dataclass(frozen=True)
class Synset:
    words: tuple[str, ...]  # lemmas, underscores kept
    pointers: tuple[tuple[str, str, str, str], ...]  # (symbol, offset, pos, source/target)


def _parse_data(path: Path) -> dict[str, Synset]:
    """``offset -> Synset`` from a ``data.POS`` file (license header lines start with spaces)."""
    synsets: dict[str, Synset] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line or line.startswith(" "):
            continue
        fields = line.split(" | ", 1)[0].split()
        try:
            offset, n_words = fields[0], int(fields[3], 16)
            words = tuple(fields[4 + 2 * i] for i in range(n_words))
            at = 4 + 2 * n_words
            n_ptr = int(fields[at])
            ptrs = tuple(tuple(fields[at + 1 + 4 * j : at + 5 + 4 * j]) for j in range(n_ptr))
        except (IndexError, ValueError):
            raise LongloreError(f"{path}:{line_no}: not a WordNet data line (see wndb(5WN))") from None
        synsets[offset] = Synset(words, ptrs)  # type: ignore[arg-type]
    return synsets


def _first_senses(path: Path) -> dict[str, str]:
    """``lemma -> offset of its first (most frequent) sense`` from an ``index.POS`` file."""
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line or line.startswith(" "):
            continue
        fields = line.split()
        n_ptr = int(fields[3])
        out[fields[0]] = fields[4 + n_ptr + 2]
    return out


def _sense1_counts(path: Path, ss_types: tuple[str, ...]) -> dict[str, int]:
    """``lemma -> SemCor tag count of its sense 1`` for the given synset types (1 noun, 3/5 adj)."""
    counts: dict[str, int] = defaultdict(int)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] != "1":
            continue
        lemma, _, rest = parts[0].partition("%")
        if rest[:1] in ss_types:
            counts[lemma.lower()] += int(parts[2])
    return counts


def pretty(word: str) -> str:
    return word.replace("_", " ")


@lru_cache(maxsize=2)
def _load(folder: str) -> tuple[dict, dict, dict, dict, dict, dict]:
    root = Path(folder)
    nouns, adjs = _parse_data(root / "data.noun"), _parse_data(root / "data.adj")
    return (
        nouns,
        _first_senses(root / "index.noun"),
        _sense1_counts(root / "cntlist.rev", ("1",)),
        adjs,
        _first_senses(root / "index.adj"),
        _sense1_counts(root / "cntlist.rev", ("3", "5")),
    )


def _hypernym_offsets(synset: Synset) -> list[str]:
    return [off for sym, off, pos, _ in synset.pointers if sym == "@" and pos == "n"]


def hypernym_questions(
    n: int, rng: random.Random, min_count: int = 5, n_options: int = 4, folder: Path | None = None
) -> list[MCQuestion]:
    """ "What is {word} a kind of?" over common nouns (see module docstring)."""
    nouns, first, counts, *_ = _load(str(folder or wordnet_dir()))
    items = []
    for lemma in sorted(first):
        if counts.get(lemma, 0) < min_count or not _WORD.match(lemma) or first[lemma] not in nouns:
            continue
        synset = nouns[first[lemma]]
        hypers = _hypernym_offsets(synset)
        if not hypers:
            continue
        gold = pretty(nouns[hypers[0]].words[0]).lower()
        if lemma in gold.split():
            continue
        # every ancestor's lemmas (and the word's own synonyms) are true or near-true answers
        ancestors, frontier = set(), list(hypers)
        while frontier:
            off = frontier.pop()
            if off in ancestors:
                continue
            ancestors.add(off)
            frontier += _hypernym_offsets(nouns[off])
        banned = {pretty(w).lower() for off in ancestors for w in nouns[off].words}
        banned |= {pretty(w).lower() for w in synset.words}
        items.append((lemma, gold, banned))
    pool = sorted({gold for _, gold, _ in items})
    rng.shuffle(items)
    questions = []
    for lemma, gold, banned in items[:n]:
        distractors = rng.sample([w for w in pool if w not in banned and w != gold], n_options - 1)
        options = [gold, *distractors]
        rng.shuffle(options)
        questions.append(
            MCQuestion(f"wn-hyper-{len(questions)}", f"What is {lemma} a kind of?", tuple(options), options.index(gold))
        )
    return questions


def antonym_questions(
    n: int, rng: random.Random, min_count: int = 5, n_options: int = 4, folder: Path | None = None
) -> list[MCQuestion]:
    """ "What is the opposite of {adjective}?" over common adjectives with a WordNet antonym."""
    *_, adjs, first, counts = _load(str(folder or wordnet_dir()))
    antonyms: dict[str, set[str]] = defaultdict(set)
    synonyms: dict[str, set[str]] = defaultdict(set)
    for synset in adjs.values():
        words = [re.sub(r"\(.*\)$", "", w).lower() for w in synset.words]  # drop markers like (a), (p)
        for w in words:
            synonyms[w] |= set(words)
        for sym, off, _, st in synset.pointers:
            if sym != "!" or off not in adjs:
                continue
            src, dst = int(st[:2], 16), int(st[2:], 16)
            a = words[src - 1]
            b = re.sub(r"\(.*\)$", "", adjs[off].words[dst - 1]).lower()
            antonyms[a].add(b)
    items = []
    for word in sorted(antonyms):
        if counts.get(word, 0) < min_count or not _WORD.match(word) or word not in first:
            continue
        golds = sorted(a for a in antonyms[word] if _WORD.match(a))
        if golds:
            items.append((word, golds[0], antonyms[word] | synonyms[word] | {word}))
    pool = sorted({w for w in antonyms if _WORD.match(w)})
    rng.shuffle(items)
    questions = []
    for word, gold, banned in items[:n]:
        distractors = rng.sample([w for w in pool if w not in banned and w != gold], n_options - 1)
        options = [gold, *distractors]
        rng.shuffle(options)
        questions.append(
            MCQuestion(
                f"wn-ant-{len(questions)}", f"What is the opposite of {word}?", tuple(options), options.index(gold)
            )
        )
    return questions
