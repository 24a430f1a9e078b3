"""Numbers you can bet on: intervals in every result, seeds, the dev protocol that never opens a test image,
paired comparison, provenance, and no silent mixing of runs made with other options."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from hyperkvasir.classify.benchmark import run_benchmark
from hyperkvasir.classify.config import ClassifyConfig
from hyperkvasir.classify.train import train_classify
from hyperkvasir.cli import main
from hyperkvasir.data.splits import assignment
from hyperkvasir.errors import HyperKvasirError

FAST = dict(model="test_efficientnet", epochs=1, input_size=32, batch_size=8, workers=0, pretrained=False)
MODEL = "test_efficientnet"


@pytest.fixture(scope="module")
def two_seed_benchmark(tiny_twin, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("numbers") / "bench"
    run_benchmark(tiny_twin.root, [MODEL], out, base=ClassifyConfig(root=str(tiny_twin.root), **FAST), seeds=2)
    return out


def test_results_carry_intervals_seeds_and_provenance(two_seed_benchmark: Path) -> None:
    results = json.loads((two_seed_benchmark / "results.json").read_text())
    model = results["models"][MODEL]
    mean = model["mean"]
    for key in ("macro_f1", "micro_f1", "mcc", "accuracy"):
        low, high = mean[f"{key}_ci"]
        assert low <= mean[key] + 1e-9 and mean[key] - 1e-9 <= high
    assert len(model["per_seed"]) == 2 and set(model["std"]) >= {"macro_f1", "mcc"} and len(model["runs"]) == 4
    assert (two_seed_benchmark / MODEL / "seed-1" / "test-fold-0" / "predictions-test.csv").is_file()
    fold = json.loads((two_seed_benchmark / MODEL / "test-fold-0" / "metrics-test.json").read_text())
    assert fold["macro_f1_ci"][0] <= fold["macro_f1"] <= fold["macro_f1_ci"][1]
    assert {"weights", "world_size", "effective_batch", "version", "config_hash", "tree_key"} <= set(fold["provenance"])
    assert fold["provenance"]["weights"] == {"source": "random", "pretrained": False}
    assert results["provenance"]["tree_key"] == fold["provenance"]["tree_key"]
    table = (two_seed_benchmark / "results.md").read_text()
    assert "2 seed(s)" in table and "standard deviation over 2 seeds" in table and "random start" in table


def test_a_rerun_with_another_config_is_refused_naming_the_keys(
    two_seed_benchmark: Path, tiny_twin, tmp_path: Path, capsys
) -> None:
    copy = shutil.copytree(two_seed_benchmark, tmp_path / "bench")
    assert (
        main(
            [
                "benchmark",
                str(tiny_twin.root),
                "--models",
                MODEL,
                "--out",
                str(copy),
                "--epochs",
                "3",
                "--input-size",
                "64",
                "--workers",
                "0",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "epochs" in err and "input_size" in err and "--force" in err
    with pytest.raises(HyperKvasirError, match="lr"):
        run_benchmark(
            tiny_twin.root, [MODEL], copy, base=ClassifyConfig(root=str(tiny_twin.root), **FAST | {"lr": 0.1})
        )


def test_compare_finds_a_planted_difference_and_refuses_other_images(
    two_seed_benchmark: Path, tiny_twin, tmp_path: Path, capsys
) -> None:
    better = shutil.copytree(two_seed_benchmark, tmp_path / "better")
    truth = {name: cls.folder for name, (cls, _, _) in assignment(tiny_twin.root, "official-2fold").files.items()}
    for predictions in better.glob(f"{MODEL}/**/predictions-test.csv"):
        rows = list(csv.reader(predictions.open()))
        for row in rows[1:]:
            row[1] = truth[row[0]]  # B is right everywhere
        with predictions.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    assert main(["compare", str(two_seed_benchmark), str(better), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["macro_f1"]["delta"] > 0 and result["macro_f1"]["ci"][0] > 0 and result["macro_f1"]["p_better"] > 0.95
    assert result["paired"]["runs"] == 4
    assert main(["compare", str(two_seed_benchmark), str(two_seed_benchmark), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["mcc"]["delta"] == 0 and same["mcc"]["p_better"] == 0
    fewer = next(better.glob(f"{MODEL}/test-fold-0/predictions-test.csv"))
    fewer.write_text("".join(fewer.read_text().splitlines(keepends=True)[:-1]))
    assert main(["compare", str(two_seed_benchmark), str(better)]) == 1
    assert "different images" in capsys.readouterr().err


def test_the_dev_protocol_never_opens_a_test_image(tiny_twin, tmp_path: Path, monkeypatch) -> None:
    import hyperkvasir.data.imaging as imaging
    from hyperkvasir.data.audit import audit
    from hyperkvasir.data.index import build_index

    root = Path(shutil.copytree(tiny_twin.root, tmp_path / "hk", ignore=shutil.ignore_patterns(".hyperkvasir")))
    build_index(root), audit(root)  # the tree's own preparation; what follows is the protocol
    test_fold = {n for n, (_, fold, _) in assignment(root, "official-2fold").files.items() if fold == 0}
    log = tmp_path / "opened.txt"  # appended to by every process, the cache's pool workers included
    real = imaging.decode_rgb

    def counted(path, *args, **kwargs):
        with log.open("a") as handle:
            handle.write(Path(path).name + "\n")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(imaging, "decode_rgb", counted)
    metrics = train_classify(ClassifyConfig(root=str(root), out=str(tmp_path / "run"), **FAST | {"protocol": "dev"}))
    opened = set(log.read_text().split())
    assert metrics["protocol"] == "dev" and opened, "the run decoded its own images"
    assert not opened & test_fold, "a test image was opened"
    assert not list((tmp_path / "run").glob("*-test.*")), "no test predictions or metrics"
    scored = {line.split(",")[0] for line in (tmp_path / "run" / "predictions-dev.csv").read_text().splitlines()[1:]}
    assert scored and not scored & test_fold and metrics["n"] == len(scored)
    monkeypatch.undo()
    dev = ClassifyConfig(root=str(root), **FAST | {"protocol": "dev"})
    results = run_benchmark(root, [MODEL], tmp_path / "dev", base=dev)
    assert results["protocol"] == "dev" and not list((tmp_path / "dev").rglob("*-test.*"))
    assert "dev: scored on the validation carve-out" in (tmp_path / "dev" / "results.md").read_text()
    assert main(["compare", str(tmp_path / "dev"), str(tmp_path / "dev")]) == 0


def test_resume_with_other_options_and_a_second_training_into_a_held_folder_are_refused(
    tiny_twin, tmp_path: Path, capsys
) -> None:
    import subprocess
    import sys

    argv = [
        "train",
        "classify",
        str(tiny_twin.root),
        "--model",
        MODEL,
        "--epochs",
        "1",
        "--input-size",
        "32",
        "--workers",
        "0",
        "--no-pretrained",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0
    before = (tmp_path / "run" / "metrics-test.json").read_text()
    assert main([*argv, "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "lr 0.001 → 0.5" in err and "--resume" in err
    assert main([*argv[:3], "--out", str(tmp_path / "run"), "--resume"]) == 0, "the saved options need no repeating"
    assert json.loads(before)["n"] == json.loads((tmp_path / "run" / "metrics-test.json").read_text())["n"]
    holder = (
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, sys, time; h = open(sys.argv[1], 'w'); "
                "fcntl.flock(h, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                str(tmp_path / "held" / ".run.lock"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        if (tmp_path / "held").mkdir() is None
        else None
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*argv[:-1], str(tmp_path / "held")]) == 2
        assert "another training is running" in capsys.readouterr().err
        assert not (tmp_path / "held" / "config.json").exists()
    finally:
        holder.kill()


def test_an_average_of_independently_trained_models_is_its_own_row(
    two_seed_benchmark: Path, tiny_twin, tmp_path: Path
) -> None:
    from hyperkvasir.classify.benchmark import average_members

    results = json.loads((two_seed_benchmark / "results.json").read_text())
    member = results["models"][MODEL]
    out = Path(shutil.copytree(two_seed_benchmark, tmp_path / "bench"))
    base = ClassifyConfig(root=str(tiny_twin.root), **FAST)
    averaged = average_members(tiny_twin.root, out, "avg-x-x", [member, member], base)
    assert len(averaged["runs"]) == 4 and averaged["mean"]["macro_f1"] == pytest.approx(member["mean"]["macro_f1"])
    assert (out / "avg-x-x" / "seed-1" / "test-fold-1" / "predictions-test.csv").is_file()
    with pytest.raises(HyperKvasirError, match="--average"):
        run_benchmark(tiny_twin.root, [MODEL], tmp_path / "other", base=base, average=[(MODEL, "resnet152")])
