from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hyperkvasir.data.audit import (
    NEAR_DUPLICATE_THRESHOLD,
    audit,
    near_pairs,
)


def _pairs_by_definition(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """Every pair i < j whose hashes differ in at most ``threshold`` of their 64 bits, each pair compared: bits
    counted by unpacking bytes, not by the popcount the search uses."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    found = []
    for start in range(0, len(hashes), 256):
        xor = hashes[start : start + 256, None] ^ hashes[None, :]
        distance = np.unpackbits(xor.view(np.uint8).reshape(*xor.shape, 8), axis=-1).sum(-1)
        i, j = np.nonzero(distance <= threshold)
        i = i + start
        found.append(np.stack([i[i < j], j[i < j]], axis=1))
    return np.unique(np.concatenate(found), axis=0).astype(np.int64)


def test_near_pairs_equals_all_pairs_on_random_and_planted_hashes() -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=3000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    planted = hashes[:200].copy()
    for i in range(200):  # flip 0..6 random bits
        for bit in rng.choice(64, size=int(rng.integers(0, 7)), replace=False):
            planted[i] ^= np.uint64(1) << np.uint64(int(bit))
    hashes = np.concatenate([hashes, planted])
    for threshold in (0, 2, 6, NEAR_DUPLICATE_THRESHOLD, 13):
        fast, slow = near_pairs(hashes, threshold), _pairs_by_definition(hashes, threshold)
        assert np.array_equal(fast, slow), threshold
        assert len(fast) > 0


def test_audit_finds_planted_duplicates_and_the_label_conflict_only(faulty_twin) -> None:
    report = audit(faulty_twin.root, workers=1)
    by_kind = {f["kind"]: f["files"] for f in faulty_twin.faults}
    labeled_exact = [g.files for g in report.exact_groups if set(g.parts) == {"labeled"}]
    assert labeled_exact == sorted([sorted(by_kind["exact-duplicate"]), sorted(by_kind["label-conflict"])])
    assert [g.files for g in report.near_groups] == [sorted(by_kind["near-duplicate"])]
    assert [sorted(c["files"]) for c in report.label_conflicts] == [sorted(by_kind["label-conflict"])]
    assert len({*report.label_conflicts[0]["classes"]}) == 2
    assert report.overlaps["segmented-in-labeled"] == {"exact": 6, "near": 0, "total": 6}
    # every segmented image is in a group with its labeled copy: groups span parts
    assert sum(g.parts == ["labeled", "segmented"] for g in report.exact_groups) == 6
    assert report.unreadable == by_kind["truncated-image"]
    assert "carry conflicting labels" in report.summary


def test_clean_twin_marks_match_the_renderer(tiny_twin) -> None:
    report = audit(tiny_twin.root, workers=1)
    assert [g for g in report.exact_groups + report.near_groups if set(g.parts) != {"labeled", "segmented"}] == []
    assert report.label_conflicts == []
    assert {k: v["scopeguide"] for k, v in report.scopeguide.items()} == tiny_twin.scopeguide
    assert {k: v["black_box"] for k, v in report.scopeguide.items()} == tiny_twin.black_box
    assert sum(tiny_twin.black_box.values()) > 0 and sum(tiny_twin.scopeguide.values()) > 0
    assert len(report.scopeguide_files) == sum(tiny_twin.scopeguide.values()) + sum(
        1 for f in report.scopeguide_files if not f.startswith("labeled-images/")
    )


def test_segmented_only_copy_still_finds_its_own_duplicates(tiny_twin, tmp_path) -> None:
    import shutil

    root = tmp_path / "hk"
    shutil.copytree(tiny_twin.root / "segmented-images", root / "segmented-images")
    images = sorted((root / "segmented-images" / "images").glob("*.jpg"))
    twin_name = images[0].with_name("copy-of-first.jpg")
    shutil.copyfile(images[0], twin_name)
    shutil.copyfile(
        images[0].parent.parent / "masks" / images[0].name, images[0].parent.parent / "masks" / twin_name.name
    )
    report = audit(root, workers=1)
    assert [g.files for g in report.exact_groups] == [
        sorted(f"segmented-images/images/{p.name}" for p in (images[0], twin_name))
    ]
    assert "labeled part is not in this copy" in report.summary and "most often in :" not in report.summary
    from hyperkvasir.data.segmentation_splits import segmentation_split

    split = segmentation_split(root, seed=0)
    side = {name: subset for subset in ("train", "val", "test") for name in getattr(split, subset)}
    assert side[images[0].name] == side[twin_name.name]


# ------------------------------------------------------------------------------------------ real pixels
def _real_labels() -> dict[str, int]:
    from pathlib import Path

    lines = (Path(__file__).parent / "real_scopeguide_labels.csv").read_text().splitlines()
    rows = [line.split(";") for line in lines if line and not line.startswith("#")][1:]
    return {path: int(flag) for path, flag in rows}


def _tree_path(sample_path: str) -> str:
    if sample_path.startswith("labeled-lower-gi/"):
        return "labeled-images/" + sample_path.removeprefix("labeled-lower-gi/")
    return "segmented-images/" + sample_path.removeprefix("segmented-original/")


def test_scopeguide_detector_on_real_pixels_meets_precision_and_recall(real_audit) -> None:
    truth = {_tree_path(path): flag for path, flag in _real_labels().items()}
    flagged = set(real_audit.scopeguide_files)
    positives = {path for path, flag in truth.items() if flag}
    assert len(truth) == 975 and 100 < len(positives) < 200
    true_positive = len(flagged & positives)
    assert true_positive / len(flagged) >= 0.97 and true_positive / len(positives) >= 0.97


def test_real_sample_black_box_label_conflicts_and_duplicates(real_audit) -> None:
    corner = real_audit.segmented_corner
    assert corner["images"] == 300 and 0.4 <= corner["black_box_share"] <= 0.7
    assert real_audit.scopeguide["polyps"]["black_box_share"] > 0.4
    assert real_audit.scopeguide["ulcerative-colitis-grade-2"]["black_box"] <= 2
    conflicting = {frozenset(c["classes"]) for c in real_audit.label_conflicts}
    assert frozenset({"ulcerative-colitis-grade-2", "ulcerative-colitis-grade-2-3"}) in conflicting
    assert all(all(cls.startswith("ulcerative-colitis") for cls in pair) for pair in conflicting)
    segmented_pairs = [g for g in real_audit.duplicate_sets() if sum(p == "segmented" for p in g.parts) > 1]
    assert segmented_pairs, "Kvasir-SEG holds near-identical images of its own"
    overlap = real_audit.overlaps["segmented-in-labeled"]
    assert overlap["exact"] + overlap["near"] > 50
    official = real_audit.kvasir_seg_official
    assert official["in_official_lists"] == 300 and official["groups_straddling"] >= 0


def test_real_sample_near_duplicate_threshold_separates_captures_from_different_polyps(real_audit) -> None:
    """Two different polyps 4 pHash bits apart stay apart; two captures of one polyp 8 bits apart are joined
    (pairs seen in the calibration, docs/calibration.md)."""
    together = {frozenset(f.rsplit("/", 1)[-1] for f in g.files) for g in real_audit.duplicate_sets()}

    def joined(a: str, b: str) -> bool:
        return any({a, b} <= group for group in together)

    assert not joined("cju8cwy02t9eq08185qn12c02.jpg", "7151605a-00a1-4f53-9515-860dbdfadc01.jpg")
    assert joined("cju5fydrud94708507vo6oy21.jpg", "cju7avvi51iox0817ym55y6tt.jpg")


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_inputs(n: int) -> None:
    assert near_pairs(np.zeros(n, dtype=np.uint64)).shape == ((0, 2) if n == 1 else (1, 2))


def test_duplicate_videos_by_hash_and_by_metadata(twin_copy) -> None:
    import shutil

    videos = sorted(twin_copy.glob("labeled-videos/**/*.avi"))
    copy = videos[0].with_name("copy-of-first.avi")
    shutil.copyfile(videos[0], copy)
    same_size = videos[1].with_name("re-encoded.avi")
    data = bytearray(videos[1].read_bytes())
    data[-5] ^= 0xFF  # same size, frame count and resolution; other bytes
    same_size.write_bytes(bytes(data))
    report = audit(twin_copy, workers=1)
    rel = lambda p: str(p.relative_to(twin_copy))  # noqa: E731
    assert report.video_duplicates["exact"] == [sorted([rel(videos[0]), rel(copy)])]
    assert report.video_duplicates["metadata"] == [sorted([rel(videos[1]), rel(same_size)])]
    assert "1 groups are byte-identical and 1 more share" in report.summary


def test_a_run_of_slowly_changing_frames_cannot_chain_two_labeled_images() -> None:
    """Frames 0..n each 2 bits from the last bridge image A (frame 0) and image B (frame n, 40 bits from A):
    single-link components would put A and B in one group; leader clusters keep every pair within 2 × 10."""
    from hyperkvasir.data.audit import near_clusters, near_pairs

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 2**63, dtype=np.uint64)
    chain = [frame]
    for bit in rng.permutation(64)[:40]:
        frame = np.uint64(frame) ^ (np.uint64(1) << np.uint64(int(bit)))
        chain.append(frame)
    hashes = np.asarray(chain, dtype=np.uint64)
    pairs = near_pairs(hashes, 10)
    clusters = near_clusters(len(hashes), pairs)
    assert not any({0, len(hashes) - 1} <= set(c) for c in clusters), "A and B are not joined"
    for cluster in clusters:
        sub = hashes[cluster]
        assert np.bitwise_count(sub[:, None] ^ sub[None, :]).max() <= 20
    assert sum(len(c) for c in clusters) == len(hashes)  # every frame still belongs somewhere


def test_an_unlabeled_frame_resembling_two_labeled_images_does_not_join_them() -> None:
    """A (polyps, fold 0) and B (cecum, fold 1) are 16 bits apart; an unlabeled frame U sits 8 bits from each.
    The all-parts near group may hold all three (within 2 × 10 bits), but the labeled sets, which decide label
    conflicts, leakage and grouped-2fold, come from labeled-labeled evidence only."""
    from hyperkvasir.data.audit import AuditReport
    from hyperkvasir.data.audit.groups import collect_evidence

    thumbnail = bytes(range(256))  # one picture up to the hash: every candidate pair is confirmed
    rows = [
        {"path": f"{name}.jpg", "sha256": name, "part": part, "class": cls, "fold2": fold, "fold5": fold}
        for name, part, cls, fold in (
            ("a", "labeled", "polyps", 0),
            ("b", "labeled", "cecum", 1),
            ("u", "unlabeled", None, None),
        )
    ]
    features = {
        "a": {"phash": 0, "thumbnail": thumbnail},
        "u": {"phash": 0xFF, "thumbnail": thumbnail},
        "b": {"phash": 0xFFFF, "thumbnail": thumbnail},
    }
    evidence = collect_evidence(rows, features, NEAR_DUPLICATE_THRESHOLD, 0.95)
    assert [g.files for g in evidence.near] == [["a.jpg", "b.jpg", "u.jpg"]] and not evidence.exact
    assert evidence.labeled_near == [] and evidence.labeled_near_units == [] and evidence.labeled_pairs == []
    report = AuditReport(
        NEAR_DUPLICATE_THRESHOLD,
        0.95,
        {},
        evidence.exact,
        evidence.near,
        evidence.labeled_near,
        evidence.near_units,
        evidence.labeled_near_units,
    )
    assert report.labeled_sets() == [] and report.labeled_split_units() == [] and len(report.duplicate_sets()) == 1


def test_the_audit_is_kept_until_the_tree_or_its_parameters_change(twin_copy, monkeypatch) -> None:
    import hyperkvasir.data.audit.compute as audit_module

    calls = []
    real = audit_module.pixel_features
    monkeypatch.setattr(audit_module, "pixel_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = audit(twin_copy, workers=1)
    assert audit(twin_copy, workers=1).to_json() == first.to_json() and len(calls) == 1  # served from the work dir
    audit(twin_copy, workers=1, threshold=6)
    assert len(calls) == 2, "other parameters are another audit"
    a, b = sorted(twin_copy.glob("labeled-images/**/cecum/*.jpg"))[:2]
    b.write_bytes(a.read_bytes())  # the tree changed: a new exact duplicate
    assert [str(a.relative_to(twin_copy)), str(b.relative_to(twin_copy))] in [
        g.files for g in audit(twin_copy, workers=1).exact_groups
    ]
    (twin_copy / ".hyperkvasir" / "audit.json").write_text("{not json")
    assert audit(twin_copy, workers=1).exact_groups and len(calls) == 4, "a damaged cache is audited again"


_KEY_OF_EVERY_CHANGE = """
import json, sys
from pathlib import Path
import pyarrow as pa
from hyperkvasir.data.audit import cache
package = Path(sys.argv[1])
assert Path(cache.__file__).is_relative_to(package), cache.__file__
cache_key = cache.cache_key
manifest = pa.table({"path": ["a.jpg"], "sha256": ["0" * 64], "mtime_ns": [1]})
keys = {"unchanged": cache_key(manifest, 10, 0.95)}
for path in map(Path, json.loads(sys.argv[2])):
    source = path.read_bytes()
    path.write_bytes(source + b"# changed\\n")
    keys[path.name] = cache_key(manifest, 10, 0.95)
    path.write_bytes(source)
(package / "audit" / "added.py").write_text("# a module added to the audit\\n")
keys["added.py"] = cache_key(manifest, 10, 0.95)
print(json.dumps(keys))
"""


def test_the_audit_key_changes_with_the_code_of_every_audit_module(tmp_path) -> None:
    """In a copy of the package: a comment appended to any module of the audit package, or to the pixel detectors,
    the taxonomy or the Kvasir-SEG lists reader, or a module added to the package, is a new key."""
    import hyperkvasir

    copy = Path(
        shutil.copytree(
            Path(hyperkvasir.__file__).parent, tmp_path / "hyperkvasir", ignore=shutil.ignore_patterns("__pycache__")
        )
    )
    data = copy / "data"
    modules = sorted((data / "audit").glob("*.py")) + [
        data / name for name in ("pixels.py", "taxonomy.py", "kvasir_seg_lists.py")
    ]
    assert len(modules) >= 9
    done = subprocess.run(
        [sys.executable, "-c", _KEY_OF_EVERY_CHANGE, str(data), json.dumps(list(map(str, modules)))],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    keys = json.loads(done.stdout)
    assert len(keys) == len(modules) + 2 and len(set(keys.values())) == len(keys), keys
