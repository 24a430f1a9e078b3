"""The paper's classification protocol end to end: train on one fold, test on the other, both directions,
metrics averaged over folds, side by side with Table 3 of Borgli et al. 2020 and the audit's leakage figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from hyperkvasir.classify.config import ClassifyConfig, check_classify_config, scored_part
from hyperkvasir.classify.evaluate import majority_baseline, read_probabilities, truth_from_release, write_predictions
from hyperkvasir.classify.results import results_markdown, summarise
from hyperkvasir.classify.shortcuts import shortcut_probes
from hyperkvasir.classify.train import train_classify
from hyperkvasir.data.audit import audit
from hyperkvasir.data.splits import assignment
from hyperkvasir.engine.runs import global_rank
from hyperkvasir.errors import HyperKvasirError, require_range
from hyperkvasir.metrics.classification import scored_metrics
from hyperkvasir.outputs import atomic_write, mark, remove_folder
from hyperkvasir.provenance import config_hash, differing_keys, git_revision, tree_key
from hyperkvasir.version import __version__


def run_benchmark(
    root: str | Path,
    models: list[str],
    out: str | Path,
    *,
    base: ClassifyConfig | None = None,
    seeds: int = 1,
    force: bool = False,
    average: list[tuple[str, ...]] = (),
    progress=None,
) -> dict:
    """Train and score every model on every fold of ``base.scheme``, once per seed (``base.seed``,
    ``base.seed + 1``, …); write results.json and results.md (rank 0) with 95 % intervals over the scored
    images. Under ``base.protocol == "dev"`` each fold scores its validation carve-out and no test image is
    opened. A rerun skips finished runs and continues an unfinished one from its last checkpoint, but only
    for the same config and tree (``benchmark.json``): anything else is refused unless ``force``, which starts
    over. The audit is obtained once (computed by one process under the work dir's lock, read by the others) and
    passed to every fold. Every process of a distributed run takes part in every fold and seed; only rank 0
    writes. Each tuple of
    ``average`` (models of ``models``) adds a row whose probabilities are the mean of those independently trained
    models' on every (seed, fold): the paper's "Averaged ResNet-152 + DenseNet-161"."""
    root, out = Path(root), Path(out)
    base = base or ClassifyConfig(root=str(root))
    check_classify_config(base)  # before the audit and before any fold's folder
    require_range("--seeds", seeds, 1, None)
    unknown = [m for members in average for m in members if m not in models]
    if unknown or any(len(members) < 2 for members in average):
        raise HyperKvasirError(
            f"--average {'+'.join(next(iter(average)))}: each average names two or more of the "
            f"benchmarked models ({', '.join(models)}), joined by '+'"
        )
    record = _claim(out, base, root, force)
    report = audit(root)
    results: dict = {
        "root": str(root),
        "scheme": base.scheme,
        "protocol": base.protocol,
        "seeds": seeds,
        "config": dataclasses.asdict(base),
        "leakage": report.leakage,
        "models": {},
        "provenance": record["provenance"],
    }
    secondary = False
    for name in models:
        runs, per_seed = [], []
        for position in range(seeds):
            seed = base.seed + position
            split = assignment(root, base.scheme, fraction=base.val_fraction, seed=seed, report=report)
            folds = []
            for fold in range(split.k):
                run = run_folder(out, name, position, seed, fold, base.protocol)
                finished = run / f"metrics-{scored_part(base)}.json"
                if finished.is_file():  # finished earlier with this config (benchmark.json): a rerun skips it
                    folds.append(json.loads(finished.read_text()))
                else:
                    config = dataclasses.replace(base, root=str(root), model=name, fold=fold, seed=seed, out=str(run))
                    folds.append(
                        train_classify(config, resume=(run / "last.ckpt").is_file(), progress=progress, report=report)
                    )
                runs.append({"seed": seed, "fold": fold, "run": str(run.relative_to(out))})
            per_seed.append(folds)
        secondary = secondary or not all(f for folds in per_seed for f in folds)  # another process of a DDP run
        if not secondary:
            results["models"][name] = summarise(root, out, runs, per_seed, base)
    if secondary:
        return {}
    for members in average:
        name = "avg-" + "-".join(members)
        results["models"][name] = average_members(root, out, name, [results["models"][m] for m in members], base)
    results["majority_class"] = majority_baseline(root, base.scheme, base.seed, report)
    if base.protocol == "test":  # the probe trains on every fold's corners: never under the dev protocol
        results["shortcuts"] = shortcut_probes(root, scheme=base.scheme, seed=base.seed)
    with atomic_write(out / "results.json", "w") as handle:
        json.dump(results, handle, indent=2)
    with atomic_write(out / "results.md", "w") as handle:
        handle.write(results_markdown(results))
    return results


def average_members(root: Path, out: Path, name: str, members: list[dict], base: ClassifyConfig) -> dict:
    """A model whose class probabilities are the mean of independently trained ``members`` on each (seed, fold):
    written as ``OUT/avg-A-B/…/predictions-*.csv`` and ``metrics-*.json``, summarised like a trained model."""
    truth = truth_from_release(root)
    scored = scored_part(base)
    runs, per_seed = [], []
    for seed in sorted({run["seed"] for run in members[0]["runs"]}):
        folds = []
        for run in (r for r in members[0]["runs"] if r["seed"] == seed):
            sources = [
                out / next(r["run"] for r in m["runs"] if (r["seed"], r["fold"]) == (seed, run["fold"]))
                for m in members
            ]
            tables = [read_probabilities(source / f"predictions-{scored}.csv") for source in sources]
            files = sorted(tables[0])
            mean = np.mean([[table[f] for f in files] for table in tables], axis=0)
            target = out / name / Path(run["run"]).relative_to(Path(run["run"]).parts[0])
            target.mkdir(parents=True, exist_ok=True)
            write_predictions(target / f"predictions-{scored}.csv", files, mean, mean.argmax(1))
            metrics = scored_metrics([truth[f] for f in files], mean.argmax(1), seed=seed) | {
                "protocol": base.protocol,
                "fold": run["fold"],
                "members": [str(s) for s in sources],
            }
            with atomic_write(target / f"metrics-{scored}.json", "w") as handle:
                json.dump(metrics, handle, indent=2)
            folds.append(metrics)
            runs.append({"seed": seed, "fold": run["fold"], "run": str(target.relative_to(out))})
        per_seed.append(folds)
    return summarise(root, out, runs, per_seed, base)


def run_folder(out: Path, model: str, position: int, seed: int, fold: int, protocol: str) -> Path:
    """``MODEL/test-fold-K`` for the first seed (``dev-fold-K`` under the dev protocol), ``MODEL/seed-S/…`` for
    the others."""
    leaf = f"{'dev' if protocol == 'dev' else 'test'}-fold-{fold}"
    return out / model / leaf if position == 0 else out / model / f"seed-{seed}" / leaf


BENCHMARK_RECORD = "benchmark.json"


def _claim(out: Path, base: ClassifyConfig, root: Path, force: bool) -> dict:
    """Write (or check) ``OUT/benchmark.json``: the config and tree every run in ``OUT`` was made with. A
    folder made with another config or tree is refused, naming what differs, unless ``force``, which removes
    the runs that the benchmark made there and starts over."""
    config = dataclasses.asdict(base)
    record = {
        "config": config,
        "provenance": {
            "version": __version__,
            "git_revision": git_revision(),
            "tree_key": tree_key(root),
            "config_hash": config_hash(config),
        },
    }
    path = out / BENCHMARK_RECORD
    if global_rank() != 0:  # rank 0 checks and writes; the others follow its runs
        return record
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
            differ = differing_keys(previous["config"], config)
            if previous["provenance"]["tree_key"] != record["provenance"]["tree_key"]:
                differ.append("the tree (its labeled images or folds changed)")
        except (OSError, ValueError, KeyError, TypeError):
            differ = [f"{BENCHMARK_RECORD} (unreadable)"]
        if differ and not force:
            raise HyperKvasirError(
                f"--out {out}: its runs were made with another {', '.join(differ)}; nothing "
                f"was reused — choose a new --out, or --force to start over in this folder"
            )
        if differ:
            for child in sorted(p for p in out.iterdir() if p.is_dir()):
                remove_folder(child, "benchmark", "--force", owner=out)
    elif out.is_dir() and any(out.iterdir()):
        raise HyperKvasirError(
            f"--out {out}: holds files but no {BENCHMARK_RECORD}, so what made them is unknown; "
            f"choose a new or empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    mark(out, "benchmark")
    with atomic_write(path, "w") as handle:
        json.dump(record, handle, indent=2)
    return record


__all__ = ["run_benchmark", "average_members", "run_folder"]
