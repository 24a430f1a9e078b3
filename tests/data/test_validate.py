from __future__ import annotations

import json
import shutil
from pathlib import Path

from hyperkvasir.cli import main
from hyperkvasir.data.validate import validate

# FAULTS.json kind -> the finding code validate reports for it
FAULT_CODES = {
    "exact-duplicate": "exact-duplicate",
    "near-duplicate": "near-duplicate",
    "truncated-image": "undecodable-image",
    "missing-image-label": "labeled-file-without-row",
    "mask-size-mismatch": "mask-size-mismatch",
    "box-out-of-bounds": "box-out-of-bounds",
    "label-conflict": "label-conflict",
}
_GROUP_FAULTS = {"exact-duplicate", "near-duplicate", "label-conflict"}


def _problems(report) -> list:
    return [f for f in report.findings if f.severity != "info"]


def test_clean_twin_validates(tiny_twin) -> None:
    report = validate(tiny_twin.root, workers=1)
    assert _problems(report) == [] and report.exit_code == 0
    assert [f.code for f in report.findings] == ["partial-copy"]


def test_faulty_twin_reports_every_fault_and_nothing_else(faulty_twin) -> None:
    report = validate(faulty_twin.root, workers=1)
    planted = json.loads((faulty_twin.root / "FAULTS.json").read_text())["faults"]
    expected = sorted(
        (FAULT_CODES[f["kind"]], sorted(f["files"])[0] if f["kind"] in _GROUP_FAULTS else f["files"][0])
        for f in planted
    )
    assert sorted((f.code, f.file) for f in _problems(report)) == expected
    assert report.exit_code == 1
    conflict = next(f for f in report.findings if f.code == "label-conflict")
    assert (
        "ulcerative-colitis-grade-2 (2-fold" in conflict.message and "ulcerative-colitis-grade-2-3" in conflict.message
    )


def test_cli_exit_codes(tiny_twin, faulty_twin, tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tiny_twin.root)]) == 0
    capsys.readouterr()
    assert main(["validate", str(faulty_twin.root), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["exit_code"] == 1 and payload["counts"]["error"] == 4
    assert main(["validate", str(tmp_path)]) == 2
    assert "not a HyperKvasir release" in capsys.readouterr().err


def test_bad_inputs_become_findings(twin_copy: Path) -> None:
    split = twin_copy / "official_splits" / "2_fold_split.csv"
    split.write_text(split.read_text().replace(";", ","))
    unknown = twin_copy / "labeled-images" / "lower-gi-tract" / "pathological-findings" / "crohns"
    unknown.mkdir()
    first = next((twin_copy / "labeled-images" / "lower-gi-tract" / "anatomical-landmarks" / "cecum").glob("*.jpg"))
    shutil.copy(first, unknown / "0000.jpg")
    shutil.rmtree(twin_copy / "labeled-videos")
    codes = {f.code: f for f in validate(twin_copy, workers=1).findings}
    assert "wrong delimiter" in codes["split-malformed"].message
    assert codes["unknown-class"].file.endswith("crohns/")
    assert codes["part-absent"].message == "the videos part is not in this copy"
