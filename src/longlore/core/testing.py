"""Checks every trainer owes (issue #16 / #21), as helpers for the systems' tests.

* :func:`check_resume_matches_unbroken`: a run stopped part-way and resumed from its checkpoint on a
  freshly built model ends with exactly the weights of an unbroken run.
* :func:`check_ranks_match_single`: the same training on N gloo ranks (CPU processes) ends with the
  weights of one process on the combined batch, and no rank but 0 writes a file.

A *recipe* is a module-level function ``recipe(out_dir: Path) -> dict[str, Tensor]`` that builds
a seeded model, trains it (the shared loop picks up the process group by itself) and returns
:func:`trainable_tensors` of the result; spawned ranks import it by name, so it must live at the
top level of an importable module (a test module is fine).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

Recipe = Callable[[Path], dict[str, torch.Tensor]]


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the parameters that require grad (what training changes)."""
    return {n: p.detach().to("cpu", torch.float64).clone() for n, p in model.named_parameters() if p.requires_grad}


def tensor_differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> list[str]:
    """``name: max |a - b|`` for every tensor that differs by more than ``atol`` (or is missing)."""
    problems = [f"{k}: only on one side" for k in sorted(set(a) ^ set(b))]
    for k in sorted(set(a) & set(b)):
        gap = (a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0
        if a[k].shape != b[k].shape or gap > atol:
            problems.append(f"{k}: max |diff| {gap:.3g} (shapes {tuple(a[k].shape)} vs {tuple(b[k].shape)})")
    return problems


def check_resume_matches_unbroken(
    build: Callable[[], Any], train: Callable[[Any, Path, int | None], Any], folder: str | Path, stop_at: int
) -> None:
    """``train(model, out_dir, stop_after)`` three times: unbroken; stopped at ``stop_at``; resumed
    on a fresh ``build()``. Raises AssertionError naming the tensors that differ (exact equality)."""
    folder = Path(folder)
    unbroken = build()
    train(unbroken, folder / "unbroken", None)
    train(build(), folder / "cut", stop_at)
    resumed = build()
    train(resumed, folder / "cut", None)
    problems = tensor_differences(trainable_tensors(unbroken), trainable_tensors(resumed))
    if problems:
        raise AssertionError("resumed run differs from the unbroken one: " + "; ".join(problems[:5]))


def _record_non_main_writes(rank: int, log: Path) -> None:
    """Make every longlore file write on a rank other than 0 leave a line in ``log``."""
    from longlore.core import checkpoint, io, saving

    def spy(module: Any, name: str) -> None:
        real = getattr(module, name)

        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            if rank != 0:
                with log.open("a") as handle:
                    handle.write(f"rank {rank} wrote {path}\n")
            return real(path, *args, **kwargs)

        setattr(module, name, wrapper)

    spy(io, "atomic_write_bytes")
    spy(checkpoint, "_atomic_torch_save")
    spy(saving, "write_folder_atomically")


def _rank_worker(rank: int, recipes: Sequence[Recipe], folder: str) -> None:
    _record_non_main_writes(rank, Path(folder, "non_main_writes.log"))
    for i, recipe in enumerate(recipes):
        tensors = recipe(Path(folder, f"recipe{i}"))
        torch.save(tensors, Path(folder, f"recipe{i}-rank{rank}.pt"))


def check_ranks_match_single(
    recipes: Sequence[Recipe],
    folder: str | Path,
    world_size: int = 2,
    atol: float = 1e-6,
    single: Sequence[Recipe] | None = None,
) -> None:
    """Run every recipe on ``world_size`` gloo ranks (one spawn) and in this process; every rank's
    tensors must equal the single process's within ``atol``, and ranks > 0 must write nothing.

    ``single[i]`` (default: ``recipes[i]``) is what runs in this process as the reference for
    ``recipes[i]``: e.g. an unbroken run as the reference for a 2-rank run that was stopped and
    resumed. Raises AssertionError with the recipe, the rank and the tensors that differ.
    """
    references = list(single) if single is not None else list(recipes)
    if len(references) != len(recipes):
        raise ValueError(f"{len(recipes)} recipes but {len(references)} single-process references")
    from longlore.core.distributed import spawn_gloo

    folder = Path(folder)
    (folder / "ranks").mkdir(parents=True, exist_ok=True)
    spawn_gloo(_rank_worker, world_size, folder / "ranks", list(recipes), str(folder / "ranks"))
    problems = []
    expected_by_reference: dict[Recipe, dict[str, torch.Tensor]] = {}  # a reference shared by recipes runs once
    for i, (recipe, reference) in enumerate(zip(recipes, references)):
        if reference not in expected_by_reference:
            expected_by_reference[reference] = reference(folder / f"single{i}")
        expected = expected_by_reference[reference]
        for rank in range(world_size):
            ranked = torch.load(folder / "ranks" / f"recipe{i}-rank{rank}.pt")
            diffs = tensor_differences(expected, ranked, atol)
            if diffs:
                problems.append(f"{recipe.__name__} rank {rank}: " + "; ".join(diffs[:3]))
    log = folder / "ranks" / "non_main_writes.log"
    if log.exists():
        problems.append("ranks other than 0 wrote files: " + log.read_text().strip().replace(os.linesep, "; "))
    if problems:
        raise AssertionError(" | ".join(problems))
