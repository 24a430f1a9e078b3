from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import (
    read_bounding_boxes,
    read_image_labels,
    read_split_csv,
    read_video_labels,
    read_video_metadata,
)
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.errors import DatasetNotFoundError, ReleaseFormatError


# ------------------------------------------------------------------ real files of the release
def test_real_two_fold_split(shared_data: Path) -> None:
    rows = read_split_csv(shared_data / "official" / "2_fold_split.csv")
    assert len(rows) == 10_662
    assert Counter(r.fold for r in rows) == {0: 5_324, 1: 5_338}
    per_class = Counter(r.cls.folder for r in rows)
    assert per_class == {c.folder: c.released_count for c in CLASSES}


def test_real_five_fold_split_nests_in_two_fold(shared_data: Path) -> None:
    five = read_split_csv(shared_data / "official" / "5_fold_split.csv")
    assert Counter(r.fold for r in five) == {0: 2_122, 1: 2_122, 2: 2_122, 3: 2_122, 4: 2_174}
    two = {r.file_name: r.fold for r in read_split_csv(shared_data / "official" / "2_fold_split.csv")}
    cross = Counter((two[r.file_name], r.fold) for r in five)
    assert cross == {(0, 0): 2122, (0, 1): 2122, (0, 2): 1079, (0, 3): 1, (1, 2): 1043, (1, 3): 2121, (1, 4): 2174}


def test_real_video_metadata(shared_data: Path) -> None:
    rows = read_video_metadata(shared_data / "official" / "hyper-kvasir-video-metadata.csv")
    assert len(rows) == 373
    assert sum(r.frames for r in rows) == 1_059_519
    assert sum(r.finding is None for r in rows) == 3
    assert len({r.finding for r in rows}) == 171  # the README's 171 counts 'None' as a finding
    assert any(r.file_name == "Polypp 5.avi" for r in rows)


# ------------------------------------------------------------------ the twin read with the same readers
def test_twin_splits_parse_like_the_real_ones(tiny_twin) -> None:
    release = Release(tiny_twin.root)
    for k, expected in ((2, tiny_twin.folds2), (5, tiny_twin.folds5)):
        rows = read_split_csv(release.split_csv(k))
        assert {r.file_name: r.fold for r in rows} == expected
    labels = read_image_labels(release.image_labels_csv)
    assert Counter(r.cls.folder for r in labels) == tiny_twin.per_class
    assert all((release.labeled_dir / r.relpath).is_file() for r in labels)
    boxes = read_bounding_boxes(release.bounding_boxes_json)
    assert set(boxes) == set(tiny_twin.segmented)
    videos = read_video_labels(release.video_labels_csv)
    assert [v.stem for v in videos] == list(tiny_twin.videos)
    assert {v.stem for v in videos} == {p.stem for p in release.video_files()}


def test_release_finds_every_part(tiny_twin) -> None:
    release = Release(tiny_twin.root)
    assert release.present_parts() == ["labeled", "segmented", "unlabeled", "videos", "splits"]
    assert len(release.labeled_files()) == sum(tiny_twin.per_class.values())
    images, masks = release.segmented_pairs()
    assert [p.name for p in images] == [p.name for p in masks]
    assert len(release.unlabeled_files()) == tiny_twin.unlabeled


def test_release_variants(twin_copy: Path) -> None:
    (twin_copy / "official_splits").rename(twin_copy / "splits")
    (twin_copy / ".DS_Store").write_bytes(b"x")
    (twin_copy / "labeled-images" / "lower-gi-tract" / "pathological-findings" / "polyps" / "._a.jpg").write_bytes(b"")
    macos = twin_copy / "labeled-images" / "__MACOSX" / "x" / "y"
    macos.mkdir(parents=True)
    (macos / "z.jpg").write_bytes(b"")
    wrapper = twin_copy.parent / "download"
    wrapper.mkdir()
    twin_copy.rename(wrapper / "hyper-kvasir")
    release = Release(wrapper)  # the full archive's single top-level folder
    assert release.root == wrapper / "hyper-kvasir"
    assert release.splits_dir.name == "splits"
    assert all(not p.name.startswith(".") and "__MACOSX" not in p.parts for p in release.labeled_files())


def test_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="not a HyperKvasir release"):
        Release(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not a folder"):
        Release(tmp_path / "missing")
    (tmp_path / "labeled-images").mkdir()
    with pytest.raises(DatasetNotFoundError, match="--parts segmented"):
        Release(tmp_path).require("segmented")


# ------------------------------------------------------------------ each reader's error on a malformed file
SPLIT_OK = "file-name;class-name;split-index\na.jpg;polyp;0\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"x.csv:1: file is empty"),
        ("file-name,class-name,split-index\na.jpg,polyp,0\n", r"x.csv:1: wrong delimiter: expected ';', found ','"),
        ("name;class;fold\na.jpg;polyp;0\n", r"x.csv:1: unexpected header"),
        (SPLIT_OK + "b.jpg;polyp\n", r"x.csv:3: expected 3 fields, found 2"),
        (SPLIT_OK + "b.jpg;polypz;0\n", r"x.csv:3: unknown HyperKvasir class 'polypz'; did you mean"),
        (SPLIT_OK + "b.jpg;polyp;one\n", r"x.csv:3: column 'split-index' is not an integer"),
        (SPLIT_OK + "a.jpg;polyp;1\n", r"x.csv:3: file 'a.jpg' repeated \(first on line 2\)"),
        ("file-name;class-name;split-index\n", r"x.csv: no data rows"),
    ],
)
def test_split_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(ReleaseFormatError, match=message) as caught:
        read_split_csv(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Video file;Organ;Finding;Classification\n", r":1: wrong delimiter: expected ',', found ';'"),
        ("Video file,Organ,Finding,Classification\nabc,Middle GI,cecum,anatomical-landmarks\n", r":2: unknown organ"),
        ("Video file,Organ,Finding,Classification\nabc,Lower GI,cecum,landmarks\n", r":2: unknown Classification"),
        ("Video file,Organ,Finding,Classification\nabc,Lower GI,caecum,anatomical-landmarks\n", r":2: unknown Hyper"),
    ],
)
def test_image_labels_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "image-labels.csv"
    path.write_text(text)
    with pytest.raises(ReleaseFormatError, match=message):
        read_image_labels(path)


def test_image_labels_spellings(tmp_path: Path) -> None:
    path = tmp_path / "image-labels.csv"
    path.write_text("Video file,Organ,Finding,Classification\nabc,lower gi,Cecum,Anatomical-Landmarks\n")
    (row,) = read_image_labels(path)
    assert (row.tract, row.category, row.cls.folder, row.relpath) == (
        "lower-gi-tract",
        "anatomical-landmarks",
        "cecum",
        "lower-gi-tract/anatomical-landmarks/cecum/abc.jpg",
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"a": {"height": 1, "width": 2, "bbox": [', r"boxes.json:1: not valid JSON"),
        ("[]", r"top level must be an object"),
        ('{"a": {"height": 1, "width": 2}}', r"entry 'a': expected an object with a 'bbox' list"),
        ('{"a": {"height": "x", "width": 2, "bbox": []}}', r"entry 'a': 'width' must be|'height' must be"),
        (
            '{"a": {"height": 1, "width": 2, "bbox": [{"xmin": 1, "ymin": 0, "xmax": 2.5, "ymax": 1}]}}',
            r"entry 'a' box 0: 'xmax' must be an integer",
        ),
    ],
)
def test_bounding_boxes_errors(tmp_path: Path, payload: str, message: str) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(payload)
    with pytest.raises(ReleaseFormatError, match=message):
        read_bounding_boxes(path)


def test_bounding_boxes_reads_release_example(tmp_path: Path) -> None:
    path = tmp_path / "bounding-boxes.json"
    path.write_text(
        json.dumps(
            {
                "cju0qkwl35piu0993l0dewei2": {
                    "height": 529,
                    "width": 622,
                    "bbox": [{"label": "polyp", "xmin": 38, "ymin": 5, "xmax": 430, "ymax": 338}],
                }
            }
        )
    )
    entry = read_bounding_boxes(path)["cju0qkwl35piu0993l0dewei2"]
    assert (entry.width, entry.height, entry.boxes[0].xmax) == (622, 529, 430)


def test_video_csv_errors(tmp_path: Path) -> None:
    labels = tmp_path / "video-labels.csv"
    labels.write_text("Video file,Organ,Classification 1,Finding 1\nabc,Lower GI,Pathological findings,\n")
    with pytest.raises(ReleaseFormatError, match=r"video-labels.csv:2: no finding"):
        read_video_labels(labels)
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "file-name;finding;width;height;number-of-frames;fps;length;kilobytes\na.avi;polyp;720;576;x;25;1;2\n"
    )
    with pytest.raises(ReleaseFormatError, match=r"meta.csv:2: column 'number-of-frames' is not an integer"):
        read_video_metadata(meta)


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"file-name;class-name;split-index\n\xff\xfe;polyp;0\n")
    with pytest.raises(ReleaseFormatError, match="cannot read as UTF-8"):
        read_split_csv(path)
    with pytest.raises(ReleaseFormatError, match="file not found"):
        read_split_csv(tmp_path / "nope.csv")
