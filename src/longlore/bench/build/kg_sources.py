"""Inputs of ``bench build-kg``: triple files, relation templates, and three ready-made sources.

Triples come as TSV or JSONL. A TSV file either has exactly three columns (head, relation,
tail; pykeen's format) or a header row naming its columns among ``head relation tail label
head_type tail_type``. JSONL records carry the same keys. ``label`` (true/false, 1/0, yes/no)
marks a triple known to be false, as the official ECKGBench KG does with its "无关" status;
unlabelled triples are true.

Templates are YAML: ``language`` (en | zh), an optional ``instruction``, ``default_template``
(used for relations without one; may use ``{relation}``) and per relation a ``template`` with
``___`` for the masked tail and placeholders ``{head}``, ``{head_type}``, ``{tail_type}``,
``{relation}``, plus ``is_a`` (the relation is an is-a / taxonomy relation: ECKGBench's dim_2) and
an optional ``quota`` (questions from this relation).

Named sources (pass the name instead of a path):

* ``movielens-freebase``: MovieLens-100k's movies with the Freebase KG that recbole ships. Only
  the 1,598 linked movies have names (the other Freebase ids are bare ``m.xxx``), so the triples
  are the named facts: a movie's genres and release year (from the MovieLens item file), its
  sequel (Freebase, both ends linked), and "same director / writer / producer / cinematographer
  as" (two Freebase hops through the unnamed person). Titles are "The X" for "X, The"; a title
  that two movies share gets its year.
* ``umls``: the UMLS semantic network (135 types, 46 relations, 6,529 triples) from pykeen's files.
* ``eckgbench-official``: the official ECKGBench stage-1 output turned back into a labelled KG:
  each ``question_original`` record gives a true triple (subject, relation, ground truth) and its
  ``choice_set`` pool gives the triples labelled false, so the pipeline's later stages can be run
  on the authors' own candidates and compared with their published negatives.
"""

from __future__ import annotations

import ast
import csv
import re
import string
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from longlore.core.assets import asset_path
from longlore.core.errors import LongloreError
from longlore.core.io import iter_jsonl_numbered

COLUMNS = ("head", "relation", "tail", "label", "head_type", "tail_type")
PLACEHOLDERS = {"head", "head_type", "tail_type", "relation"}
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}
SOURCES = ("movielens-freebase", "umls", "eckgbench-official")
SHIPPED_TEMPLATES = ("movielens-freebase", "umls", "eckgbench-zh")
INSTRUCTIONS = {
    # The official ECKGBench instruction (question_original / ECKGBench.jsonl), verbatim.
    "zh": "选择*选项*中相对来说最合适的一个填入空格处来补全以下*句子*，使其符合电子商务和生活消费领域中的逻辑和知识，"
    "输出选择的*选项*即可。括号内是词语的标签。\n*句子*：",
    # Its English rendering; the options keep the official `*选项*：` marker that the format keys on.
    "en": "Choose the most suitable of the options (*选项*) to fill the blank and complete the *sentence* "
    "below so that it agrees with the facts; output only the chosen option. Words in parentheses are "
    "labels.\n*Sentence*: ",
}


@dataclass(frozen=True)
class Triple:
    """One KG fact; ``label=False`` marks a triple known to be false."""

    head: str
    relation: str
    tail: str
    label: bool = True
    head_type: str = ""
    tail_type: str = ""


@dataclass
class RelationTemplate:
    template: str
    is_a: bool = False
    quota: int | None = None


@dataclass
class Templates:
    """Relation templates for one language (see the module docstring)."""

    language: str
    relations: dict[str, RelationTemplate] = field(default_factory=dict)
    default_template: str | None = None
    instruction: str = ""

    def for_relation(self, relation: str) -> RelationTemplate:
        if relation in self.relations:
            return self.relations[relation]
        if self.default_template is None:
            raise LongloreError(
                f"relation {relation!r} has no template and the templates file sets no default_template; "
                "add it under `relations:` or set `default_template: '{head} {relation} ___'`"
            )
        return RelationTemplate(self.default_template)

    def sentence(self, triple: Triple) -> str:
        """The cloze sentence: the template filled, the tail masked as ``___``."""
        template = self.for_relation(triple.relation).template
        words = re.sub(r"[._]+", " ", triple.relation).strip()
        filled = template.format(
            head=triple.head, head_type=triple.head_type, tail_type=triple.tail_type, relation=words
        )
        # A triple without types leaves "()" / "（）" behind; drop those and the spaces around them.
        return re.sub(r"\s*(\(\s*\)|（\s*）)", "", filled).strip()


def _parse_label(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS or text == "":
        return True
    if text in FALSE_WORDS:
        return False
    raise LongloreError(f"{where}: label {value!r} is not true/false (use true|false, 1|0 or yes|no)")


def read_triples(path: str | Path) -> list[Triple]:
    """Triples from a TSV or JSONL file (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LongloreError(f"{path}: no such triples file; pass a TSV/JSONL file or one of {', '.join(SOURCES)}")
    out: list[Triple] = []
    if path.suffix in (".jsonl", ".json"):
        for line_no, rec in iter_jsonl_numbered(path):
            where = f"{path}:{line_no}"
            missing = [k for k in ("head", "relation", "tail") if not str(rec.get(k, "")).strip()]
            if missing:
                raise LongloreError(f"{where}: missing field(s) {missing}; each line needs head, relation, tail")
            out.append(
                Triple(
                    str(rec["head"]).strip(),
                    str(rec["relation"]).strip(),
                    str(rec["tail"]).strip(),
                    _parse_label(rec.get("label", True), where),
                    str(rec.get("head_type", "")).strip(),
                    str(rec.get("tail_type", "")).strip(),
                )
            )
        return out
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    columns = ["head", "relation", "tail"]
    if rows and {c.strip().lower() for c in rows[0]} <= set(COLUMNS) and "head" in [c.lower() for c in rows[0]]:
        columns = [c.strip().lower() for c in rows[0]]
        missing = [c for c in ("head", "relation", "tail") if c not in columns]
        if missing:
            raise LongloreError(f"{path}:1: header lacks column(s) {missing}; name columns among {', '.join(COLUMNS)}")
        rows, first = rows[1:], 2
    else:
        first = 1
    for line_no, row in enumerate(rows, start=first):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{line_no}"
        if len(row) != len(columns):
            hint = "" if first == 2 else " (a file with more columns needs a header row naming them)"
            raise LongloreError(f"{where}: expected {len(columns)} tab-separated columns, found {len(row)}{hint}")
        rec = dict(zip(columns, (c.strip() for c in row)))
        if not (rec["head"] and rec["relation"] and rec["tail"]):
            raise LongloreError(f"{where}: empty head, relation or tail")
        out.append(
            Triple(
                rec["head"],
                rec["relation"],
                rec["tail"],
                _parse_label(rec.get("label", ""), where),
                rec.get("head_type", ""),
                rec.get("tail_type", ""),
            )
        )
    return out


def _check_template(text: str, where: str) -> None:
    names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    unknown = names - PLACEHOLDERS
    if unknown:
        raise LongloreError(f"{where}: unknown placeholder(s) {sorted(unknown)}; use {sorted(PLACEHOLDERS)}")
    if text.count("___") != 1:
        raise LongloreError(f"{where}: the template must contain the blank ___ exactly once: {text!r}")


def parse_templates(data: Any, where: str) -> Templates:
    """Templates from a decoded YAML document (``where`` names it in errors)."""
    if not isinstance(data, dict) or data.get("language") not in ("en", "zh"):
        raise LongloreError(f"{where}: expected a mapping with `language: en|zh` and `relations:`")
    relations = {}
    for name, spec in (data.get("relations") or {}).items():
        spec = {"template": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or "template" not in spec:
            raise LongloreError(f"{where}: relation {name!r} needs a `template`")
        _check_template(str(spec["template"]), f"{where}: relation {name!r}")
        quota = spec.get("quota")
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            raise LongloreError(f"{where}: relation {name!r}: quota must be a non-negative integer")
        relations[str(name)] = RelationTemplate(str(spec["template"]), bool(spec.get("is_a", False)), quota)
    default = data.get("default_template")
    if default is not None:
        _check_template(str(default), f"{where}: default_template")
    language = data["language"]
    return Templates(language, relations, default, str(data.get("instruction") or INSTRUCTIONS[language]))


def read_templates(path: str | Path) -> Templates:
    """Relation templates from a YAML file or a shipped name: ``movielens-freebase``, ``umls``, or
    ``eckgbench-zh`` (the authors' Chinese templates, keyed by the fine relation names of their KG)."""
    if str(path) in SHIPPED_TEMPLATES:
        text = resources.files("longlore.bench.build").joinpath(f"data/templates_{path}.yaml").read_text("utf-8")
        return parse_templates(yaml.safe_load(text), f"templates_{path}.yaml")
    path = Path(path)
    if not path.is_file():
        raise LongloreError(f"{path}: no such templates file; pass a YAML file or one of {', '.join(SOURCES)}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise LongloreError(f"{path}{line}: invalid YAML ({getattr(err, 'problem', err)})") from None
    return parse_templates(data, str(path))


# --- named sources ----------------------------------------------------------------------------


def _atomic_rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    return [line.split("\t") for line in lines[1:] if line.strip()]  # first line: typed header


def _title(raw: str) -> str:
    # MovieLens writes "Ice Storm, The"; questions read "The Ice Storm".
    match = re.match(r"^(.*?), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)( \(.*\))?$", raw.strip())
    if not match:
        return raw.strip()
    return f"{match.group(2)} {match.group(1)}{match.group(3) or ''}".replace("L' ", "L'")


def movielens_freebase_triples() -> list[Triple]:
    """Named triples from MovieLens-100k + its Freebase KG (see the module docstring)."""
    folder = asset_path("movielens-100k")
    movies: dict[str, tuple[str, str, list[str]]] = {}  # item id -> (title, year, genres)
    for row in _atomic_rows(folder / "ml-100k.item"):
        item_id, title, year, genres = (row + ["", "", "", ""])[:4]
        movies[item_id] = (_title(title), year.strip(), [g for g in genres.split() if g != "unknown"])
    count: dict[str, int] = defaultdict(int)
    for title, _year in {(t, y) for t, y, _ in movies.values()}:  # same title and year: one movie
        count[title] += 1
    name = {i: (t if count[t] == 1 else f"{t} ({y})") for i, (t, y, _) in movies.items()}
    link = {mid: item for item, mid in _atomic_rows(folder / "ml-100k.link")}

    triples: set[Triple] = set()
    for item, (_, year, genres) in movies.items():
        for genre in genres:
            triples.add(Triple(name[item], "genre", genre, head_type="film", tail_type="genre"))
        if year.isdigit():
            triples.add(Triple(name[item], "release_year", year, head_type="film", tail_type="year"))
    hubs = {
        "film.film.directed_by": "same_director",
        "film.film.written_by": "same_writer",
        "film.film.produced_by": "same_producer",
        "film.film.cinematography": "same_cinematographer",
    }
    films_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for head, relation, tail in _atomic_rows(folder / "ml-100k.kg"):
        if relation == "film.film.sequel" and head in link and tail in link:
            h, t = name[link[head]], name[link[tail]]
            if h != t:
                triples.add(Triple(h, "sequel", t, head_type="film", tail_type="film"))
        elif relation in hubs and head in link:
            films_of[(hubs[relation], tail)].add(name[link[head]])
    for (relation, _), films in films_of.items():
        for a in films:
            for b in films - {a}:
                triples.add(Triple(a, relation, b, head_type="film", tail_type="film"))
    return sorted(triples, key=lambda t: (t.relation, t.head, t.tail))


def umls_triples() -> list[Triple]:
    """The UMLS semantic network (pykeen's train/valid/test files), underscores as spaces."""
    folder = asset_path("kg-umls")
    triples = []
    for split in ("train", "valid", "test"):
        for line in (folder / f"{split}.txt").read_text(encoding="utf-8").split("\n"):
            if line.strip():
                head, relation, tail = line.split("\t")
                triples.append(Triple(head.replace("_", " "), relation, tail.replace("_", " ")))
    return triples


_SENTENCE_RE = re.compile(r"\*句子\*：(?P<subject>.*?)（(?P<head_type>[^（）]*)）(?P<rest>.*)$", re.S)


def eckg_official_reader(root: str | Path | None) -> tuple[Path, Any]:
    """The ECKGBench data folder and a reader of its files by upstream name. Uses the benchmark
    data layer's ``eckg_file`` (plain or ``.gz`` package data) where it exists, else plain files."""
    from longlore.bench import data

    folder = data.find_data_root(root) / "eckgbench"
    if hasattr(data, "eckg_file"):
        from longlore.core.io import read_text

        return folder, lambda name: read_text(data.eckg_file(name, root))
    return folder, lambda name: (folder / name).read_text(encoding="utf-8")


def eckg_official_triples(root: str | Path | None = None) -> list[Triple]:
    """The official ECKGBench stage-1 data as a labelled KG (see the module docstring).

    The relation of a triple is the parent relation and the predicate text of its sentence (e.g.
    ``需要|的时候需要|``), so that the shipped ``eckgbench-official`` templates rebuild the
    official sentence exactly."""
    folder, read = eckg_official_reader(root)
    questions = [ast.literal_eval(line) for line in read("question_original.jsonl").split("\n") if line.strip()]
    lines = [ln for ln in read("choice_set.jsonl").split("\n") if ln.strip()]
    pools, answers = (ast.literal_eval(ln) for ln in lines)
    if len(pools) != len(questions):
        raise LongloreError(f"{folder}: choice_set has {len(pools)} pools for {len(questions)} questions")
    triples: list[Triple] = []
    for q, pool, answer in zip(questions, pools, answers):
        sentence = q["question"].split("\n*选项*：")[0]
        match = _SENTENCE_RE.search(sentence)
        if not match or "___" not in match.group("rest"):
            raise LongloreError(
                f"{folder / 'question_original.jsonl'}: idx {q['idx']}: cannot parse {sentence[-40:]!r}"
            )
        predicate, after = match.group("rest").split("___", 1)
        tail_type = re.match(r"（([^（）]*)）", after)
        suffix = after[tail_type.end() :] if tail_type else after
        relation = f"{q['relation']}|{predicate}|{suffix}"
        common = dict(head_type=match.group("head_type"), tail_type=tail_type.group(1) if tail_type else "")
        triples.append(Triple(match.group("subject"), relation, answer, True, **common))
        triples.extend(Triple(match.group("subject"), relation, neg, False, **common) for neg in pool if neg != answer)
    return triples


def eckg_official_templates(triples: list[Triple]) -> Templates:
    """zh templates that rebuild the official sentences of :func:`eckg_official_triples`."""
    relations = {}
    for relation in dict.fromkeys(t.relation for t in triples):
        parent, predicate, suffix = relation.split("|")
        relations[relation] = RelationTemplate(
            "{head}（{head_type}）" + predicate + "___（{tail_type}）" + suffix, is_a=parent == "是一种"
        )
    return Templates("zh", relations, None, INSTRUCTIONS["zh"])


def load_source(triples: str | Path, templates: str | Path | None, data: str | Path | None = None):
    """``(triples, templates)`` for a file or a named source; a named source brings its shipped
    templates unless ``templates`` is given."""
    name = str(triples)
    if name == "movielens-freebase":
        kg = movielens_freebase_triples()
    elif name == "umls":
        kg = umls_triples()
    elif name == "eckgbench-official":
        kg = eckg_official_triples(data)
        if templates is None:
            return kg, eckg_official_templates(kg)
    else:
        kg = read_triples(triples)
        if templates is None:
            raise LongloreError("--templates is required with a triples file (a YAML file; see docs/bench-build.md)")
        return kg, read_templates(templates)
    return kg, read_templates(templates if templates is not None else name)
