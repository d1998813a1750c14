"""One save/load convention for every wrapper around a backbone (PEFT style).

A system's wrapper ``X`` (RAM's compressor, CoMeT's memory, CET's head, ...) saves only what it
adds to the backbone::

    x.save_pretrained("runs/x/final")                      # {kind}_model.safetensors + {kind}_config.json
    x = X.from_pretrained(base_model, tokenizer, "runs/x")  # a run folder finds its final/

The config JSON is versioned: ``{"kind": ..., "format_version": N, "config": {...}, ...extra}``;
a folder written by a newer version than the code knows is refused with a one-line error.
Folders are written to a temporary sibling and swapped in, so a crash never leaves half a model.

:func:`find_model_folder` is the rule for every path option that wants a model folder: a folder
holding the marker file is used; a run folder whose ``final/`` holds it resolves to ``final/``;
otherwise the error names the subfolders that would work.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from longlore.core.errors import LongloreError

FINAL_DIR = "final"


def find_model_folder(path: str | Path, marker: str, what: str = "model") -> Path:
    """The folder under ``path`` that holds ``marker`` (``path`` itself, else ``path/final``).

    Raises a one-line :class:`LongloreError` naming the subfolders that hold ``marker`` when
    ``path`` is a run folder without ``final/`` (e.g. only ``checkpoint-200/``), or saying that
    nothing under ``path`` looks like a ``what`` folder.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise LongloreError(f"{path}: no such folder; pass a {what} folder (one holding {marker})")
    if not path.is_dir():
        raise LongloreError(f"{path}: is a file; pass the {what} folder that holds {marker}")
    if (path / marker).is_file():
        return path
    if (path / FINAL_DIR / marker).is_file():
        return path / FINAL_DIR
    candidates = sorted(p.parent for p in path.glob(f"*/{marker}")) + sorted(
        p.parent for p in path.glob(f"*/*/{marker}")
    )
    if candidates:
        shown = ", ".join(str(c) for c in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
        raise LongloreError(
            f"{path}: a run folder without {FINAL_DIR}/{marker}; pass the {what} subfolder you want: {shown}"
        )
    raise LongloreError(f"{path}: not a {what} folder (no {marker} here or in {FINAL_DIR}/)")


def _replace_folder(tmp: Path, folder: Path) -> None:
    """Swap ``tmp`` in as ``folder`` (the old one, if any, is removed only after the swap)."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def write_folder_atomically(folder: str | Path, fill: Callable[[Path], None], overwrite: bool = True) -> Path:
    """Create ``folder`` by calling ``fill(tmp)`` on a temporary sibling, then swapping it in."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise LongloreError(f"{folder}: already exists; pass --overwrite (overwrite=True) or choose another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _plain_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses aliased storage (tied weights): give every tensor its own contiguous copy
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_pretrained_folder(
    folder: str | Path,
    *,
    kind: str,
    version: int,
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
    also: Callable[[Path], None] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``{kind}_model.safetensors`` + ``{kind}_config.json`` (versioned) atomically;
    ``also(tmp_folder)`` may add more files (a trained backbone, a tokenizer)."""
    from safetensors.torch import save_file

    meta = {"kind": kind, "format_version": version, "config": config, **(extra or {})}

    def fill(tmp: Path) -> None:
        save_file(_plain_tensors(tensors), str(tmp / f"{kind}_model.safetensors"))
        (tmp / f"{kind}_config.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n")
        if also is not None:
            also(tmp)

    return write_folder_atomically(folder, fill, overwrite=overwrite)


def load_pretrained_folder(
    path: str | Path, *, kind: str, version: int
) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """``(folder, meta, tensors)`` of a folder written by :func:`save_pretrained_folder`
    (a run folder resolves to its ``final/``). ``meta["config"]`` is the config dict."""
    from safetensors.torch import load_file

    folder = find_model_folder(path, f"{kind}_config.json", what=f"{kind} model")
    config_path = folder / f"{kind}_config.json"
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LongloreError(f"{config_path}:{err.lineno}: invalid JSON ({err.msg})") from None
    found = meta.get("format_version")
    if not isinstance(found, int) or "config" not in meta:
        raise LongloreError(f"{config_path}: not a versioned {kind} config (no format_version/config keys)")
    if found > version:
        raise LongloreError(
            f"{config_path}: format_version {found} is newer than this longlore reads ({version}); upgrade longlore"
        )
    weights = folder / f"{kind}_model.safetensors"
    if not weights.is_file():
        raise LongloreError(f"{folder}: {weights.name} is missing; the folder is incomplete, save it again")
    return folder, meta, load_file(str(weights))


def load_state_checked(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str | Path) -> None:
    """``load_state_dict`` that accepts a partial state (only what the wrapper saved) but refuses
    tensors the module does not have or whose shapes differ, with a one-line error."""
    own = module.state_dict()
    unexpected = [k for k in tensors if k not in own]
    wrong = [k for k in tensors if k in own and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if unexpected or wrong:
        raise LongloreError(
            f"{where}: saved tensors do not fit this model (unexpected {unexpected[:3]}, wrong shape {wrong[:3]}); "
            "load it onto the backbone and config it was trained with"
        )
    module.load_state_dict(tensors, strict=False)


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of ``module``'s parameters that require grad (what a wrapper trains)."""
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    return {k: v for k, v in module.state_dict().items() if k in names}


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass (or anything with ``to_dict``) as a JSON-able dict."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if is_dataclass(config):
        return asdict(config)
    return dict(config)


class PretrainedMixin:
    """PEFT-style ``save_pretrained`` / ``from_pretrained`` for a wrapper around a backbone.

    A wrapper sets ``pretrained_kind`` (file prefix), ``config_class`` and, when its constructor
    is not ``cls(base_model, tokenizer, config)``, overrides :meth:`_from_config`. It saves
    :meth:`pretrained_state` (default: every parameter that requires grad) and ``self.config``.
    Bump ``pretrained_version`` when the saved layout changes.
    """

    pretrained_kind: ClassVar[str]
    pretrained_version: ClassVar[int] = 1
    config_class: ClassVar[Any]

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self)  # type: ignore[arg-type]

    def pretrained_extra(self) -> dict[str, Any]:
        """More keys for the config JSON (e.g. the backbone's shape, to check on load)."""
        return {}

    def save_pretrained(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write this wrapper's own tensors and config to ``path`` (atomically)."""
        return save_pretrained_folder(
            path,
            kind=self.pretrained_kind,
            version=self.pretrained_version,
            config=config_to_dict(self.config),  # type: ignore[attr-defined]
            tensors=self.pretrained_state(),
            extra={"class": type(self).__name__, **self.pretrained_extra()},
            overwrite=overwrite,
        )

    @classmethod
    def _from_config(cls, base_model: Any, tokenizer: Any, config: Any) -> Any:
        return cls(base_model, tokenizer, config)  # type: ignore[call-arg]

    @classmethod
    def from_pretrained(cls, base_model: Any, tokenizer: Any, path: str | Path) -> Any:
        """Rebuild the wrapper on ``base_model`` from ``path`` (a run folder resolves to ``final/``)."""
        folder, meta, tensors = load_pretrained_folder(path, kind=cls.pretrained_kind, version=cls.pretrained_version)
        config_class = cls.config_class
        data = meta["config"]
        config = (
            config_class.from_dict(data)
            if hasattr(config_class, "from_dict")
            else config_class(**{k: v for k, v in data.items() if k in config_class.__dataclass_fields__})
        )
        model = cls._from_config(base_model, tokenizer, config)
        load_state_checked(model, tensors, folder / f"{cls.pretrained_kind}_model.safetensors")
        return model.eval() if hasattr(model, "eval") else model
