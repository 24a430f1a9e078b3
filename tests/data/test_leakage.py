"""Leakage-free by construction: split units (every confirmed pair, however long the chain) stay whole in every
fold and carve-out, leakage is counted per confirmed pair, fold indices outside the scheme are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from hyperkvasir.cli import main
from hyperkvasir.data.audit import audit, leakage, near_clusters, near_pairs, pair_components
from hyperkvasir.data.layout import Release
from hyperkvasir.data.segmentation_splits import segmentation_split
from hyperkvasir.data.splits import assignment, carve_validation
from hyperkvasir.data.tables import read_split_csv
from hyperkvasir.data.taxonomy import lookup

_LOWER = Path("labeled-images/lower-gi-tract/pathological-findings")


def test_a_chain_of_one_bit_steps_is_one_split_unit_but_several_reported_groups() -> None:
    """31 captures, each 1 bit from the last: leader clusters cut the chain (no reported group chains), the split
    unit holds all 31, so no confirmed pair can fall between two folds."""
    rng = np.random.default_rng(1)
    frame = np.uint64(rng.integers(0, 2**63, dtype=np.uint64))
    chain = [frame]
    for bit in rng.permutation(64)[:30]:
        frame = frame ^ (np.uint64(1) << np.uint64(int(bit)))
        chain.append(frame)
    pairs = near_pairs(np.asarray(chain, np.uint64), 10)
    assert len(near_clusters(len(chain), pairs)) > 1
    assert pair_components(len(chain), pairs) == [list(range(31))]


def test_leakage_is_counted_per_confirmed_pair() -> None:
    pairs = [("a", "b"), ("b", "c"), ("d", "e")]
    found = leakage(pairs, {"a": 0, "b": 0, "c": 1, "d": 1, "e": 1})
    assert found == {"pairs": 1, "images": 2, "groups": 1, "fold_pairs": {"0-1": 1}}


def _pan(source: Path, folder: Path, steps: int, prefix: str, start: int = 0) -> list[str]:
    """``steps`` captures of a slow pan over a real frame: a window of 60 % of the width moving 1 % each step."""
    image = cv2.imread(str(source))
    height, width = image.shape[:2]
    window, names = int(width * 0.6), []
    folder.mkdir(parents=True, exist_ok=True)
    for step in range(start, start + steps):
        left = int(width * 0.01 * step)
        name = f"{prefix}{step:02d}.jpg"
        cv2.imwrite(str(folder / name), image[:, left : left + window], [cv2.IMWRITE_JPEG_QUALITY, 95])
        names.append(name)
    return names


@pytest.fixture
def panned_twin(twin_copy: Path, shared_data: Path) -> tuple[Path, list[str]]:
    """The tiny twin with 30 captures of a pan over one real polyp frame: 20 filed as polyps, the last 10 under
    ulcerative-colitis-grade-1 (a chain that crosses classes)."""
    source = sorted((shared_data / "real-sample" / "segmented-original" / "images").glob("*.jpg"))[0]
    names = _pan(source, twin_copy / _LOWER / "polyps", 20, "pan")
    names += _pan(source, twin_copy / _LOWER / "ulcerative-colitis-grade-1", 10, "pan", start=20)
    return twin_copy, names


def test_a_real_pan_stays_in_one_fold_of_grouped_2fold(panned_twin) -> None:
    root, names = panned_twin
    report = audit(root, workers=1)
    assert len([g for g in report.labeled_sets() if {"pan00.jpg"} & {Path(f).name for f in g.files}]) == 1
    pan_groups = [g for g in report.labeled_sets() if any(Path(f).name.startswith("pan") for f in g.files)]
    assert len(pan_groups) > 1, "the reported groups are leader clusters: the pan is cut for reading"
    for seed in (0, 1, 2):
        split = assignment(root, "grouped-2fold", seed=seed)
        assert len({split.files[n][1] for n in names}) == 1, f"seed {seed}: the pan straddles folds"
        assert len({split.files[n][2] for n in names}) == 1, f"seed {seed}: the carve-out cuts the pan"
        fold_of = {f"{p.relative_to(root)}": split.files[p.name][1] for p in Release(root).labeled_files()}
        assert leakage(report.labeled_pairs, fold_of)["pairs"] == 0


def test_a_real_pan_stays_in_one_part_of_the_segmentation_split(twin_copy: Path, shared_data: Path) -> None:
    source = sorted((shared_data / "real-sample" / "segmented-original" / "images").glob("*.jpg"))[0]
    mask = source.parents[1] / "masks" / source.name
    names = _pan(source, twin_copy / "segmented-images" / "images", 30, "pan")
    _pan(mask, twin_copy / "segmented-images" / "masks", 30, "pan")
    subsets = []
    for seed in range(4):
        split = segmentation_split(twin_copy, seed=seed)
        subsets.append({s for s in ("train", "val", "test") if set(names) & set(getattr(split, s))})
        assert len(subsets[-1]) == 1, f"seed {seed}: the pan is spread over {subsets[-1]}"


def _plant_copy_in_training_fold(root: Path) -> tuple[str, str]:
    """A byte copy of a fold-0 image filed under another class of the same fold, listed in the 2-fold CSV."""
    csv_path = Release(root).split_csv(2)
    rows = read_split_csv(csv_path)
    original = next(r for r in rows if r.fold == 0 and r.cls.folder == "polyps")
    other = lookup("cecum")
    source = next(p for p in Release(root).labeled_files() if p.name == original.file_name)
    target = next(p for p in (root / "labeled-images").rglob(other.folder) if p.is_dir()) / "copy-of-polyp.jpg"
    shutil.copyfile(source, target)
    with open(csv_path, "a", encoding="utf-8") as handle:
        handle.write(f"{target.name};{other.split_name};0\n")
    return original.file_name, target.name


def test_the_official_carve_out_keeps_a_copy_with_its_original_across_classes(twin_copy: Path) -> None:
    original, copy = _plant_copy_in_training_fold(twin_copy)
    for seed in range(12):
        split = assignment(twin_copy, "official-2fold", seed=seed)
        train = set(split.subsets(1)["train"])
        assert (original in train) == (copy in train), f"seed {seed}: the copy and its original are split"


def test_carve_validation_never_gives_a_cells_last_image_for_a_unit() -> None:
    polyp, cecum = lookup("polyps"), lookup("cecum")
    files = {"a": (polyp, 0), "b": (polyp, 0), "c": (cecum, 0)}
    for seed in range(10):
        chosen = carve_validation(files, 0.5, seed, {"a": 0, "c": 0})
        assert "c" not in chosen and "a" not in chosen  # the unit {a, c} would empty the cecum cell


def test_the_real_label_conflicts_stay_together(real_tree: Path) -> None:
    report = audit(real_tree, workers=1)
    assert report.label_conflicts, "the real sample holds one picture filed under two colitis grades"
    for seed in (0, 1):
        split = assignment(real_tree, "grouped-2fold", seed=seed)
        for conflict in report.label_conflicts:
            names = [Path(f).name for f in conflict["files"]]
            assert len({split.files[n][1:] for n in names}) == 1, f"seed {seed}: {names} are split"


def test_fold_indices_outside_the_scheme_are_refused(twin_copy: Path, tmp_path: Path, capsys) -> None:
    csv_path = Release(twin_copy).split_csv(2)
    lines = csv_path.read_text().splitlines()
    lines[1:4] = [line.rsplit(";", 1)[0] + ";2" for line in lines[1:4]]
    csv_path.write_text("\n".join(lines) + "\n")
    assert main(["validate", str(twin_copy), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert any(f["code"] == "split-fold-outside" and "line 2" in f["message"] for f in findings)
    assert main(["splits", str(twin_copy), "--out", str(tmp_path / "s.csv")]) == 1
    assert "split index 2" in capsys.readouterr().err and not (tmp_path / "s.csv").exists()
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "classify",
                str(twin_copy),
                "--no-pretrained",
                "--workers",
                "0",
                "--epochs",
                "1",
                "--input-size",
                "32",
                "--out",
                str(run),
            ]
        )
        == 1
    )
    assert "2_fold_split.csv:2" in capsys.readouterr().err and not run.exists()


def test_the_split_cli_names_what_it_keeps_together(panned_twin, capsys) -> None:
    root, _ = panned_twin
    assert main(["splits", str(root), "--scheme", "grouped-2fold"]) == 0
    assert "0 confirmed duplicate pairs across folds" in capsys.readouterr().out


def test_a_file_under_two_class_folders_stops_train(twin_copy: Path, tmp_path: Path, capsys) -> None:
    source = next((twin_copy / _LOWER / "polyps").glob("*.jpg"))
    copy = twin_copy / _LOWER / "ulcerative-colitis-grade-1" / source.name
    shutil.copyfile(source, copy)
    argv = [
        "train",
        "classify",
        str(twin_copy),
        "--no-pretrained",
        "--workers",
        "0",
        "--epochs",
        "1",
        "--input-size",
        "32",
    ]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert source.name in err and "polyps" in err and "ulcerative-colitis-grade-1" in err
    assert not (tmp_path / "run").exists()
    assert main([*argv, "--exclude-conflicts", "--out", str(tmp_path / "excluded")]) == 0
    metrics = json.loads((tmp_path / "excluded" / "metrics-test.json").read_text())
    counts = metrics["excluded_label_conflicts"]
    assert counts["train"] + counts["val"] + counts["test_conflicting"] == 1  # one name, wherever it fell


def test_copies_of_a_video_under_two_findings_stay_on_one_side(tmp_path: Path) -> None:
    import csv

    from hyperkvasir.synth.tree import make_synthetic_release
    from hyperkvasir.video.data import video_labels, video_split

    root = make_synthetic_release(tmp_path / "hk", seed=5, scale="tiny", parts=("videos",), videos=12).root
    table = root / "labeled-videos" / "video-labels.csv"
    rows = list(csv.reader(table.open(encoding="utf-8")))
    source = next((root / "labeled-videos").rglob(f"{rows[1][0]}.*"))
    other = next(r for r in rows[1:] if r[3] != rows[1][3])
    copy = source.with_name(f"copy-of-{source.name}")
    shutil.copyfile(source, copy)
    with table.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow([copy.stem, *other[1:]])
    labels = video_labels(root)
    pair = [str(p.relative_to(root)) for p in (source, copy)]
    assert labels[pair[0]] != labels[pair[1]], "the copy is filed under another finding"
    for seed in range(6):
        split = video_split(root, seed=seed)
        assert len({s for s, videos in split.items() for v in pair if v in videos}) == 1, f"seed {seed}"


def test_splits_obtains_the_audit_once(twin_copy: Path, caplog) -> None:
    """``splits`` needs the audit twice (split units, then the leakage of the folds it wrote): one report, passed
    on, so the tree is scanned for the audit's key once. Counted by the audit's own log record per call."""
    import logging

    with caplog.at_level(logging.DEBUG, logger="hyperkvasir.data.audit"):
        assert main(["splits", str(twin_copy), "--scheme", "grouped-2fold"]) == 0
        assert main(["splits", str(twin_copy), "--scheme", "official-2fold"]) == 0
    calls = [r.getMessage() for r in caplog.records if r.name == "hyperkvasir.data.audit"]
    assert len(calls) == 2 and "computed" in calls[0] and "read from" in calls[1], calls
