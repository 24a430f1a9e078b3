"""Bad input never crashes, never passes silently, never leaves litter: one line naming the file or option and
the fix, exit 1 for bad data, 2 for bad usage, nothing half-written.

The matrix runs every command with the bad inputs a careful new user tries (``MATRIX``: command, kind, argv,
exit code, the text the line must hold). Placeholders: ``{root}`` the tiny twin, ``{faulty}`` the twin with
planted faults, ``{bad}`` a folder of bad files, ``{ckpt}`` a trained classifier checkpoint, ``{out}`` a fresh
folder that must stay empty.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from hyperkvasir.cli import main

_TRAIN = ["--no-pretrained", "--workers", "0", "--epochs", "1"]
MATRIX: list[tuple[str, str, list[str], int, str]] = [
    # command, bad-input kind, argv, exit code, text the error line holds
    ("synth", "unknown scale", ["synth", "{out}/t", "--scale", "huge"], 2, "unknown scale 'huge'"),
    ("synth", "OUT not empty", ["synth", "{bad}"], 2, "not empty"),
    ("synth", "OUT is a file", ["synth", "{bad}/file.txt"], 2, "is a file"),
    ("synth", "OUT not writable", ["synth", "/proc/hk-twin"], 2, "not writable"),
    ("synth", "zero workers", ["synth", "{out}/t", "--workers", "0"], 2, "--workers"),
    ("synth", "negative seed", ["synth", "{out}/t", "--seed", "-1"], 2, "--seed"),
    ("download", "unknown part", ["download", "{out}/d", "--parts", "labeled,bogus"], 2, "bogus"),
    ("download", "no parts", ["download", "{out}/d", "--parts", ""], 2, "--parts"),
    ("download", "CA bundle missing", ["download", "{out}/d", "--ca-bundle", "{bad}/none.pem"], 2, "none.pem"),
    ("download", "ROOT is a file", ["download", "{bad}/file.txt", "--parts", "splits"], 2, "is a file"),
    ("download", "ROOT not writable", ["download", "/proc/hk-release", "--parts", "splits"], 2, "not writable"),
    (
        "download",
        "base URL is not a URL",
        ["download", "{out}/d", "--parts", "splits", "--base-url", "notaurl"],
        2,
        "--base-url",
    ),
    ("index", "ROOT missing", ["index", "{bad}/none"], 2, "none"),
    ("index", "ROOT is a file", ["index", "{bad}/file.txt"], 2, "file.txt"),
    ("index", "ROOT not a release", ["index", "{bad}/empty"], 2, "not a HyperKvasir release"),
    ("index", "--out is a folder", ["index", "{root}", "--out", "{bad}"], 2, "is a folder"),
    ("index", "--out below a file", ["index", "{root}", "--out", "{bad}/file.txt/m.parquet"], 2, "is a file"),
    ("index", "negative workers", ["index", "{root}", "--workers", "-2"], 2, "--workers"),
    ("index", "--out not Parquet", ["index", "{root}", "--out", "{out}/m.csv"], 2, ".parquet"),
    ("index", "--work-dir is a file", ["--work-dir", "{bad}/file.txt", "index", "{root}"], 2, "--work-dir"),
    ("index", "--work-dir not writable", ["--work-dir", "/proc/hk-work", "index", "{root}"], 2, "not writable"),
    ("validate", "ROOT missing", ["validate", "{bad}/none"], 2, "none"),
    ("validate", "ROOT is a file", ["validate", "{bad}/file.txt"], 2, "file.txt"),
    ("validate", "ROOT not a release", ["validate", "{bad}/empty"], 2, "not a HyperKvasir release"),
    ("validate", "negative workers", ["validate", "{root}", "--workers", "-1"], 2, "--workers"),
    ("audit", "ROOT missing", ["audit", "{bad}/none"], 2, "none"),
    ("audit", "ROOT is a file", ["audit", "{bad}/file.txt"], 2, "file.txt"),
    ("audit", "ROOT not a release", ["audit", "{bad}/empty"], 2, "not a HyperKvasir release"),
    ("audit", "negative workers", ["audit", "{root}", "--workers", "-1"], 2, "--workers"),
    ("splits", "unknown scheme", ["splits", "{root}", "--scheme", "bogus", "--out", "{out}/s.csv"], 2, "bogus"),
    (
        "splits",
        "validation above 1",
        ["splits", "{root}", "--validation", "1.5", "--out", "{out}/s.csv"],
        2,
        "--validation",
    ),
    (
        "splits",
        "negative validation",
        ["splits", "{root}", "--validation", "-0.1", "--out", "{out}/s.csv"],
        2,
        "--validation",
    ),
    ("splits", "--out is a folder", ["splits", "{root}", "--out", "{bad}"], 2, "is a folder"),
    ("splits", "--out not writable", ["splits", "{root}", "--out", "/proc/hk.csv"], 2, "not writable"),
    (
        "splits",
        "official IDs on UUID names",
        ["splits", "{root}", "--scheme", "kvasir-seg-official", "--out", "{out}/s.csv"],
        1,
        "UUID names",
    ),
    ("splits", "ROOT missing", ["splits", "{bad}/none", "--out", "{out}/s.csv"], 2, "none"),
    (
        "splits",
        "negative seed",
        ["splits", "{root}", "--scheme", "grouped-2fold", "--seed", "-3", "--out", "{out}/s.csv"],
        2,
        "--seed",
    ),
    (
        "report",
        "results without results.json",
        ["report", "{root}", "--out", "{out}/r.html", "--results", "{bad}/empty"],
        2,
        "no results.json",
    ),
    ("report", "results missing", ["report", "{root}", "--out", "{out}/r.html", "--results", "{bad}/none"], 2, "none"),
    ("report", "--out is a folder", ["report", "{root}", "--out", "{bad}"], 2, "is a folder"),
    ("report", "--out not writable", ["report", "{root}", "--out", "/proc/r.html"], 2, "not writable"),
    ("report", "ROOT missing", ["report", "{bad}/none", "--out", "{out}/r.html"], 2, "none"),
    ("export", "unknown format", ["export", "bogus", "{root}", "{out}/e"], 2, "bogus"),
    ("export", "OUT is a file", ["export", "coco", "{root}", "{bad}/file.txt"], 2, "is a file"),
    ("export", "unknown scheme", ["export", "imagefolder", "{root}", "{out}/e", "--scheme", "bogus"], 2, "bogus"),
    ("export", "OUT exists", ["export", "coco", "{root}", "{bad}"], 2, "--overwrite"),
    ("export", "ROOT missing", ["export", "coco", "{bad}/none", "{out}/e"], 2, "none"),
    ("export", "negative seed", ["export", "coco", "{root}", "{out}/e", "--seed", "-1"], 2, "--seed"),
    ("shortcuts", "unknown scheme", ["shortcuts", "{root}", "--scheme", "bogus"], 2, "bogus"),
    ("shortcuts", "ROOT missing", ["shortcuts", "{bad}/none"], 2, "none"),
    ("shortcuts", "negative workers", ["shortcuts", "{root}", "--workers", "-1"], 2, "--workers"),
    ("predict", "threshold above 1", ["predict", "{ckpt}", "{root}", "--threshold", "1.7"], 2, "--threshold"),
    (
        "predict",
        "unknown part",
        ["predict", "{ckpt}", "{root}", "--part", "bogus", "--out", "{out}/p.parquet"],
        2,
        "bogus",
    ),
    (
        "predict",
        "CSV as checkpoint",
        ["predict", "{bad}/binary.csv", "{root}", "--out", "{out}/p.parquet"],
        2,
        "binary.csv",
    ),
    (
        "predict",
        "random bytes as checkpoint",
        ["predict", "{bad}/random.pt", "{root}", "--out", "{out}/p.parquet"],
        2,
        "random.pt",
    ),
    (
        "predict",
        "pickled callable",
        ["predict", "{bad}/evil.ckpt", "{root}", "--out", "{out}/p.parquet"],
        2,
        "evil.ckpt",
    ),
    (
        "predict",
        "checkpoint missing",
        ["predict", "{bad}/none.ckpt", "{root}", "--out", "{out}/p.parquet"],
        2,
        "none.ckpt",
    ),
    ("predict", "inputs missing", ["predict", "{ckpt}", "{bad}/none", "--out", "{out}/p.parquet"], 2, "none"),
    (
        "predict",
        "no images in inputs",
        ["predict", "{ckpt}", "{bad}/empty", "--out", "{out}/p.parquet"],
        2,
        "no images",
    ),
    (
        "predict",
        "zero batch size",
        ["predict", "{ckpt}", "{root}", "--batch-size", "0", "--out", "{out}/p.parquet"],
        2,
        "--batch-size",
    ),
    (
        "predict",
        "zero every",
        ["predict", "{ckpt}", "{root}", "--every", "0", "--out", "{out}/p.parquet"],
        2,
        "--every",
    ),
    (
        "predict",
        "negative max per class",
        ["predict", "{ckpt}", "{root}", "--max-per-class", "-1", "--out", "{out}/p.parquet"],
        2,
        "--max-per-class",
    ),
    (
        "predict",
        "unknown device",
        ["predict", "{ckpt}", "{root}", "--device", "tpu9", "--out", "{out}/p.parquet"],
        2,
        "tpu9",
    ),
    ("predict", "--out is a folder", ["predict", "{ckpt}", "{root}", "--out", "{bad}"], 2, "is a folder"),
    ("predict", "--out not writable", ["predict", "{ckpt}", "{root}", "--out", "/proc/p.parquet"], 2, "not writable"),
    (
        "predict",
        "release root without --part",
        ["predict", "{ckpt}", "{root}", "--out", "{out}/p.parquet"],
        2,
        "--part",
    ),
    ("export-model", "checkpoint missing", ["export-model", "{bad}/none.ckpt", "--out", "{out}/m"], 2, "none.ckpt"),
    ("export-model", "CSV as checkpoint", ["export-model", "{bad}/binary.csv", "--out", "{out}/m"], 2, "binary.csv"),
    ("export-model", "unknown format", ["export-model", "{ckpt}", "--format", "bogus", "--out", "{out}/m"], 2, "bogus"),
    ("export-model", "--out is a file", ["export-model", "{ckpt}", "--out", "{bad}/file.txt"], 2, "is a file"),
    ("benchmark", "unknown task", ["benchmark", "{root}", "--task", "bogus", "--out", "{out}/b"], 2, "bogus"),
    (
        "benchmark",
        "unknown model",
        ["benchmark", "{root}", "--models", "no-such-net", "--out", "{out}/b"],
        2,
        "no-such-net",
    ),
    ("benchmark", "zero epochs", ["benchmark", "{root}", "--epochs", "0", "--out", "{out}/b"], 2, "--epochs"),
    ("benchmark", "negative lr", ["benchmark", "{root}", "--lr", "-1", "--out", "{out}/b"], 2, "--lr"),
    ("benchmark", "unknown optimizer", ["benchmark", "{root}", "--optimizer", "bogus", "--out", "{out}/b"], 2, "bogus"),
    (
        "benchmark",
        "unknown recipe",
        ["benchmark", "{root}", "--config", "no-such-recipe", "--out", "{out}/b"],
        2,
        "no-such-recipe",
    ),
    (
        "benchmark",
        "non-YAML recipe",
        ["benchmark", "{root}", "--config", "{bad}/binary.csv", "--out", "{out}/b"],
        2,
        "binary.csv",
    ),
    (
        "benchmark",
        "recipe with unknown keys",
        ["benchmark", "{root}", "--config", "{bad}/unknown.yaml", "--out", "{out}/b"],
        2,
        "not_a_key",
    ),
    ("benchmark", "--out is a file", ["benchmark", "{root}", "--out", "{bad}/file.txt"], 2, "is a file"),
    (
        "benchmark",
        "flag of another task",
        ["benchmark", "{root}", "--task", "video", "--scheme", "grouped-2fold", "--out", "{out}/b"],
        2,
        "--scheme",
    ),
    ("benchmark", "no model named", ["benchmark", "{root}", "--models", ",,,", "--out", "{out}/b"], 2, "--models"),
    ("demo", "--out is a file", ["demo", "--out", "{bad}/file.txt"], 2, "is a file"),
    ("demo", "--out not writable", ["demo", "--out", "/proc/hk-demo"], 2, "not writable"),
    ("demo", "negative seed", ["demo", "--seed", "-1", "--out", "{out}/d"], 2, "--seed"),
    ("video frames", "OUT is a file", ["video", "frames", "{root}", "{bad}/file.txt"], 2, "is a file"),
    ("video frames", "OUT not writable", ["video", "frames", "{root}", "/proc/hk-frames"], 2, "not writable"),
    ("video frames", "zero every", ["video", "frames", "{root}", "{out}/f", "--every", "0"], 2, "--every"),
    ("video frames", "negative fps", ["video", "frames", "{root}", "{out}/f", "--fps", "-5"], 2, "--fps"),
    ("video frames", "zero size", ["video", "frames", "{root}", "{out}/f", "--size", "0"], 2, "--size"),
    ("video frames", "no videos", ["video", "frames", "{bad}/splits-only", "{out}/f"], 2, "--parts videos"),
    (
        "train classify",
        "negative input size",
        ["train", "classify", "{root}", "--input-size", "-64", "--out", "{out}/r", *_TRAIN],
        2,
        "--input-size",
    ),
    (
        "train classify",
        "zero epochs",
        ["train", "classify", "{root}", "--epochs", "0", "--out", "{out}/r"],
        2,
        "--epochs must be at least 1",
    ),
    (
        "train classify",
        "negative batch size",
        ["train", "classify", "{root}", "--batch-size", "-1", "--out", "{out}/r"],
        2,
        "--batch-size",
    ),
    (
        "train classify",
        "fold out of range",
        ["train", "classify", "{root}", "--fold", "7", "--input-size", "32", "--out", "{out}/r", *_TRAIN],
        2,
        "fold 7",
    ),
    (
        "train classify",
        "unknown model",
        ["train", "classify", "{root}", "--model", "no-such-net", "--out", "{out}/r"],
        2,
        "no-such-net",
    ),
    (
        "train classify",
        "unknown scheme",
        ["train", "classify", "{root}", "--scheme", "bogus", "--out", "{out}/r"],
        2,
        "bogus",
    ),
    ("train classify", "negative lr", ["train", "classify", "{root}", "--lr", "-0.1", "--out", "{out}/r"], 2, "--lr"),
    (
        "train classify",
        "unknown loss",
        ["train", "classify", "{root}", "--loss", "bogus", "--out", "{out}/r"],
        2,
        "bogus",
    ),
    (
        "train classify",
        "non-YAML recipe",
        ["train", "classify", "{root}", "--config", "{bad}/notyaml.yaml", "--out", "{out}/r"],
        2,
        "notyaml.yaml",
    ),
    (
        "train classify",
        "YAML list recipe",
        ["train", "classify", "{root}", "--config", "{bad}/list.yaml", "--out", "{out}/r"],
        2,
        "list.yaml",
    ),
    (
        "train classify",
        "weights missing",
        ["train", "classify", "{root}", "--weights", "{bad}/none.pt", "--out", "{out}/r"],
        2,
        "none.pt",
    ),
    (
        "train classify",
        "weights are random bytes",
        [
            "train",
            "classify",
            "{root}",
            "--weights",
            "{bad}/random.pt",
            "--model",
            "test_efficientnet",
            "--input-size",
            "32",
            "--out",
            "{out}/r",
            "--workers",
            "0",
        ],
        2,
        "random.pt",
    ),
    (
        "train classify",
        "weights with --no-pretrained",
        ["train", "classify", "{root}", "--weights", "{bad}/random.pt", "--out", "{out}/r", *_TRAIN],
        2,
        "--no-pretrained",
    ),
    (
        "train classify",
        "pseudo-labels without provenance",
        [
            "train",
            "classify",
            "{root}",
            "--pseudo-labels",
            "{bad}/binary.csv",
            "--input-size",
            "32",
            "--out",
            "{out}/r",
            *_TRAIN,
        ],
        2,
        "binary.teacher.json",
    ),
    ("train classify", "--out is a file", ["train", "classify", "{root}", "--out", "{bad}/file.txt"], 2, "is a file"),
    ("train classify", "ROOT missing", ["train", "classify", "{bad}/none", "--out", "{out}/r"], 2, "none"),
    (
        "train classify",
        "unknown device",
        ["train", "classify", "{root}", "--device", "tpu9", "--out", "{out}/r"],
        2,
        "tpu9",
    ),
    (
        "train classify",
        "resume without a run",
        ["train", "classify", "{root}", "--resume", "--out", "{out}/r", *_TRAIN],
        2,
        "--resume",
    ),
    (
        "train classify",
        "negative seed",
        ["train", "classify", "{root}", "--seed", "-1", "--out", "{out}/r"],
        2,
        "--seed",
    ),
    (
        "train classify",
        "unknown recipe",
        ["train", "classify", "{root}", "--recipe", "bogus", "--out", "{out}/r"],
        2,
        "bogus",
    ),
    (
        "train classify",
        "unknown optimizer",
        ["train", "classify", "{root}", "--optimizer", "bogus", "--out", "{out}/r"],
        2,
        "bogus",
    ),
    (
        "train classify",
        "unknown schedule",
        ["train", "classify", "{root}", "--schedule", "bogus", "--out", "{out}/r"],
        2,
        "bogus",
    ),
    ("train segment", "negative size", ["train", "segment", "{root}", "--size", "-8", "--out", "{out}/r"], 2, "--size"),
    (
        "train segment",
        "unknown loss",
        ["train", "segment", "{root}", "--loss", "bogus", "--out", "{out}/r"],
        2,
        "bogus",
    ),
    (
        "train segment",
        "unknown encoder",
        ["train", "segment", "{root}", "--model", "no-such-net", "--out", "{out}/r"],
        2,
        "no-such-net",
    ),
    (
        "train segment",
        "mask size mismatch",
        ["train", "segment", "{faulty}", "--size", "32", "--model", "test_efficientnet", "--out", "{out}/r", *_TRAIN],
        1,
        "mask",
    ),
    (
        "train segment",
        "no segmented part",
        ["train", "segment", "{bad}/splits-only", "--out", "{out}/r"],
        2,
        "--parts segmented",
    ),
    (
        "train video",
        "frames folder missing",
        ["train", "video", "{root}", "--frames", "{bad}/none", "--out", "{out}/r"],
        2,
        "none",
    ),
    ("train video", "zero every", ["train", "video", "{root}", "--every", "0", "--out", "{out}/r"], 2, "--every"),
    ("train video", "zero size", ["train", "video", "{root}", "--size", "0", "--out", "{out}/r"], 2, "--size"),
    (
        "train video",
        "no videos",
        ["train", "video", "{bad}/splits-only", "--out", "{out}/r", *_TRAIN],
        2,
        "no decodable video",
    ),
    (
        "evaluate classify",
        "binary predictions",
        [
            "evaluate",
            "classify",
            "--predictions",
            "{bad}/binary.csv",
            "--truth",
            "{root}/official_splits/2_fold_split.csv",
        ],
        1,
        "binary.csv",
    ),
    (
        "evaluate classify",
        "binary truth",
        [
            "evaluate",
            "classify",
            "--predictions",
            "{root}/official_splits/2_fold_split.csv",
            "--truth",
            "{bad}/binary.csv",
        ],
        1,
        "binary.csv",
    ),
    (
        "evaluate classify",
        "predictions missing",
        [
            "evaluate",
            "classify",
            "--predictions",
            "{bad}/none.csv",
            "--truth",
            "{root}/official_splits/2_fold_split.csv",
        ],
        2,
        "none.csv",
    ),
    (
        "evaluate classify",
        "unknown file",
        [
            "evaluate",
            "classify",
            "--predictions",
            "{bad}/unknown-file.csv",
            "--truth",
            "{root}/official_splits/2_fold_split.csv",
        ],
        1,
        "nobody.jpg",
    ),
    (
        "evaluate classify",
        "unknown class",
        [
            "evaluate",
            "classify",
            "--predictions",
            "{bad}/unknown-class.csv",
            "--truth",
            "{root}/official_splits/2_fold_split.csv",
        ],
        1,
        "no-such-class",
    ),
    ("evaluate classify", "nothing to evaluate", ["evaluate", "classify"], 2, "--predictions"),
    (
        "evaluate classify",
        "--plot is a folder",
        ["evaluate", "classify", "--predictions", "{bad}/unknown-file.csv", "--root", "{root}", "--plot", "{bad}"],
        2,
        "--plot",
    ),
    (
        "evaluate classify",
        "--out without a checkpoint",
        [
            "evaluate",
            "classify",
            "--predictions",
            "{root}/official_splits/2_fold_split.csv",
            "--root",
            "{root}",
            "--out",
            "{out}/x",
        ],
        2,
        "--out",
    ),
    (
        "evaluate classify",
        "junk checkpoint on a folder",
        ["evaluate", "classify", "--checkpoint", "{bad}/random.pt", "--imagefolder", "{bad}", "--out", "{out}/x"],
        2,
        "random.pt",
    ),
    (
        "evaluate classify",
        "class folder of no class",
        ["evaluate", "classify", "--checkpoint", "{ckpt}", "--imagefolder", "{bad}", "--out", "{out}/x"],
        2,
        "empty",
    ),
    (
        "evaluate segment",
        "prediction is a file",
        ["evaluate", "segment", "--pred", "{bad}/file.txt", "--truth", "{root}/segmented-images/masks"],
        2,
        "is a file",
    ),
    (
        "evaluate segment",
        "prediction folder missing",
        ["evaluate", "segment", "--pred", "{bad}/none", "--truth", "{root}/segmented-images/masks"],
        2,
        "none",
    ),
    (
        "evaluate segment",
        "no masks in truth",
        ["evaluate", "segment", "--pred", "{root}/segmented-images/masks", "--truth", "{bad}/empty"],
        2,
        "no truth images",
    ),
    (
        "evaluate segment",
        "binary boxes",
        [
            "evaluate",
            "segment",
            "--pred",
            "{root}/segmented-images/masks",
            "--truth",
            "{root}/segmented-images/masks",
            "--boxes",
            "{bad}/binary.csv",
        ],
        1,
        "binary.csv",
    ),
    (
        "evaluate segment",
        "unknown subset",
        [
            "evaluate",
            "segment",
            "--pred",
            "{root}/segmented-images/masks",
            "--truth",
            "{root}/segmented-images/masks",
            "--subset",
            "bogus",
        ],
        2,
        "bogus",
    ),
    (
        "evaluate segment",
        "checkpoint missing",
        [
            "evaluate",
            "segment",
            "--checkpoint",
            "{bad}/none.ckpt",
            "--images",
            "{root}/segmented-images/images",
            "--masks",
            "{root}/segmented-images/masks",
        ],
        2,
        "none.ckpt",
    ),
    (
        "evaluate segment",
        "--out without a checkpoint",
        [
            "evaluate",
            "segment",
            "--pred",
            "{root}/segmented-images/masks",
            "--truth",
            "{root}/segmented-images/masks",
            "--out",
            "{out}/x",
        ],
        2,
        "--out",
    ),
]


class _Payload:
    """Pickles as a call to ``os.system``: loading it with weights_only=False would run a command."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture(scope="module")
def bad_files(tiny_twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bad = tmp_path_factory.mktemp("bad")
    (bad / "empty").mkdir()
    shutil.copytree(tiny_twin.root / "official_splits", bad / "splits-only" / "official_splits")
    (bad / "file.txt").write_text("a file, not a folder\n")
    (bad / "binary.csv").write_bytes(os.urandom(300))
    (bad / "random.pt").write_bytes(os.urandom(300))
    (bad / "notyaml.yaml").write_text("epochs: [1, 2\n")
    (bad / "list.yaml").write_text("- epochs\n- lr\n")
    (bad / "unknown.yaml").write_text("not_a_key: 1\n")
    (bad / "unknown-file.csv").write_text("file-name,label\nnobody.jpg,polyps\n")
    first = next(tiny_twin.root.glob("labeled-images/**/*.jpg")).name
    (bad / "unknown-class.csv").write_text(f"file-name,label\n{first},no-such-class\n")
    torch.save(
        {"hyper_parameters": {"task": "classify", "config": {}}, "state_dict": {}, "x": _Payload()}, bad / "evil.ckpt"
    )
    return bad


@pytest.fixture(scope="module")
def checkpoint(classify_checkpoint: Path) -> Path:
    return classify_checkpoint


def _listing(folder: Path) -> list[str]:
    """Files and folders under ``folder``, leaving out a tree's work dir (its manifest is a cache, not litter)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".hyperkvasir" not in p.parts)


@pytest.mark.parametrize(("command", "kind", "argv", "code", "text"), MATRIX, ids=[f"{c}: {k}" for c, k, *_ in MATRIX])
def test_bad_input(
    command: str,
    kind: str,
    argv: list[str],
    code: int,
    text: str,
    tiny_twin,
    faulty_twin,
    bad_files: Path,
    tmp_path: Path,
    capsys,
    monkeypatch,
    request,
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    places = {"root": str(tiny_twin.root), "faulty": str(faulty_twin.root), "bad": str(bad_files), "out": str(out)}
    if any("{ckpt}" in a for a in argv):
        places["ckpt"] = str(request.getfixturevalue("checkpoint"))
    before = _listing(bad_files)
    result = main([a.format(**places) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert result == code, f"exit {result}, expected {code}: {err[-400:]}"
    assert text in err, err[-400:]
    assert "Traceback" not in err and len(lines) <= 4, err
    assert not _listing(out), f"litter: {_listing(out)}"
    assert _listing(bad_files) == before and not (tmp_path / "PWNED").exists()
    assert not list(tiny_twin.root.rglob("*.tmp")), "no temp file left in the tree or its work dir"


def test_undecodable_inputs_to_predict(tiny_twin, tmp_path: Path, capsys) -> None:
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify

    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "t"),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            workers=0,
            pretrained=False,
        )
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "zero.jpg").write_bytes(b"")
    (tmp_path / "in" / "garbage.jpg").write_bytes(b"\xff\xd8\xffnot a jpeg")
    out = tmp_path / "p.parquet"
    assert (
        main(["predict", str(tmp_path / "t" / "best.ckpt"), str(tmp_path / "in"), "--out", str(out), "--workers", "0"])
        == 1
    )
    assert "none of the 2 inputs decodes" in capsys.readouterr().err and not out.exists()
    good = next(tiny_twin.root.glob("labeled-images/**/*.jpg"))
    (tmp_path / "in" / "good.jpg").write_bytes(good.read_bytes())
    assert (
        main(["predict", str(tmp_path / "t" / "best.ckpt"), str(tmp_path / "in"), "--out", str(out), "--workers", "0"])
        == 0
    )
    err = capsys.readouterr().err
    assert "2 inputs do not decode and were skipped" in err and "zero.jpg" in err and "garbage.jpg" in err
    for number in range(11):  # past ten, stderr counts the rest; the JSON names every one
        (tmp_path / "in" / f"bad{number:02d}.jpg").write_bytes(b"")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "t" / "best.ckpt"),
                str(tmp_path / "in"),
                "--out",
                str(out),
                "--workers",
                "0",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "13 inputs do not decode" in captured.err and "and 3 more" in captured.err
    summary = json.loads(captured.out)
    assert summary["images"] == 1 and len(summary["undecodable"]) == 13
    assert main(["predict", str(tmp_path / "t" / "best.ckpt"), str(tmp_path / "in"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_broken_links_in_the_tree_are_findings_not_crashes(twin_copy: Path, capsys) -> None:
    cecum = next(twin_copy.glob("labeled-images/**/cecum"))
    (cecum / "dangling.jpg").symlink_to("/nonexistent/file.jpg")
    (cecum / "loop.jpg").symlink_to(cecum / "loop.jpg")
    assert main(["index", str(twin_copy)]) == 0
    capsys.readouterr()
    assert main(["validate", str(twin_copy)]) == 1
    out = capsys.readouterr().out
    assert "broken-link" in out and "dangling.jpg" in out and "loop.jpg" in out and "Traceback" not in out


def test_outputs_honour_the_umask(twin_copy: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert main(["index", str(twin_copy)]) == 0
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((twin_copy / ".hyperkvasir" / "manifest.parquet").stat().st_mode)
    assert mode == 0o644, oct(mode)


@pytest.mark.parametrize("flag", ["--debug", None])
def test_unexpected_errors_are_one_line_unless_debug(tmp_path: Path, capsys, monkeypatch, flag) -> None:
    import hyperkvasir.data.index as index_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(index_module, "build_index", explode)
    (tmp_path / "labeled-images").mkdir()
    if flag:
        with pytest.raises(RuntimeError, match="disk on fire"):
            main(["index", str(tmp_path), flag])
        return
    assert main(["index", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: disk on fire" in err and "--debug" in err and "Traceback" not in err


def test_truncated_and_garbage_videos_are_named_and_never_marked_done(twin_copy: Path, tmp_path: Path, capsys) -> None:
    video = sorted(twin_copy.glob("labeled-videos/**/*.avi"))[0]
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    (twin_copy / "labeled-videos" / "garbage.avi").write_bytes(os.urandom(4000))
    out = tmp_path / "frames"
    for _ in range(2):  # a rerun retries the truncated video instead of trusting a marker
        assert main(["video", "frames", str(twin_copy), str(out), "--every", "5"]) == 1
        text = capsys.readouterr().out
        assert "truncated:" in text and video.name in text and "garbage.avi" in text
        assert not (out / video.stem / ".done.json").exists()
        assert not (out / "garbage").exists(), "no empty folder is left for an unreadable video"


def test_segmentation_inputs(tiny_twin, tmp_path: Path, capsys) -> None:
    import json as json_module

    masks = tiny_twin.root / "segmented-images" / "masks"
    boxes = json_module.loads((tiny_twin.root / "segmented-images" / "bounding-boxes.json").read_text())
    stem = sorted(boxes)[0]
    boxes[stem]["bbox"][0]["xmin"] = -5
    (tmp_path / "boxes.json").write_text(json_module.dumps(boxes))
    assert (
        main(
            [
                "evaluate",
                "segment",
                "--pred",
                str(masks),
                "--truth",
                str(masks),
                "--boxes",
                str(tmp_path / "boxes.json"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "boxes.json" in err and stem in err and "leaves its" in err
    some_file = next(masks.iterdir())
    assert main(["evaluate", "segment", "--pred", str(some_file), "--truth", str(masks)]) == 2
    assert "is a file; pass the folder" in capsys.readouterr().err


def test_a_zero_byte_jpeg_is_named_as_empty(twin_copy: Path, capsys) -> None:
    empty = sorted(twin_copy.glob("labeled-images/**/*.jpg"))[0]
    empty.write_bytes(b"")
    assert main(["validate", str(twin_copy)]) == 1
    out = capsys.readouterr().out
    assert "empty file (0 bytes)" in out and empty.name in out and "BytesIO" not in out
    assert main(["audit", str(twin_copy), "--json"]) == 1, "an audit that left an image out never exits 0"
    report = json.loads(capsys.readouterr().out)
    labeled = sum(1 for _ in twin_copy.glob("labeled-images/**/*.jpg"))
    assert report["unreadable"] == [str(empty.relative_to(twin_copy))] and report["images"]["labeled"] == labeled - 1
    assert "1 image does not decode" in report["summary"]
