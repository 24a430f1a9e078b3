from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hyperkvasir.data.audit import (
    NEAR_DUPLICATE_MIN_CORRELATION,
    NEAR_DUPLICATE_THRESHOLD,
    confirmed_near_pairs,
    near_clusters,
)
from hyperkvasir.data.imaging import binarise_mask, decode_gray, verify_decodes
from hyperkvasir.data.layout import Release
from hyperkvasir.data.pixels import pixel_evidence
from hyperkvasir.data.splits import official_chunk_folds
from hyperkvasir.data.tables import read_bounding_boxes, read_image_labels, read_split_csv
from hyperkvasir.data.taxonomy import CLASSES, RELEASED_TOTAL
from hyperkvasir.synth.render import RESOLUTIONS
from hyperkvasir.synth.tree import _render_run, make_synthetic_release, scale_spec


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".hyperkvasir" not in p.parts
    }  # toolkit cache


def test_official_chunk_algorithm_matches_release_remainders() -> None:
    def sizes(n: int, k: int) -> list[int]:
        return list(Counter(official_chunk_folds([str(i) for i in range(n)], k)).values())

    assert sizes(9, 5) == [1, 1, 1, 1, 5]  # ileum
    assert sizes(6, 5) == [1, 1, 1, 1, 2]  # hemorrhoids
    assert sizes(11, 5) == [2, 2, 2, 2, 3]  # UC 1-2
    assert sizes(28, 5) == [5, 5, 5, 5, 8]  # UC 2-3
    assert sizes(9, 2) == [4, 5]
    assert official_chunk_folds(["a"], 2) == [1]


def test_tiny_twin_has_the_released_structure(tiny_twin) -> None:
    root = tiny_twin.root
    spec = scale_spec("tiny")
    for cls in CLASSES:
        files = list((root / "labeled-images" / cls.path).glob("*.jpg"))
        assert len(files) == spec.per_class[cls.folder] == tiny_twin.per_class[cls.folder]
        assert all(len(f.stem) == 36 and f.stem[14] == "4" for f in files)  # uuid4 names
    sizes = {Image.open(p).size for p in Release(root).labeled_files()}
    assert sizes <= {size for size, _ in RESOLUTIONS}
    assert sum(tiny_twin.scopeguide.values()) > 0
    assert all(tiny_twin.scopeguide[c.folder] == 0 for c in CLASSES if c.tract == "upper-gi-tract")


def test_splits_follow_the_official_script(tiny_twin) -> None:
    rows = read_split_csv(tiny_twin.root / "official_splits" / "2_fold_split.csv")
    names = {c.split_name for c in CLASSES}
    assert {r.cls.split_name for r in rows} == names  # written in split-CSV naming
    text = (tiny_twin.root / "official_splits" / "2_fold_split.csv").read_text()
    assert text.startswith("file-name;class-name;split-index\n") and "hemorroids" in text and text.endswith("\n")
    polyps = sorted(r.file_name for r in rows if r.cls.folder == "polyps")
    assert [tiny_twin.folds2[f] for f in polyps] == [0, 0, 0, 0, 1, 1, 1, 1]
    hemorrhoids = [r for r in rows if r.cls.folder == "hemorrhoids"]
    assert [r.fold for r in hemorrhoids] == [1]  # len // 2 == 0: the last fold takes the remainder


def test_segmented_images_are_copies_of_labeled_polyps_with_jpeg_masks(tiny_twin) -> None:
    root = tiny_twin.root
    polyps = {p.name: p for p in (root / "labeled-images" / CLASSES[13].path).glob("*.jpg")}
    boxes = read_bounding_boxes(root / "segmented-images" / "bounding-boxes.json")
    for stem in tiny_twin.segmented:
        image = root / "segmented-images" / "images" / f"{stem}.jpg"
        assert image.read_bytes() == polyps[f"{stem}.jpg"].read_bytes()
        gray = decode_gray(root / "segmented-images" / "masks" / f"{stem}.jpg")
        assert Image.open(root / "segmented-images" / "masks" / f"{stem}.jpg").mode == "RGB"
        assert ((gray > 20) & (gray < 235)).any(), "JPEG masks carry grey edge values"
        mask = binarise_mask(gray)
        ys, xs = np.nonzero(mask)
        entry = boxes[stem]
        assert (entry.width, entry.height) == Image.open(image).size
        assert min(b.xmin for b in entry.boxes) <= xs.min() and max(b.xmax for b in entry.boxes) >= xs.max()
        assert min(b.ymin for b in entry.boxes) <= ys.min() and max(b.ymax for b in entry.boxes) >= ys.max()
    assert Counter(tiny_twin.boxes_per_image.values())[1] >= 1


def test_videos_decode_with_their_frame_count(tiny_twin) -> None:
    files = Release(tiny_twin.root).video_files()
    assert len(files) == 3
    with av.open(str(files[0])) as container:
        assert sum(1 for _ in container.decode(video=0)) == scale_spec("tiny").video_frames


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, tiny_twin) -> None:
    again = make_synthetic_release(tmp_path / "again", seed=0, scale="tiny")
    assert _tree_digest(again.root) == _tree_digest(tiny_twin.root)
    other = make_synthetic_release(tmp_path / "other", seed=1, scale="tiny", parts=("labeled",))
    assert set(_tree_digest(other.root)).isdisjoint(
        k for k in _tree_digest(tiny_twin.root) if k.startswith("labeled-images/lower")
    )


def test_faults_are_planted_and_listed(faulty_twin) -> None:
    root = faulty_twin.root
    listed = json.loads((root / "FAULTS.json").read_text())["faults"]
    kinds = [f["kind"] for f in listed]
    assert kinds == [
        "exact-duplicate",
        "near-duplicate",
        "label-conflict",
        "truncated-image",
        "missing-image-label",
        "mask-size-mismatch",
        "box-out-of-bounds",
    ]
    by_kind = {f["kind"]: f for f in listed}
    a, b = by_kind["exact-duplicate"]["files"]
    assert (root / a).read_bytes() == (root / b).read_bytes()
    assert faulty_twin.folds2[Path(a).name] != faulty_twin.folds2[Path(b).name]
    a, b = by_kind["near-duplicate"]["files"]
    assert (root / a).read_bytes() != (root / b).read_bytes()
    assert faulty_twin.folds2[Path(a).name] != faulty_twin.folds2[Path(b).name]
    a, b = by_kind["label-conflict"]["files"]
    assert (root / a).read_bytes() == (root / b).read_bytes() and Path(a).parent.name != Path(b).parent.name
    assert verify_decodes(root / by_kind["truncated-image"]["files"][0]) is not None
    stems = {r.stem for r in read_image_labels(root / "labeled-images" / "image-labels.csv")}
    assert Path(by_kind["missing-image-label"]["files"][0]).stem not in stems
    mask = root / by_kind["mask-size-mismatch"]["files"][0]
    assert Image.open(mask).size != Image.open(str(mask).replace("/masks/", "/images/")).size
    entry = read_bounding_boxes(root / "segmented-images" / "bounding-boxes.json")[by_kind["box-out-of-bounds"]["key"]]
    assert max(b.xmax for b in entry.boxes) > entry.width


def test_small_scale_counts(tmp_path: Path) -> None:
    info = make_synthetic_release(tmp_path / "small", seed=2, scale="small", workers=2)
    assert info.per_class["hemorrhoids"] == 6 and info.per_class["bbps-2-3"] == 25
    assert len(Release(info.root).labeled_files()) == sum(info.per_class.values()) == 526 + 5
    assert len(info.segmented) == 24 and info.unlabeled == 40 and len(info.videos) == 6


@pytest.mark.slow
def test_medium_scale_keeps_the_release_imbalance(tmp_path: Path) -> None:
    info = make_synthetic_release(tmp_path / "medium", seed=4, scale="medium", workers=2, parts=("labeled",))
    expected = {c.folder: max(1, round(c.released_count / 10)) for c in CLASSES}
    assert info.per_class == expected
    assert Counter(r.cls.folder for r in read_split_csv(info.root / "official_splits" / "5_fold_split.csv")) == expected


def test_refuses_non_empty_folder(tiny_twin) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic_release(tiny_twin.root)


def test_full_scale_has_every_released_count() -> None:
    spec = scale_spec("full")
    assert {c.folder: c.released_count for c in CLASSES} == spec.per_class
    assert sum(spec.per_class.values()) == RELEASED_TOTAL == 10_662
    assert (spec.segmented, spec.unlabeled, spec.videos, spec.shrink) == (1_000, 99_417, 373, 4)


def test_full_scale_unlabeled_runs_change_slowly_and_never_repeat_bytes(tmp_path: Path) -> None:
    """Neighbours in a run are near duplicates the audit confirms, the run's ends are not, and the audit's groups
    over the run stay within twice the threshold (no chaining)."""
    paths = [str(tmp_path / f"{i}.jpg") for i in range(80)]
    _render_run((paths, "cecum", (0, 3, 1), scale_spec("full").shrink))
    data = [Path(p).read_bytes() for p in paths]
    assert len(set(data)) == len(data)
    evidence = [pixel_evidence(d) for d in data]
    hashes = np.asarray([e["phash"] for e in evidence], np.uint64)
    assert np.median(np.bitwise_count(hashes[1:] ^ hashes[:-1])) <= NEAR_DUPLICATE_THRESHOLD / 2
    distances = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    pairs = confirmed_near_pairs(
        hashes, [e["thumbnail"] for e in evidence], NEAR_DUPLICATE_THRESHOLD, NEAR_DUPLICATE_MIN_CORRELATION
    )
    single_links = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(paths), len(paths)))
    _, labels = connected_components(single_links, directed=False)
    largest = np.flatnonzero(labels == np.bincount(labels).argmax())
    assert distances[np.ix_(largest, largest)].max() > 2 * NEAR_DUPLICATE_THRESHOLD  # what chaining would join
    clusters = near_clusters(len(paths), pairs)
    assert max(distances[np.ix_(c, c)].max() for c in clusters) <= 2 * NEAR_DUPLICATE_THRESHOLD
