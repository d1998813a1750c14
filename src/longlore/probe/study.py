"""The whole study as one resumable grid: train, reconstruct, measure entropy, correlate, compare.

Cells (each cached under the study folder, so an interrupted run resumes where it stopped):

* ``matched_r{ratio}`` — an autoencoder whose encoder is cut from the decoder itself, per ratio;
* ``cpt_{dist}`` — a copy of the decoder, continued-pretrained briefly on one distribution;
* ``mismatched_r{ratio}`` — an autoencoder whose encoder is cut from that shifted copy, in front of
  the same frozen decoder, trained with the same budget, data order and seed as the matched one;
* per-sample JSONL caches of reconstructions (BLEU, F1) and of token statistics (mean NLL, mean
  predictive entropy) under the decoder, the trained encoder as an LM, and the shifted copy.

The results dictionary (see :func:`report`) holds ``quality[distribution]``,
``correlation[encoder|decoder][nll|entropy][pearson|spearman]``, ``mismatch[matched|mismatched]``,
``ratios`` and the CPU seconds each cell spent.
"""

from __future__ import annotations

import copy
import json
import platform
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from longlore.core.errors import LongloreError
from longlore.core.io import read_json, write_json
from longlore.core.progress import console
from longlore.probe.config import ProbeConfig, TrainArgs
from longlore.probe.data import BUILTIN_DISTRIBUTIONS, Distributions, Sample
from longlore.probe.evaluate import (
    by_distribution,
    cached_per_sample,
    paired_difference,
    reconstruction_rows,
    statistics_rows,
    summarize_quality,
)
from longlore.probe.metrics import correlation, standardize_within
from longlore.probe.model import ProbeAutoencoder
from longlore.probe.trainer import continue_pretrain, mixture_sampler, train_autoencoder

STAGES = ("train", "mismatch", "eval", "entropy", "report")
# Settings a study folder may be resumed with changed: they pick prefixes of the same cached samples
# (held-out samples come in a fixed seeded order) or change only how work is batched and logged.
RESUMABLE_CHANGES = frozenset(
    {
        "study.n_eval",
        "study.n_eval_mismatch",
        "study.n_entropy_encoder",
        "study.eval_batch_size",
        "train.log_every",
        "train.stop_after",
    }
)


@dataclass
class StudyConfig:
    """The grid: which models, distributions, sample sizes, ratios and mismatch to run."""

    decoder: str = field(default="smollm2-135m", metadata={"help": "Decoder (and matched encoder base) model spec."})
    distributions: tuple[str, ...] = field(
        default=BUILTIN_DISTRIBUTIONS, metadata={"help": "Distributions to train on and evaluate."}
    )
    data_folders: tuple[str, ...] = field(
        default=(), metadata={"help": "Extra distributions from your own folders, as NAME=PATH (.txt / .jsonl)."}
    )
    length: int = field(default=128, metadata={"help": "Tokens per sample (all samples have this length)."})
    n_eval: int = field(default=200, metadata={"help": "Held-out samples per distribution."})
    ratios: tuple[int, ...] = field(default=(4,), metadata={"help": "Compression ratios to train and evaluate."})
    mismatch: bool = field(default=True, metadata={"help": "Run the encoder/decoder mismatch arm."})
    mismatch_distribution: str = field(
        default="code", metadata={"help": "Distribution the shifted encoder base is continued-pretrained on."}
    )
    cpt_steps: int = field(default=60, metadata={"help": "Continued pre-training steps of the shifted copy."})
    cpt_lr: float = field(default=1e-4, metadata={"help": "Continued pre-training learning rate."})
    n_eval_mismatch: int = field(
        default=100, metadata={"help": "Held-out samples per distribution for the mismatch comparison (a prefix)."}
    )
    n_entropy_encoder: int = field(
        default=200,
        metadata={"help": "Samples per distribution measured under the trained encoder as an LM (a prefix; 0 skips)."},
    )
    eval_batch_size: int = field(default=32, metadata={"help": "Samples per reconstruction batch."})
    amp_bf16: bool = field(default=False, metadata={"help": "bf16 autocast for training and evaluation."})

    def __post_init__(self) -> None:
        self.distributions, self.ratios = tuple(self.distributions), tuple(int(r) for r in self.ratios)
        self.data_folders = tuple(self.data_folders)
        if not self.ratios:
            raise LongloreError("StudyConfig.ratios must name at least one compression ratio")
        for item in self.data_folders:
            if "=" not in item:
                raise LongloreError(f"data folder '{item}': expected NAME=PATH, e.g. mydocs=./docs")
        if self.mismatch and self.mismatch_distribution not in self.all_distributions:
            raise LongloreError(
                f"StudyConfig.mismatch_distribution '{self.mismatch_distribution}' is not among {self.all_distributions}"
            )
        if self.n_eval_mismatch > self.n_eval or self.n_entropy_encoder > self.n_eval:
            raise LongloreError("StudyConfig: n_eval_mismatch and n_entropy_encoder must be <= n_eval")

    @property
    def folders(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.data_folders)

    @property
    def all_distributions(self) -> list[str]:
        return list(self.distributions) + list(self.folders)


class Study:
    """Holds the loaded models and samples of one study folder; each stage is a method."""

    def __init__(
        self,
        out_dir: str | Path,
        config: StudyConfig,
        probe: ProbeConfig,
        train: TrainArgs,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        from longlore.core.models import load_causal_lm

        self.out = Path(out_dir)
        self.config, self.probe_config, self.train_args = config, probe, train
        self.device, self.dtype = device, dtype
        self._check_folder()
        torch.manual_seed(train.seed)
        self.decoder, self.tokenizer = load_causal_lm(config.decoder, device=device, dtype=dtype)
        self.distributions = Distributions(self.tokenizer, config.folders)
        self.samples: list[Sample] = []
        for name in config.all_distributions:
            self.samples += self.distributions.held_out(name, config.n_eval, config.length, seed=train.seed)

    def _check_folder(self) -> None:
        """A study folder belongs to one configuration: reusing it with another would mix caches."""
        settings = {
            "study": asdict(self.config),
            "probe": self.probe_config.to_dict(),
            "train": self.train_args.to_dict(),
        }
        settings = json.loads(json.dumps(settings))  # tuples -> lists, as they are stored
        path = self.out / "study_config.json"
        if path.exists():
            stored = read_json(path)
            changed = sorted(
                f"{part}.{key}"
                for part in settings
                for key in set(settings[part]) | set(stored.get(part, {}))
                if settings[part].get(key) != stored.get(part, {}).get(key)
            )
            if set(changed) - RESUMABLE_CHANGES:
                raise LongloreError(
                    f"{self.out} holds a study with other settings ({', '.join(changed)}); "
                    "pass a new --out folder to run this one"
                )
            if changed:
                console.print(f"[yellow]study settings changed[/yellow] ({', '.join(changed)}): caches stay valid")
                write_json(path, settings, overwrite=True)
        else:
            write_json(path, settings)

    def subset(self, per_distribution: int) -> list[Sample]:
        return [s for s in self.samples if s.index < per_distribution]

    # ------------------------------------------------------------------------------------ cells
    def _sampler(self):
        return mixture_sampler(self.distributions, self.config.all_distributions, self.config.length)

    def autoencoder(self, ratio: int, encoder_base: torch.nn.Module | None = None, name: str | None = None):
        """Train (or load the finished) autoencoder of one cell."""
        name = name or f"matched_r{ratio}"
        folder = self.out / name
        config = copy.deepcopy(self.probe_config)
        config.ratio = ratio
        done = lambda: (folder / "final").exists() and (folder / "train_summary.json").exists()
        if done() or not _claim(folder, done):
            return ProbeAutoencoder.from_pretrained(self.decoder, self.tokenizer, folder / "final", encoder_base)
        torch.manual_seed(self.train_args.seed)  # same LoRA initialisation in every arm
        probe = ProbeAutoencoder(self.decoder, self.tokenizer, config, encoder_base=encoder_base)
        summary = train_autoencoder(probe, self._sampler(), folder, self.train_args, amp_bf16=self.config.amp_bf16)
        (folder / ".lock").unlink(missing_ok=True)
        if not summary["finished"]:
            raise _Stopped(f"{name} stopped at step {summary['steps']} (--stop-after); rerun to resume")
        return probe

    def shifted_model(self) -> torch.nn.Module:
        """The decoder's copy continued-pretrained on ``mismatch_distribution`` (trained once, cached)."""
        from longlore.core.models import load_causal_lm

        folder = self.out / f"cpt_{self.config.mismatch_distribution}"
        done = lambda: (folder / "final" / "config.json").exists()
        if not done() and _claim(folder, done):
            model = copy.deepcopy(self.decoder)
            sampler = mixture_sampler(self.distributions, [self.config.mismatch_distribution], self.config.length)
            args = TrainArgs(
                steps=self.config.cpt_steps,
                batch_size=self.train_args.batch_size,
                lr=self.config.cpt_lr,
                warmup_steps=min(10, self.config.cpt_steps),
                seed=self.train_args.seed + 1,
                checkpoint_every=self.train_args.checkpoint_every,
                log_every=self.train_args.log_every,
            )
            model = continue_pretrain(model, self.tokenizer, sampler, folder, args, amp_bf16=self.config.amp_bf16)
            (folder / ".lock").unlink(missing_ok=True)
            return model
        return load_causal_lm(str(folder / "final"), device=self.device, dtype=self.dtype)[0]

    def reconstructions(self, probe: ProbeAutoencoder, name: str, samples: list[Sample]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for dist, group in by_distribution([{"distribution": s.distribution, "s": s} for s in samples]).items():
            rows += cached_per_sample(
                [g["s"] for g in group],
                self.out / name / f"eval_{dist}.jsonl",
                reconstruction_rows(probe, self.config.amp_bf16),
                self.config.eval_batch_size,
                f"{name}: reconstructing {dist}",
            )
        return rows

    def statistics(self, model: torch.nn.Module, name: str, samples: list[Sample]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for dist, group in by_distribution([{"distribution": s.distribution, "s": s} for s in samples]).items():
            rows += cached_per_sample(
                [g["s"] for g in group],
                self.out / "entropy" / f"{name}_{dist}.jsonl",
                statistics_rows(model, self.config.amp_bf16),
                8,
                f"entropy under {name}: {dist}",
            )
        return rows

    # ----------------------------------------------------------------------------------- stages
    def run(
        self,
        stages: tuple[str, ...] = STAGES,
        results_path: str | Path | None = None,
        only: tuple[str, ...] | None = None,
    ) -> dict[str, Any] | None:
        """Run ``stages`` in order; ``only`` restricts evaluation and entropy to some distributions (so two
        processes can share the work of one study folder: cells being trained by one are waited for)."""
        try:
            return self._run(stages, results_path, only)
        except _Stopped as stop:
            console.print(f"[yellow]{stop}[/yellow]")
            return None

    def _run(
        self, stages: tuple[str, ...], results_path: str | Path | None, only: tuple[str, ...] | None
    ) -> dict[str, Any] | None:
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise LongloreError(f"unknown stage(s) {sorted(unknown)}; expected some of: {', '.join(STAGES)}")
        if only is not None and set(only) - set(self.config.all_distributions):
            raise LongloreError(
                f"--only names {sorted(set(only) - set(self.config.all_distributions))}, not in the study"
            )
        keep = (
            (lambda samples: samples)
            if only is None
            else (lambda samples: [s for s in samples if s.distribution in only])
        )
        main_ratio = self.config.ratios[0]
        probes = {}
        if "train" in stages or "eval" in stages or "entropy" in stages:
            for ratio in self.config.ratios:
                probes[ratio] = self.autoencoder(ratio)
        if "eval" in stages:
            for ratio, probe in probes.items():
                self.reconstructions(probe, f"matched_r{ratio}", keep(self.samples))
        if "entropy" in stages:
            self.statistics(self.decoder, "decoder", keep(self.samples))
            if self.config.n_entropy_encoder:
                adapted = probes[main_ratio].adapted_encoder_lm(self.decoder)
                self.statistics(adapted, "encoder", keep(self.subset(self.config.n_entropy_encoder)))
                del adapted
        if "mismatch" in stages and self.config.mismatch:
            shifted = self.shifted_model()
            mismatched = self.autoencoder(main_ratio, encoder_base=shifted, name=f"mismatched_r{main_ratio}")
            subset = keep(self.subset(self.config.n_eval_mismatch))
            self.reconstructions(mismatched, f"mismatched_r{main_ratio}", subset)
            self.statistics(shifted, "shifted", subset)
        if "report" in stages:
            results = self.report()
            write_json(self.out / "probe_study.json", results, overwrite=True)
            if results_path is not None:
                write_json(results_path, results, overwrite=True)
            from longlore.probe.plots import plot_study

            plot_study(results, self.out, Path(results_path).parent if results_path else self.out)
            return results
        return None

    # ----------------------------------------------------------------------------------- report
    def _cached(self, path: Path, samples: list[Sample]) -> list[dict[str, Any]] | None:
        rows = []
        for dist, group in by_distribution([{"distribution": s.distribution, "s": s} for s in samples]).items():
            file = path.parent / path.name.format(dist=dist)
            if not file.exists():
                return None
            cached = {}
            for line in file.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                cached[row["index"]] = row
            if any(g["s"].index not in cached for g in group):
                return None
            rows += [cached[g["s"].index] for g in group]
        return rows

    def report(self) -> dict[str, Any]:
        """Aggregate every finished cell into the results dictionary (cells not run are left out)."""
        cfg, main_ratio = self.config, self.config.ratios[0]
        results: dict[str, Any] = {
            "machine": f"{platform.machine()} {platform.processor() or 'cpu'}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s)",
            "settings": read_json(self.out / "study_config.json"),
            "command": study_command(read_json(self.out / "study_config.json"), self.out),
            "sources": {name: self.distributions.sources.get(name, name) for name in cfg.all_distributions},
        }
        main = self._cached(self.out / f"matched_r{main_ratio}" / "eval_{dist}.jsonl", self.samples)
        if main is None:
            raise LongloreError(f"{self.out}: the main cell matched_r{main_ratio} is not evaluated yet; run stage eval")
        groups = by_distribution(main)
        results["quality"] = {d: summarize_quality(groups[d], self.train_args.seed) for d in cfg.all_distributions}
        results["quality"]["all"] = summarize_quality(main, self.train_args.seed)
        results["ratios"] = {}
        for ratio in cfg.ratios:
            rows = self._cached(self.out / f"matched_r{ratio}" / "eval_{dist}.jsonl", self.samples)
            if rows is not None:
                per = by_distribution(rows)
                results["ratios"][str(ratio)] = {
                    d: summarize_quality(per[d], self.train_args.seed) for d in cfg.all_distributions
                }
        results["correlation"], results["correlation_within"], results["correlation_per_distribution"] = {}, {}, {}
        sources = {"decoder": self.samples, "encoder": self.subset(cfg.n_entropy_encoder)}
        statistics = {}
        for source, samples in sources.items():
            stats = self._cached(self.out / "entropy" / f"{source}_{{dist}}.jsonl", samples) if samples else None
            if stats is None:
                continue
            statistics[source] = stats
            quality = self._cached(self.out / f"matched_r{main_ratio}" / "eval_{dist}.jsonl", samples)
            results["correlation"][source] = _correlations(stats, quality, within=False, seed=self.train_args.seed)
            results["correlation_within"][source] = _correlations(
                stats, quality, within=True, seed=self.train_args.seed
            )
            per = {}
            for dist in cfg.all_distributions:
                idx = [i for i, s in enumerate(samples) if s.distribution == dist]
                per[dist] = _correlations(
                    [stats[i] for i in idx], [quality[i] for i in idx], within=False, seed=self.train_args.seed
                )
            results["correlation_per_distribution"][source] = per
        results["correlation"]["encoder_base"] = {
            "same_as": "decoder",
            "why": "in the matched pair the encoder's base LM is the decoder itself; see mismatch.correlation for "
            "a pair whose encoder base differs from the decoder",
        }
        results["entropy"] = {
            source: {
                dist: {
                    key: round(
                        sum(r[key] for r in rows if r["distribution"] == dist)
                        / max(1, sum(1 for r in rows if r["distribution"] == dist)),
                        4,
                    )
                    for key in ("nll", "entropy")
                }
                for dist in cfg.all_distributions
            }
            for source, rows in statistics.items()
        }
        results["mismatch"] = self._mismatch_report(main_ratio)
        results["budget"] = self._budget()
        by_key = {src: {(r["distribution"], r["index"]): r for r in rows} for src, rows in statistics.items()}
        results["samples"] = []
        for r in main:
            row = {"distribution": r["distribution"], "index": r["index"], "bleu": round(r["bleu"], 2)}
            row["f1"] = round(r["f1"], 2)
            for src, table in by_key.items():
                stat = table.get((r["distribution"], r["index"]))
                if stat is not None:
                    row |= {f"{src}_nll": round(stat["nll"], 4), f"{src}_entropy": round(stat["entropy"], 4)}
            results["samples"].append(row)
        return results

    def _mismatch_report(self, ratio: int) -> dict[str, Any]:
        cfg = self.config
        subset = self.subset(cfg.n_eval_mismatch)
        matched = self._cached(self.out / f"matched_r{ratio}" / "eval_{dist}.jsonl", subset)
        mismatched = self._cached(self.out / f"mismatched_r{ratio}" / "eval_{dist}.jsonl", subset)
        if not cfg.mismatch:
            return {"status": "not run: the study was run with --no-mismatch"}
        if matched is None or mismatched is None:
            return {"status": "not run yet: run the stages mismatch and eval"}
        out: dict[str, Any] = {
            "design": f"same frozen decoder ({cfg.decoder}); matched encoder cut from the decoder, mismatched encoder "
            f"cut from a copy continued-pretrained on '{cfg.mismatch_distribution}' for {cfg.cpt_steps} steps; "
            "same training budget, data order and seed",
        }
        for arm, rows in (("matched", matched), ("mismatched", mismatched)):
            groups = by_distribution(rows)
            out[arm] = {d: summarize_quality(groups[d], self.train_args.seed) for d in cfg.all_distributions}
            out[arm]["all"] = summarize_quality(rows, self.train_args.seed)
        out["difference_matched_minus_mismatched"] = {
            metric: paired_difference(
                [r[metric] for r in matched], [r[metric] for r in mismatched], self.train_args.seed
            )
            for metric in ("bleu", "f1")
        }
        shifted = self._cached(self.out / "entropy" / "shifted_{dist}.jsonl", subset)
        decoder = self._cached(self.out / "entropy" / "decoder_{dist}.jsonl", subset)
        if shifted is not None and decoder is not None:
            out["correlation"] = {
                "encoder": _correlations(shifted, mismatched, within=False, seed=self.train_args.seed),
                "decoder": _correlations(decoder, mismatched, within=False, seed=self.train_args.seed),
            }
            out["drift_nll"] = {
                d: {
                    "decoder": round(sum(r["nll"] for r in decoder if r["distribution"] == d) / cfg.n_eval_mismatch, 4),
                    "shifted": round(sum(r["nll"] for r in shifted if r["distribution"] == d) / cfg.n_eval_mismatch, 4),
                }
                for d in cfg.all_distributions
            }
        return out

    def _budget(self) -> dict[str, Any]:
        train, steps = {}, {}
        for summary in sorted(self.out.glob("*/train_summary.json")):
            stored = read_json(summary)
            train[summary.parent.name] = stored["cpu_seconds"]
            steps[summary.parent.name] = stored.get("steps")
        evaluation = {}
        for cache in sorted(self.out.glob("**/*.jsonl")):
            rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
            evaluation[str(cache.relative_to(self.out))] = round(sum(r.get("cpu_seconds", 0.0) for r in rows), 1)
        return {
            "train_cpu_seconds": train,
            "train_cpu_hours": round(sum(train.values()) / 3600, 3),
            "train_steps": steps,
            "eval_cpu_seconds": evaluation,
            "eval_cpu_hours": round(sum(evaluation.values()) / 3600, 3),
        }


class _Stopped(Exception):
    """A planned stop (``stop_after``) inside a training cell: the study stops there, to be resumed."""


def study_command(settings: dict[str, dict[str, Any]], out: Path) -> str:
    """The ``longlore probe study`` command line that reproduces a study's stored settings."""
    parts = ["longlore probe study"]
    for part, values in settings.items():
        for key, value in values.items():
            if key == "version" or (part == "probe" and key == "ratio") or value is None:
                continue  # None: an Optional option left at its default
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else f"--no-{flag[2:]}")
            elif isinstance(value, list):
                parts.append(f"{flag} {','.join(str(v) for v in value)}" if value else f"{flag} ''")
            else:
                text = str(value)
                if "\n" in text:  # bash ANSI-C quoting keeps the command on one line
                    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
                    quoted = f"$'{escaped}'"
                else:
                    quoted = shlex.quote(text) if text else "''"
                parts.append(f"{flag} {quoted}")
    parts.append(f"--out {out}")
    return " ".join(parts)


def _claim(folder: Path, done: Any, poll_seconds: float = 30.0) -> bool:
    """Take the training of a cell (True), or wait for another live process that holds it (False)."""
    import os
    import time

    lock = folder / ".lock"
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while lock.exists() and not done():
        try:
            pid = int(lock.read_text().strip() or 0)
            os.kill(pid, 0)  # raises if no such process: a stale lock
        except (ValueError, ProcessLookupError, PermissionError):
            break
        if pid == os.getpid():
            break
        if not waited:
            console.print(f"waiting for process {pid}, which is training {folder.name}")
            waited = True
        time.sleep(poll_seconds)
    if done():
        return False
    lock.write_text(str(os.getpid()))
    return True


def _correlations(
    stats: list[dict[str, Any]], quality: list[dict[str, Any]], within: bool, seed: int
) -> dict[str, dict[str, Any]]:
    """``{nll|entropy: {pearson|spearman: {bleu: {r, p, ci}, f1: {...}}, n}}`` of quality against statistics."""
    groups = [r["distribution"] for r in quality]
    out: dict[str, dict[str, Any]] = {}
    for key in ("nll", "entropy"):
        x = [s[key] for s in stats]
        if within:
            x = standardize_within(x, groups).tolist()
        table: dict[str, Any] = {"pearson": {}, "spearman": {}}
        for metric in ("bleu", "f1"):
            y = [q[metric] for q in quality]
            if within:
                y = standardize_within(y, groups).tolist()
            result = correlation(x, y, seed=seed)
            for kind in ("pearson", "spearman"):
                table[kind][metric] = {k: _round(v) for k, v in result[kind].items()}
            table["n"] = result["n"]
        out[key] = table
    return out


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}") if value == value else None  # NaN (undefined) -> JSON null
    return value
