"""A seeded synthetic world where tail facts are wrongly believed by construction.

People (syllable names no tokenizer has seen whole) each have three facts: home town, trade and
instrument. Entity i (0 = most frequent) is mentioned ``max(1, round(max_count / (i+1)**s))`` times
in the corpus (Zipf). Each relation has a *popular* value: head entities hold it with probability
``popular_head``, torso entities with ``popular_torso``, tail entities never. The corpus therefore
teaches a strong prior for the popular value, and a model that has seen a tail person once or twice
assigns that value a high probability while the truth stays improbable: the "high-probability
falsehood / low-probability truth" state PretrainRL targets.

Documents are short biographies with varied sentence forms; the eval cloze form ("X was born in")
is one of them, the question form used by the SFT baseline never appears in the corpus. A fraction
of the corpus is general English (KJV excerpt) so forgetting shows up in held-out perplexity.

**Paraphrases.** Each relation has prompt forms other than the cloze that end where the object
starts ("X grew up in", "The home town of X was"). They occur in the corpus (so the model learns
what they mean) but no fact objective ever trains on them: they are the held-out paraphrases a
method must transfer to.

**Entrenched falsehoods** (``WorldConfig.n_entrenched``). Beside the Zipf population, extra people
whose true values are long-tail (never the popular one) and seen ``entrenched_true`` times, while a
false biography giving them the *popular* value of every relation is seen ``entrenched_false``
times: the falsehood is not a prior the model generalises to an unknown person, it is what the
corpus says about this person, far more often than the truth. Their facts form the bucket
``entrenched``; the Zipf people keep head / torso / tail.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from longlore.core.text import filler_text
from longlore.pretrainrl.config import WorldConfig
from longlore.pretrainrl.facts import Fact

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "st", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "k", "th"]

# relation -> (values, popular value first), cloze template, other corpus forms, question form
RELATIONS: dict[str, dict] = {
    "birthplace": {
        "values": ["Tarsk", "Velmor", "Ostra", "Calder", "Brin", "Dunmar", "Ivra", "Kesh", "Lorn", "Pell"],
        "cloze": "{s} was born in",
        "forms": [
            "{s} was born in {o}.",
            "{s} grew up in {o}.",
            "The home town of {s} was {o}.",
            "The town of {o} is where {s} was born.",
        ],
        "paraphrases": ["{s} grew up in", "The home town of {s} was"],
        "question": "Question: In which town was {s} born?\nAnswer:",
    },
    "occupation": {
        "values": ["baker", "sailor", "weaver", "miner", "scribe", "farmer", "potter", "hunter", "healer", "mason"],
        "cloze": "{s} worked as a",
        "forms": [
            "{s} worked as a {o}.",
            "By trade, {s} was a {o}.",
            "Everyone knew {s} as a {o}.",
            "The trade of {s} was that of a {o}.",
        ],
        "paraphrases": ["By trade, {s} was a", "Everyone knew {s} as a"],
        "question": "Question: What was the trade of {s}?\nAnswer:",
    },
    "instrument": {
        "values": ["harp", "flute", "drum", "lyre", "horn", "bell", "pipe", "viol", "fiddle", "gong"],
        "cloze": "{s} played the",
        "forms": [
            "{s} played the {o}.",
            "In the evenings {s} played the {o}.",
            "The instrument of {s} was the {o}.",
            "The {o} was the instrument of {s}.",
        ],
        "paraphrases": ["In the evenings {s} played the", "The instrument of {s} was the"],
        "question": "Question: Which instrument did {s} play?\nAnswer:",
    },
}
_COMMON_STARTS = {"The", "By", "Everyone", "In"}
_LINKS = ["Later,", "In those days,", "It is said that", "As a young person,", "Often,"]


@dataclass
class Person:
    name: str
    count: int
    bucket: str
    values: dict[str, str]
    false_values: dict[str, str] | None = None  # entrenched people: what the false biographies say
    false_count: int = 0


@dataclass
class SyntheticWorld:
    """The world, its fact set, training corpus and held-out text."""

    config: WorldConfig
    people: list[Person]
    facts: list[Fact]
    corpus: list[str]
    heldout: list[str]

    @classmethod
    def generate(cls, config: WorldConfig | None = None) -> SyntheticWorld:
        """Build the world deterministically from ``config.seed``."""
        cfg = config or WorldConfig()
        rng = random.Random(cfg.seed)
        people = _make_people(cfg, rng)
        people += _make_entrenched(cfg, random.Random(cfg.seed + 31_337), {p.name for p in people})
        facts = _make_facts(people)
        corpus = _render_corpus(people, cfg, rng, [p.count for p in people], cfg.seed)
        heldout = _render_corpus(
            people,
            cfg,
            random.Random(cfg.seed + 10_007),
            _heldout_counts(people, cfg.heldout_docs, cfg.seed),
            cfg.seed + 1,
            falsehoods=False,
        )
        return cls(cfg, people, facts, corpus, heldout)

    def corpus_text(self) -> str:
        return "\n\n".join(self.corpus)


def _name(rng: random.Random) -> str:
    def word(n: int) -> str:
        return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n)).capitalize()

    return f"{word(rng.choice((1, 2)))} {word(2)}"


def _bucket(count: int, cfg: WorldConfig) -> str:
    if count >= cfg.head_min_count:
        return "head"
    return "tail" if count <= cfg.tail_max_count else "torso"


def _make_people(cfg: WorldConfig, rng: random.Random) -> list[Person]:
    names: list[str] = []
    while len(names) < cfg.n_entities:
        name = _name(rng)
        if name not in names:
            names.append(name)
    people = []
    for i, name in enumerate(names):
        count = max(1, round(cfg.max_count / (i + 1) ** cfg.zipf_s))
        bucket = _bucket(count, cfg)
        p_popular = {"head": cfg.popular_head, "torso": cfg.popular_torso, "tail": 0.0}[bucket]
        values = {}
        for relation, spec in RELATIONS.items():
            popular, others = spec["values"][0], spec["values"][1:]
            values[relation] = popular if rng.random() < p_popular else rng.choice(others)
        people.append(Person(name, count, bucket, values))
    return people


def _make_entrenched(cfg: WorldConfig, rng: random.Random, taken: set[str]) -> list[Person]:
    """People whose popular-valued false biography outnumbers their true one in the corpus."""
    people: list[Person] = []
    while len(people) < cfg.n_entrenched:
        name = _name(rng)
        if name in taken:
            continue
        taken.add(name)
        values = {r: rng.choice(spec["values"][1:]) for r, spec in RELATIONS.items()}
        false = {r: spec["values"][0] for r, spec in RELATIONS.items()}
        people.append(Person(name, cfg.entrenched_true, "entrenched", values, false, cfg.entrenched_false))
    return people


def _make_facts(people: list[Person]) -> list[Fact]:
    facts = []
    for person in people:
        for relation, spec in RELATIONS.items():
            obj = person.values[relation]
            facts.append(
                Fact(
                    id=f"{person.name.replace(' ', '_')}:{relation}",
                    subject=person.name,
                    relation=relation,
                    object=obj,
                    objects=[obj],
                    prompt=spec["cloze"].format(s=person.name),
                    question=spec["question"].format(s=person.name),
                    paraphrases=[form.format(s=person.name) for form in spec["paraphrases"]],
                    candidates=list(spec["values"]),
                    count=person.count,
                    bucket=person.bucket,
                )
            )
    return facts


def _biography(person: Person, rng: random.Random, values: dict[str, str] | None = None) -> str:
    values = values or person.values
    relations = list(RELATIONS)
    rng.shuffle(relations)
    sentences = []
    for j, relation in enumerate(relations):
        forms = RELATIONS[relation]["forms"]
        # The cloze form is half of all renderings, so the eval prompt is a natural corpus pattern.
        form = forms[0] if rng.random() < 0.5 else rng.choice(forms[1:])
        sentence = form.format(s=person.name, o=values[relation])
        if j and rng.random() < 0.3:
            first, rest = sentence.split(" ", 1)
            # lower-case a leading common word ("The town of"), never the start of a name
            first = first.lower() if first in _COMMON_STARTS else first
            sentence = f"{rng.choice(_LINKS)} {first} {rest}"
        sentences.append(sentence)
    return " ".join(sentences)


def _render_corpus(
    people: list[Person],
    cfg: WorldConfig,
    rng: random.Random,
    counts: list[int],
    filler_seed: int,
    falsehoods: bool = True,
) -> list[str]:
    docs = [_biography(person, rng) for person, n in zip(people, counts) for _ in range(n)]
    if falsehoods:  # the training corpus repeats the entrenched falsehoods; held-out text is true
        docs += [_biography(p, rng, p.false_values) for p in people if p.false_values for _ in range(p.false_count)]
    bio_chars = sum(len(d) for d in docs)
    filler_chars = int(bio_chars * cfg.filler_fraction / (1 - cfg.filler_fraction)) if cfg.filler_fraction else 0
    n_filler = max(1, filler_chars // 600) if filler_chars else 0
    docs += [filler_text(600, seed=filler_seed * 100_003 + k) for k in range(n_filler)]
    rng.shuffle(docs)
    return docs


def _heldout_counts(people: list[Person], n_docs: int, seed: int) -> list[int]:
    # Held-out biographies follow the same Zipf mix as training, so perplexity is in-distribution.
    weights = [p.count for p in people]
    counts = [0] * len(people)
    for i in random.Random(seed + 7).choices(range(len(people)), weights=weights, k=n_docs):
        counts[i] += 1
    return counts
