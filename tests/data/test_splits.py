from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hyperkvasir.cli import main
from hyperkvasir.data.audit import audit
from hyperkvasir.data.layout import Release
from hyperkvasir.data.splits import assignment, official_assignment, segmentation_split
from hyperkvasir.errors import HyperKvasirError


def test_official_split_of_the_real_csvs(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "official_splits").symlink_to(shared_data / "official", target_is_directory=True)
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
    for group in report.exact_groups + report.near_groups:
        assert len({result.files[Path(f).name][1] for f in group.files}) == 1
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
