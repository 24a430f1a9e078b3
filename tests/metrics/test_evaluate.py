from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperkvasir.classify.evaluate import evaluate_predictions, read_predictions, read_truth
from hyperkvasir.cli import main
from hyperkvasir.errors import HyperKvasirError, ReleaseFormatError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_three_namings_and_official_truth(tmp_path: Path) -> None:
    truth = _write(
        tmp_path / "t.csv",
        "file-name;class-name;split-index\na.jpg;hemorroids;0\nb.jpg;normal-cecum;0\n"
        "c.jpg;ulcerative-colitis-grade-0-1;1\n",
    )
    preds = _write(
        tmp_path / "p.csv", "file-name,label\na.jpg,hemorrhoids\nb.jpg,cecum\nc.jpg,ulcerative-colitis-0-1\n"
    )
    metrics = evaluate_predictions(read_predictions(preds), read_truth(truth))
    assert metrics["accuracy"] == 1.0 and metrics["n"] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file-name,label\na.jpg,polyp\na.jpg,polyp\n", "1 file names repeated: a.jpg"),
        ("file-name,label\na.jpg,polip\nb.jpg,crohn\n", "unknown classes 'crohn', 'polip'"),
        ("name,label\na.jpg,polyp\n", "header needs 'file-name' and 'label'"),
    ],
)
def test_bad_predictions_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ReleaseFormatError, match=message) as caught:
        read_predictions(_write(tmp_path / "p.csv", text))
    assert "\n" not in str(caught.value)


def test_predicted_files_missing_from_truth(tmp_path: Path) -> None:
    with pytest.raises(HyperKvasirError, match="1 predicted files are not in the truth \\(first: z.jpg\\)") as caught:
        evaluate_predictions({"z.jpg": 1, "a.jpg": 1}, {"a.jpg": 1})
    assert caught.value.exit_code == 1  # a data problem, like an unknown class in the file


def test_cli_json_against_the_twin(tiny_twin, tmp_path: Path, capsys) -> None:
    names = sorted(tiny_twin.folds2)
    preds = _write(tmp_path / "p.csv", "file-name,label\n" + "".join(f"{n},polyps\n" for n in names))
    split = tiny_twin.root / "official_splits" / "2_fold_split.csv"
    assert (
        main(
            [
                "evaluate",
                "classify",
                "--predictions",
                str(preds),
                "--truth",
                str(split),
                "--json",
                "--plot",
                str(tmp_path / "cm.png"),
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["n"] == len(names) and payload["per_class"]["polyps"]["recall"] == 1.0
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert main(["evaluate", "classify", "--predictions", str(preds), "--root", str(tiny_twin.root)]) == 0
    assert main(["evaluate", "classify", "--predictions", str(preds)]) == 2
