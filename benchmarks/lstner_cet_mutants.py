"""Targeted mutation check of the LST-NER and CET tests: each mutant is one mechanism bug (a
dropped term, a wrong sign, a swapped argument, an ignored setting), applied to a copy of the
source tree; the tests that should catch it are run on that copy. Caught = the test run fails.

This is the check behind "a wrong sign, a swapped argument, a dropped term must fail a test"
(issue #22). Unlike a generic mutation tool it names the bugs that matter for each paper's
mechanism and runs only the tests that pin them, so the whole list costs a few CPU-minutes.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/lstner_cet_mutants.py \
        --out benchmarks/results/lstner_cet_mutants.json
    # after changing a mutant or a test: rerun those mutants only, keep the other results
    ... benchmarks/lstner_cet_mutants.py --out ... --update --only "GW value" "label 0"
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from longlore.core.io import read_json, write_json

L, C = "src/longlore/lstner/", "src/longlore/cet/"
LM, LG, LT = (
    "tests/lstner/test_lstner_mechanism.py",
    "tests/lstner/test_lstner_gw.py",
    "tests/lstner/test_lstner_graph.py",
)
CM, CL, CN = "tests/cet/test_cet_mechanism.py", "tests/cet/test_cet_loss.py", "tests/cet/test_cet_neighbours_data.py"
CT = "tests/cet/test_cet_train.py"
# (name, file, original text, mutated text, pytest -k selection, test files)
MUTANTS: list[tuple[str, str, str, str, str, str]] = [
    # --- LST-NER: fusion and graphs
    (
        "lstner: GCN ignores the adjacency",
        L + "model.py",
        "torch.relu(adj_hat @ self.gcn(nodes))",
        "torch.relu(self.gcn(nodes))",
        "fusion_equals or gcn_uses",
        LM,
    ),
    (
        "lstner: fusion output dropped",
        L + "model.py",
        "return hidden + self.out(att @ nodes), nodes",
        "return hidden, nodes",
        "fusion_equals or fused_output",
        LM,
    ),
    (
        "lstner: padding mask removed",
        L + "model.py",
        "scores = scores.masked_fill(~mask[:, None, :].bool(), torch.finfo(scores.dtype).min)",
        "scores = scores",
        "padding or fusion_equals",
        LM,
    ),
    (
        "lstner: temperature ignored",
        L + "graph.py",
        "probs = torch.softmax(logits[keep] / temperature, dim=-1)",
        "probs = torch.softmax(logits[keep], dim=-1)",
        "temperature",
        f"{LM} {LT}",
    ),
    (
        "lstner: temperature multiplies (wrong way round)",
        L + "graph.py",
        "probs = torch.softmax(logits[keep] / temperature, dim=-1)",
        "probs = torch.softmax(logits[keep] * temperature, dim=-1)",
        "temperature",
        f"{LM} {LT}",
    ),
    (
        "lstner: source-graph edges ignored",
        L + "trainer.py",
        "model.source_cost.copy_(cosine_cost(source_node_features(e_s.float(), adj_s.float())))",
        "model.source_cost.copy_(cosine_cost(e_s.float()))",
        "source_cost",
        LM,
    ),
    (
        "lstner: target graph not from label distributions",
        L + "trainer.py",
        "adj_t = target_adjacency(dist_t.float(), cfg)",
        "adj_t = target_adjacency(torch.ones_like(dist_t.float()), cfg)",
        "target_graph_is_built",
        LM,
    ),
    # --- LST-NER: the loss
    (
        "lstner: auxiliary BCE removed",
        L + "trainer.py",
        "return total_loss(ce, bce, gw, cfg.l_aux, cfg.l_gw), parts",
        "return total_loss(ce, 0 * bce, gw, cfg.l_aux, cfg.l_gw), parts",
        "lstner_loss_is",
        LM,
    ),
    (
        "lstner: auxiliary BCE fed zeros",
        L + "trainer.py",
        'bce = aux_bce(type_logits, batch["types"].to(type_logits.dtype))',
        "bce = aux_bce(type_logits, torch.zeros_like(type_logits))",
        "lstner_loss_is",
        LM,
    ),
    (
        "lstner: BCE arguments swapped",
        L + "loss.py",
        "F.binary_cross_entropy_with_logits(type_logits, types)",
        "F.binary_cross_entropy_with_logits(types, type_logits)",
        "lstner_loss_is or bce",
        LM,
    ),
    (
        "lstner: GW term with the wrong sign",
        L + "loss.py",
        "return ce + l_aux * bce + l_gw * gw",
        "return ce + l_aux * bce - l_gw * gw",
        "lstner_loss_is",
        LM,
    ),
    (
        "lstner: GW weight ignored",
        L + "loss.py",
        "return ce + l_aux * bce + l_gw * gw",
        "return ce + l_aux * bce + gw",
        "lstner_loss_is",
        LM,
    ),
    (
        "lstner: GW on the head embeddings, not the fused nodes",
        L + "model.py",
        "features = nodes.mean(0) if nodes is not None else self.head.label_emb  # (L, D)",
        "features = self.head.label_emb",
        "gw_gradient or lstner_loss_is",
        LM,
    ),
    (
        "lstner: GW detached from the fusion",
        L + "model.py",
        "        return cosine_cost(features)\n",
        "        return cosine_cost(features.detach())\n",
        "gw_gradient",
        LM,
    ),
    (
        "lstner: constant cost part added back",
        L + "model.py",
        "        return cosine_cost(features)\n",
        "        return 0.5 * cosine_cost(features) + 0.5 * (1 - self.adj - torch.eye(len(self.adj), dtype=self.adj.dtype, device=self.adj.device))\n",
        "lstner_loss_is",
        LM,
    ),
    # --- LST-NER: the GW solver and the metric
    (
        "lstner: GW transport plan detached",
        L + "gw.py",
        "        T = log_sinkhorn(p, q, grad, eps, sinkhorn_iters)\n",
        "        T = log_sinkhorn(p, q, grad, eps, sinkhorn_iters).detach()\n",
        "gradients",
        LG,
    ),
    (
        # (the same sign flip in the solver's ``const`` is an equivalent mutant: a cost of the form
        # a_i + b_j never changes an entropic OT plan, and the value uses ``const_plan``)
        "lstner: GW value's constant term with the wrong sign",
        L + "gw.py",
        "const_plan = (C1**2 @ T.sum(1))[:, None] + (C2**2 @ T.sum(0))[None, :]",
        "const_plan = (C1**2 @ T.sum(1))[:, None] - (C2**2 @ T.sum(0))[None, :]",
        "pot or zero",
        LG,
    ),
    (
        "lstner: Sinkhorn cost with the wrong sign",
        L + "gw.py",
        "log_k = -cost / eps",
        "log_k = cost / eps",
        "pot or marginals",
        LG,
    ),
    (
        "lstner: F1 not strict",
        L + "pipeline.py",
        'report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)',
        "report = classification_report(gold, pred, output_dict=True, zero_division=0)",
        "span_f1",
        LM,
    ),
    # --- CET: the losses and regularisers
    (
        "cet: mixture loss with the wrong sign",
        C + "loss.py",
        "per_anchor = torch.where(n_nb > 0, -mixed, -anchor_logp)",
        "per_anchor = torch.where(n_nb > 0, mixed, -anchor_logp)",
        "mixture or configured_variant",
        f"{CL} {CM}",
    ),
    (
        "cet: W0 and 1 - W0 swapped",
        C + "loss.py",
        "mixed = torch.logaddexp(anchor_logp + log_w0, log_mean_nb + log_w1)",
        "mixed = torch.logaddexp(anchor_logp + log_w1, log_mean_nb + log_w0)",
        "mixture or w0",
        CL,
    ),
    (
        "cet: neighbours scored against label 0, not the anchor's label",
        C + "loss.py",
        "return _gold_logp(neighbour_logits, labels.view(B, 1).expand(B, K))",
        "return _gold_logp(neighbour_logits, torch.zeros(B, K, dtype=labels.dtype))",
        "mixture or joint or anchors_label",
        CL,
    ),
    (
        "cet: EWC penalty dropped",
        C + "trainer.py",
        "            loss = loss + penalty\n",
        "            loss = loss\n",
        "ewc_batch_loss",
        CM,
    ),
    (
        "cet: EWC penalty with the wrong sign",
        C + "loss.py",
        "return 0.5 * lam * total",
        "return -0.5 * lam * total",
        "ewc",
        f"{CL} {CM}",
    ),
    (
        "cet: R3F KL dropped",
        C + "trainer.py",
        "            return task + reg, logits",
        "            return task, logits",
        "r3f_batch_loss",
        CM,
    ),
    (
        "cet: R3F KL one-sided",
        C + "loss.py",
        "return (kl_pq + kl_qp).mean()",
        "return kl_pq.mean()",
        "symmetric_kl or r3f",
        f"{CL} {CM}",
    ),
    (
        "cet: joint loss when mixture is configured",
        C + "trainer.py",
        "loss = CET_LOSSES[cfg.variant](logits",
        'loss = CET_LOSSES["joint"](logits',
        "configured_variant",
        CM,
    ),
    (
        "cet: W0 ignored",
        C + "trainer.py",
        "nb_logits, nb_mask, cfg.w0)",
        "nb_logits, nb_mask, 0.9)",
        "configured_variant or w0_k_and_theta",
        f"{CM} {CT}",
    ),
    (
        "cet: neighbour scored with its own options",
        C + "trainer.py",
        "self.questions[index[i, k]].question, anchors[i].options, anchors[i].label)",
        "self.questions[index[i, k]].question, self.questions[index[i, k]].options, anchors[i].label)",
        "own_options or configured_variant",
        CM,
    ),
    (
        "cet: RecAdam annealing removed",
        C + "recadam.py",
        "p.addcdiv_(exp_avg, denom, value=-step_size * lam)",
        "p.addcdiv_(exp_avg, denom, value=-step_size)",
        "recadam",
        f"{CM} {CT}",
    ),
    (
        "cet: RecAdam pull with the wrong sign",
        C + "recadam.py",
        'alpha=-group["lr"] * (1.0 - lam) * group["gamma"]',
        'alpha=group["lr"] * (1.0 - lam) * group["gamma"]',
        "recadam",
        f"{CM} {CT}",
    ),
    (
        "cet: Mixout does not mix",
        C + "regularizers.py",
        "        return self.pretrained + keep * (weight - self.pretrained) / (1.0 - self.p)",
        "        return weight",
        "mixout",
        CM,
    ),
    (
        "cet: ChildTune-D mask not applied",
        C + "trainer.py",
        "            mask_gradients(dict(self.scorer.encoder.named_parameters()), self.child_masks)\n",
        "",
        "childtune",
        CM,
    ),
    # --- CET: neighbours and probes
    (
        "cet: neighbours from random embeddings",
        C + "neighbours.py",
        "table = find_neighbours(embed_texts(encoder, tokenizer, texts, max_len), k, theta)",
        "table = find_neighbours(np.random.default_rng(0).normal(size=(len(texts), 8)), k, theta)",
        "pretrained_encoders_space or neighbour_space",
        CM,
    ),
    (
        "cet: configured neighbour space ignored (always feature)",
        C + "trainer.py",
        "space=config.neighbour_space,",
        'space="feature",',
        "neighbour_space",
        CM,
    ),
    (
        "cet: answer space embeds question + answer (spaces mixed up)",
        C + "neighbours.py",
        "        return [q.gold for q in questions]\n",
        '        return [f"{q.question} {q.gold}" for q in questions]\n',
        "neighbour_space",
        f"{CM} {CN}",
    ),
    (
        "cet: theta ignored",
        C + "neighbours.py",
        "keep = top_sim >= theta",
        "keep = top_sim >= -2.0",
        "theta",
        f"{CN} {CT}",
    ),
    (
        "cet: answer share compares the anchor with itself",
        C + "neighbours.py",
        "questions[i].gold.strip().lower() == questions[table.index[i, k]].gold.strip().lower()",
        "questions[i].gold.strip().lower() == questions[i].gold.strip().lower()",
        "shared_answer",
        CM,
    ),
    (
        "cet: retention probe takes the argmin",
        C + "model.py",
        "correct += int(int(sims.argmax()) == q.label)",
        "correct += int(int(sims.argmin()) == q.label)",
        "zero_shot_probe",
        CM,
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout with src/ and tests/"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/lstner_cet_mutants.json"))
    ap.add_argument("--only", nargs="+", default=[""], help="run only mutants whose name contains one of these")
    ap.add_argument(
        "--update", action="store_true", help="rerun the selected mutants and keep the other results already in --out"
    )
    args = ap.parse_args()
    results: list[dict] = []
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(prefix="lstner_cet_mutants_") as tmp:
        work = Path(tmp)
        for name, file, old, new, selection, tests in MUTANTS:
            if not any(text in name for text in args.only):
                continue
            shutil.rmtree(work / "src", ignore_errors=True)
            shutil.rmtree(work / "tests", ignore_errors=True)
            shutil.copytree(args.repo / "src", work / "src")
            shutil.copytree(args.repo / "tests", work / "tests")
            shutil.copy(args.repo / "pyproject.toml", work / "pyproject.toml")
            target = work / file
            text = target.read_text()
            if text.count(old) != 1:  # the code moved on: the mutant must be re-stated, not skipped silently
                results.append({"mutant": name, "status": f"not applied ({text.count(old)} matches in {file})"})
                print(results[-1], flush=True)
                continue
            target.write_text(text.replace(old, new))
            env = {**os.environ, "PYTHONPATH": str(work / "src"), "OMP_NUM_THREADS": "1"}
            c0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime, time.time()
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                "-k",
                selection,
                *tests.split(),
            ]
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            results.append(
                {
                    "mutant": name,
                    # rc 1 = a test failed; 5 = nothing selected (a stale -k is a miss, not a catch)
                    "caught": proc.returncode == 1,
                    "rc": proc.returncode,
                    "tests": f"-k '{selection}' {tests}",
                    "summary": lines[-1] if lines else proc.stderr[-200:],
                    "cpu_seconds": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - c0, 1),
                    "wall_seconds": round(time.time() - t0, 1),
                }
            )
            print(results[-1], flush=True)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    cpu = round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1)
    commands, previous_cpu = [{"command": command, "cpu_seconds": cpu}], 0.0
    if args.update and args.out.is_file():  # results of mutants not rerun now stay, in MUTANTS order
        old = read_json(args.out)
        rerun = {r["mutant"] for r in results}
        by_name = {r["mutant"]: r for r in old["mutants"] if r["mutant"] not in rerun} | {
            r["mutant"]: r for r in results
        }
        results = [by_name[m[0]] for m in MUTANTS if m[0] in by_name]
        earlier = old.get("commands") or [{"command": old.get("command"), "cpu_seconds": old["cpu_seconds"]}]
        commands, previous_cpu = earlier + commands, old["cpu_seconds"]
    applied = [r for r in results if "caught" in r]
    summary = {
        "commands": commands,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "caught": sum(r["caught"] for r in applied),
        "applied": len(applied),
        "not_applied": len(results) - len(applied),
        "missed": [r["mutant"] for r in applied if not r["caught"]],
        "cpu_seconds": round(previous_cpu + cpu, 1),
        "mutants": results,
    }
    write_json(args.out, summary, overwrite=True)
    print(f"caught {summary['caught']} of {summary['applied']} applied mutants ({summary['not_applied']} not applied)")


if __name__ == "__main__":
    main()
