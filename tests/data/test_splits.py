from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from hyperkvasir.cli import main
from hyperkvasir.data.audit import audit
from hyperkvasir.data.layout import Release
from hyperkvasir.data.segmentation_splits import (
    kvasir_seg_official_split,
    segmentation_scheme_split,
    segmentation_split,
)
from hyperkvasir.data.splits import assignment, official_assignment
from hyperkvasir.errors import HyperKvasirError


def test_official_split_of_the_real_csvs(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "official_splits").mkdir()  # a copy: a link leaving the tree is never read
    for name in ("2_fold_split.csv", "5_fold_split.csv"):
        shutil.copyfile(shared_data / "official" / name, tmp_path / "official_splits" / name)
    result = official_assignment(Release(tmp_path), 2, present_only=False, seed=1)
    for test_fold in (0, 1):
        subsets = result.subsets(test_fold)
        assert len(subsets["test"]) == (5_324, 5_338)[test_fold]
        folds = {result.files[n][1] for n in subsets["val"] + subsets["train"]}
        assert folds == {1 - test_fold}, "validation never touches the test fold"
        val_classes = Counter(result.files[n][0].folder for n in subsets["val"])
        assert len(val_classes) == 23 and 0.09 < len(subsets["val"]) / (10_662 - len(subsets["test"])) < 0.11
    again = official_assignment(Release(tmp_path), 2, present_only=False, seed=1)
    assert again == result


def test_grouped_split_keeps_duplicates_together(faulty_twin) -> None:
    result = assignment(faulty_twin.root, "grouped-2fold")
    report = audit(faulty_twin.root)
    assert report.label_conflicts, "the faulty twin plants a label conflict"
    for group in report.duplicate_sets():
        labeled = [group.files[i] for i in group.labeled_files()]
        assert len({result.files[Path(f).name][1] for f in labeled}) <= 1
    per_fold = Counter(fold for _, fold, _ in result.files.values())
    assert abs(per_fold[0] - per_fold[1]) <= 6


def test_segmentation_split_is_seeded_and_disjoint(tiny_twin) -> None:
    first, second = segmentation_split(tiny_twin.root, seed=3), segmentation_split(tiny_twin.root, seed=3)
    assert first == second
    names = first.train + first.val + first.test
    assert len(names) == len(set(names)) == len(tiny_twin.segmented)


def test_split_cli_writes_official_format(tiny_twin, tmp_path: Path) -> None:
    out = tmp_path / "split.csv"
    assert main(["splits", str(tiny_twin.root), "--scheme", "official-5fold", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "file-name;class-name;split-index;validation" and len(lines) == 73
    assert main(["splits", str(tiny_twin.root), "--scheme", "nope"]) == 2
    with pytest.raises(HyperKvasirError, match="fold 7 does not exist"):
        assignment(tiny_twin.root, "official-2fold").subsets(7)


def test_kvasir_seg_official_split_on_real_names(real_tree: Path, tmp_path: Path) -> None:
    split = kvasir_seg_official_split(real_tree)
    assert (len(split.train), len(split.val), len(split.test)) == (265, 0, 35)
    carved = segmentation_scheme_split(real_tree, "kvasir-seg-official", seed=0)
    assert set(carved.test) == set(split.test) and not set(carved.val) & set(split.test)
    assert set(carved.train) | set(carved.val) == set(split.train) and 20 <= len(carved.val) <= 34
    assert main(["splits", str(real_tree), "--scheme", "kvasir-seg-official", "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "file-name;subset" and len(lines) == 301
    assert {line.split(";")[1] for line in lines[1:]} == {"train", "test"}


def test_kvasir_seg_official_split_refuses_uuid_names(tiny_twin) -> None:
    with pytest.raises(HyperKvasirError, match="UUID names"):
        kvasir_seg_official_split(tiny_twin.root)


def test_exclude_conflicts_drops_both_members_from_training_and_validation_only(faulty_twin) -> None:
    from hyperkvasir.data.splits import drop_label_conflicts

    conflict = {
        Path(f).name
        for f in next(
            f["files"]
            for f in __import__("json").loads((faulty_twin.root / "FAULTS.json").read_text())["faults"]
            if f["kind"] == "label-conflict"
        )
    }
    split = assignment(faulty_twin.root, "official-2fold")
    for fold in (0, 1):
        subsets = split.subsets(fold)
        before = {k: list(v) for k, v in subsets.items()}
        dropped = drop_label_conflicts(faulty_twin.root, subsets)
        assert subsets["test"] == before["test"], "the test part keeps every image"
        assert dropped["test_conflicting"] == len(conflict & set(before["test"]))
        assert dropped["train"] + dropped["val"] == len(conflict - set(before["test"]))
        assert not conflict & {n for k in ("train", "val") for n in subsets[k]}
