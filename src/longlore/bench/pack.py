"""Pack the benchmarks' published files into the package data (``bench/benchmark_data/``).

Run once by a maintainer when the upstream files change::

    python -m longlore.bench.pack /path/to/folder/with/conceptmath,chineseecomqa,eckgbench

Each file is gzip-compressed deterministically (no timestamp or name in the header, level 9), so
packing the same input twice gives byte-identical output, and ``SOURCES.md`` is rewritten with
every file's origin repository, path, commit, date and the sha256 of both the original and the
shipped file. :func:`verify_shipped` checks the shipped files against that record (a test runs it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from longlore.core.errors import LongloreError

SHIPPED_ROOT = Path(__file__).resolve().parent / "benchmark_data"


@dataclass(frozen=True)
class Origin:
    """Where one published file comes from (the upstream repository at a given commit)."""

    repo: str
    path: str
    commit: str
    date: str


_CM = ("conceptmath/conceptmath", "8f96115d07bac4d4c82f65df681d798048b308ba", "2024-05-29")
_ECKG = ("ming429778/ECKGBench", "1f4f5f736ac69ab878387b91f71318965fca1a53", "2025-08-15")

# Shipped relative path (without .gz) -> origin. Every file was checked to be byte-identical to the
# upstream blob at the named commit (git hash-object against the repository).
ORIGINS: dict[str, Origin] = {
    **{
        f"conceptmath/{s}.jsonl": Origin(_CM[0], f"dataset/{s}.jsonl", _CM[1], _CM[2])
        for s in ("element_en", "element_zh", "middle_en", "middle_zh")
    },
    "chineseecomqa/ChineseEcomQA.jsonl": Origin(
        "OpenStellarTeam/ChineseEcomQA",
        "data/ChineseEcomQA.jsonl",
        "4d44d763586d41c5cf1859bd60f0d1faa1fa0d07",
        "2025-03-05",
    ),
    "eckgbench/ECKGBench.jsonl": Origin(_ECKG[0], "Datasets/ECKGBench.jsonl", _ECKG[1], _ECKG[2]),
    "eckgbench/ECKGBench_large.jsonl": Origin(_ECKG[0], "Datasets/ECKGBench_large.jsonl", _ECKG[1], _ECKG[2]),
    "eckgbench/question_original.jsonl": Origin(
        _ECKG[0], "question_generation/question_original.jsonl", _ECKG[1], _ECKG[2]
    ),
    "eckgbench/question_refined.jsonl": Origin(
        _ECKG[0], "question_generation/question_refined.jsonl", "40af196c09e4fb730f584a6e70182380e8dca0c5", _ECKG[2]
    ),
    "eckgbench/choice_set.jsonl": Origin(_ECKG[0], "neg_sampling/choice_set.jsonl", _ECKG[1], _ECKG[2]),
    "eckgbench/entity_text.csv": Origin(_ECKG[0], "neg_sampling/entity_text.csv", _ECKG[1], _ECKG[2]),
    "eckgbench/LLM_filtering_prompt.csv": Origin(_ECKG[0], "neg_sampling/LLM_filtering_prompt.csv", _ECKG[1], _ECKG[2]),
}

LICENCES = {
    "conceptmath/conceptmath": "no licence file in the repository; its README asks users to cite "
    "Wu et al. 2024, ConceptMath (arXiv 2402.14660)",
    "OpenStellarTeam/ChineseEcomQA": "no licence file in the repository; its README asks users to cite "
    "Chen et al. 2025, ChineseEcomQA (arXiv 2502.20196)",
    "ming429778/ECKGBench": "no licence file in the repository; its README asks users to cite "
    "Liu et al. 2025, ECKGBench (arXiv 2503.15990, CIKM 2025)",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no file name, mtime 0, level 9."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as handle:
        handle.write(data)
    return buffer.getvalue()


def sources_markdown(rows: list[tuple[str, Origin, str, str, int, int]]) -> str:
    """The SOURCES.md text for packed files ``(relpath, origin, sha_original, sha_gz, size, size_gz)``."""
    lines = [
        "# Benchmark files shipped with longlore",
        "",
        "The benchmarks' own published files, unchanged, gzip-compressed (deterministic: level 9, no",
        "name, mtime 0). `sha256` is of the original file (equal to the upstream blob at the named",
        "commit); `sha256 (.gz)` of the shipped file. Regenerate with",
        "`python -m longlore.bench.pack DIR` (DIR holds conceptmath/, chineseecomqa/, eckgbench/).",
        "",
        "| shipped file | origin repository : path | commit (date) | bytes -> .gz | sha256 | sha256 (.gz) |",
        "|---|---|---|---|---|---|",
    ]
    for rel, origin, sha, sha_gz, size, size_gz in rows:
        lines.append(
            f"| {rel}.gz | {origin.repo} : {origin.path} | {origin.commit[:12]} ({origin.date}) | "
            f"{size:,} -> {size_gz:,} | {sha} | {sha_gz} |"
        )
    lines += ["", "## Licences and citation", ""]
    lines += [f"- {repo}: {text}." for repo, text in LICENCES.items()]
    lines += [
        "",
        "The files are redistributed unchanged for evaluation, with their origin named; users should",
        "cite the papers above. `ECKGBench` construction files (question_original, question_refined,",
        "choice_set, entity_text, LLM_filtering_prompt) are shipped for `longlore bench build-*`.",
        "Not shipped: the ECKGBench source KG (`source/ecom_KG_part*.jsonl.zip`) and the entity",
        "embeddings (`neg_sampling/entity_text_embedding_part*.jsonl.zip`).",
        "",
    ]
    return "\n".join(lines)


def pack(source_root: str | Path, dest: str | Path = SHIPPED_ROOT) -> list[Path]:
    """Compress every file of :data:`ORIGINS` from ``source_root`` into ``dest``; write SOURCES.md."""
    source_root, dest = Path(source_root), Path(dest)
    rows, written = [], []
    for rel, origin in ORIGINS.items():
        src = source_root / rel
        if not src.is_file():
            raise LongloreError(f"{src}: missing; the source folder must hold {rel} ({origin.repo} : {origin.path})")
        data = src.read_bytes()
        packed = gzip_bytes(data)
        target = dest / f"{rel}.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(packed)
        written.append(target)
        rows.append((rel, origin, sha256(data), sha256(packed), len(data), len(packed)))
    (dest / "SOURCES.md").write_text(sources_markdown(rows), encoding="utf-8")
    return written


def verify_shipped(root: str | Path = SHIPPED_ROOT) -> dict[str, str]:
    """Check every shipped file against SOURCES.md: ``{relpath: sha256 of the original}``.

    Raises :class:`LongloreError` naming the first file whose content differs from the record.
    """
    root = Path(root)
    record = (root / "SOURCES.md").read_text(encoding="utf-8")
    checked = {}
    for rel in ORIGINS:
        packed = (root / f"{rel}.gz").read_bytes()
        original = gzip.decompress(packed)
        sha, sha_gz = sha256(original), sha256(packed)
        row = next((ln for ln in record.splitlines() if ln.startswith(f"| {rel}.gz |")), "")
        if not row.endswith(f"| {sha} | {sha_gz} |"):
            raise LongloreError(
                f"{root / rel}.gz: content differs from SOURCES.md; re-run python -m longlore.bench.pack"
            )
        checked[rel] = sha
    return checked


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m longlore.bench.pack SOURCE_DIR")
    for path in pack(sys.argv[1]):
        print(path)
