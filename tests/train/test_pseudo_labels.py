from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hyperkvasir.classify.config import ClassifyConfig
from hyperkvasir.classify.pseudo_labels import pseudo_labels
from hyperkvasir.classify.train import train_classify
from hyperkvasir.cli import main
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.errors import HyperKvasirError

FAST = dict(model="test_efficientnet", epochs=1, input_size=32, batch_size=8, workers=0, pretrained=False)


def test_one_pseudo_labelling_round(tiny_twin, tmp_path: Path) -> None:
    teacher = train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "teacher"), **FAST))
    assert teacher["n"] > 0
    assert (
        main(
            [
                "predict",
                str(tmp_path / "teacher" / "best.ckpt"),
                str(tiny_twin.root),
                "--part",
                "unlabeled",
                "--out",
                str(tmp_path / "p.parquet"),
                "--workers",
                "0",
                "--pseudo-labels",
                str(tmp_path / "pl.csv"),
                "--threshold",
                "0",
            ]
        )
        == 0
    )
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.num_rows == tiny_twin.unlabeled
    assert table.column_names == ["path", "label", *(c.folder for c in CLASSES)]
    rows = table.to_pylist()
    assert all(abs(sum(r[c.folder] for c in CLASSES) - 1) < 1e-4 for r in rows)
    assert all(r["path"].startswith("unlabeled-images/images/") for r in rows)
    lines = (tmp_path / "pl.csv").read_text().splitlines()
    assert lines[0] == "path,label" and len(lines) - 1 == tiny_twin.unlabeled  # threshold 0 keeps all
    strict = pseudo_labels(tmp_path / "p.parquet", tmp_path / "none.csv", threshold=1.01)
    assert sum(strict.values()) == 0
    per_class = pseudo_labels(
        tmp_path / "p.parquet", tmp_path / "one.csv", threshold=1.01, per_class={rows[0]["label"]: 0.0}, max_per_class=1
    )
    assert sum(per_class.values()) == 1
    student = train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root), out=str(tmp_path / "student"), pseudo_labels=str(tmp_path / "pl.csv"), **FAST
        )
    )
    teacher_seen = json.loads((tmp_path / "teacher" / "metrics.json").read_text())[0]["train_images"]
    student_seen = json.loads((tmp_path / "student" / "metrics.json").read_text())[0]["train_images"]
    assert student_seen > teacher_seen and student["n"] == teacher["n"]
    assert student["pseudo_labels"]["used"] == tiny_twin.unlabeled
    teacher_record = json.loads((tmp_path / "pl.teacher.json").read_text())
    assert (teacher_record["scheme"], teacher_record["test_fold"]) == ("official-2fold", 0)
    # a student whose test fold the teacher trained on is refused
    other_fold = ClassifyConfig(
        root=str(tiny_twin.root),
        out=str(tmp_path / "leaky"),
        pseudo_labels=str(tmp_path / "pl.csv"),
        **(FAST | {"fold": 1}),
    )
    with pytest.raises(HyperKvasirError, match="another test_fold 0 \\(this run: 1\\)"):
        train_classify(other_fold)
    for change in ({"seed": 1}, {"val_fraction": 0.2}):  # both change which images the teacher trained on
        student = ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "other"),
            pseudo_labels=str(tmp_path / "pl.csv"),
            **(FAST | change),
        )
        with pytest.raises(HyperKvasirError, match=f"another {next(iter(change))}"):
            train_classify(student)
    assert teacher_record["labeled_key"] and not (tmp_path / "other").exists()
    # pseudo-labels of the labeled part are refused before any work
    assert (
        main(
            [
                "predict",
                str(tmp_path / "teacher" / "best.ckpt"),
                str(tiny_twin.root),
                "--part",
                "labeled",
                "--out",
                str(tmp_path / "lab.parquet"),
                "--pseudo-labels",
                str(tmp_path / "lab.csv"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "lab.parquet").exists() and not (tmp_path / "lab.csv").exists()


def test_unlabeled_duplicates_of_test_images_are_dropped(twin_copy: Path, tmp_path: Path) -> None:
    import shutil

    from hyperkvasir.classify.pseudo_labels import usable_pseudo_labels
    from hyperkvasir.data.splits import assignment
    from hyperkvasir.provenance import tree_key

    test = assignment(twin_copy, "official-2fold").subsets(0)["test"]
    source = next(twin_copy.glob(f"labeled-images/**/{test[0]}"))
    shutil.copyfile(source, twin_copy / "unlabeled-images" / "images" / "copy-of-a-test-image.jpg")
    rows = [
        "path,label",
        "unlabeled-images/images/copy-of-a-test-image.jpg,polyps",
        *(
            f"unlabeled-images/images/{p.name},polyps"
            for p in sorted((twin_copy / "unlabeled-images" / "images").glob("*.jpg"))[:3]
            if p.name != "copy-of-a-test-image.jpg"
        ),
    ]
    (tmp_path / "pl.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "pl.teacher.json").write_text(
        json.dumps(
            {
                "run": "t",
                "scheme": "official-2fold",
                "test_fold": 0,
                "seed": 0,
                "val_fraction": 0.1,
                "labeled_key": tree_key(twin_copy),
            }
        )
    )
    kept, report = usable_pseudo_labels(
        tmp_path / "pl.csv", twin_copy, scheme="official-2fold", fold=0, seed=0, val_fraction=0.1, test_files=test
    )
    assert report["dropped_duplicates_of_test_images"] == 1 and len(kept) == len(rows) - 2


@pytest.mark.parametrize(
    "row", ["../outside/x.jpg", "/etc/hostname", "labeled-images/{labeled}", "unlabeled-images/images/missing.jpg"]
)
def test_a_pseudo_label_row_outside_the_unlabeled_images_is_refused_with_its_line(
    twin_copy: Path, tmp_path: Path, row: str
) -> None:
    from hyperkvasir.classify.pseudo_labels import read_pseudo_labels
    from hyperkvasir.errors import DataError

    labeled = next(twin_copy.glob("labeled-images/**/*.jpg")).relative_to(twin_copy / "labeled-images")
    good = next((twin_copy / "unlabeled-images" / "images").glob("*.jpg")).relative_to(twin_copy)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.jpg").write_bytes(b"x")
    (tmp_path / "pl.csv").write_text(f"path,label\n{good},polyps\n{row.format(labeled=labeled)},polyps\n")
    with pytest.raises(DataError, match=r"pl\.csv:3: .* unlabeled images of this tree only"):
        read_pseudo_labels(tmp_path / "pl.csv", twin_copy)


def test_prediction_over_two_processes(tiny_twin, tmp_path: Path, run_cli) -> None:
    train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "t"), **FAST))
    run_cli(
        [
            "predict",
            tmp_path / "t" / "best.ckpt",
            tiny_twin.root,
            "--part",
            "unlabeled",
            "--out",
            tmp_path / "ddp.parquet",
            "--workers",
            "0",
        ],
        processes=2,
    )
    assert (
        main(
            [
                "predict",
                str(tmp_path / "t" / "best.ckpt"),
                str(tiny_twin.root),
                "--part",
                "unlabeled",
                "--out",
                str(tmp_path / "one.parquet"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    two = sorted(pq.read_table(tmp_path / "ddp.parquet").to_pylist(), key=lambda r: r["path"])
    one = sorted(pq.read_table(tmp_path / "one.parquet").to_pylist(), key=lambda r: r["path"])
    assert [r["path"] for r in two] == [r["path"] for r in one] and len(one) == tiny_twin.unlabeled
    assert all(abs(a["polyps"] - b["polyps"]) < 1e-5 for a, b in zip(one, two))


def test_gradcam_gives_normalised_maps_and_refuses_ensembles(tmp_path: Path) -> None:
    import torch

    from hyperkvasir.classify.gradcam import grad_cam
    from hyperkvasir.models import create_model

    model, _ = create_model("test_efficientnet", pretrained=False)
    images = torch.randn(2, 3, 64, 64)
    heat = grad_cam(model, images)
    assert heat.shape == (2, 64, 64) and heat.min() >= 0 and heat.max() <= 1
    ensemble, _ = create_model("resnet152+densenet161", pretrained=False)
    import pytest

    from hyperkvasir.errors import HyperKvasirError

    with pytest.raises(HyperKvasirError, match="not an ensemble"):
        grad_cam(ensemble, images)


def test_predict_writes_gradcam_overlays(tiny_twin, tmp_path: Path) -> None:
    from PIL import Image

    train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "t"), **FAST))
    assert (
        main(
            [
                "predict",
                str(tmp_path / "t" / "best.ckpt"),
                str(tiny_twin.root / "unlabeled-images" / "images"),
                "--out",
                str(tmp_path / "p.parquet"),
                "--workers",
                "0",
                "--gradcam",
                str(tmp_path / "cam"),
            ]
        )
        == 0
    )
    overlays = sorted((tmp_path / "cam").glob("*.png"))
    assert len(overlays) == tiny_twin.unlabeled
    assert Image.open(overlays[0]).size == (32, 32)
