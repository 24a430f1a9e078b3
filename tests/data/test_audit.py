from __future__ import annotations

import numpy as np
import pytest

from hyperkvasir.data.audit import (
    NEAR_DUPLICATE_THRESHOLD,
    all_pairs_reference,
    audit,
    near_pairs,
)


def test_near_pairs_equals_all_pairs_on_random_and_planted_hashes() -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=3000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    planted = hashes[:200].copy()
    for i in range(200):  # flip 0..6 random bits
        for bit in rng.choice(64, size=int(rng.integers(0, 7)), replace=False):
            planted[i] ^= np.uint64(1) << np.uint64(int(bit))
    hashes = np.concatenate([hashes, planted])
    for threshold in (0, 2, NEAR_DUPLICATE_THRESHOLD, 6):
        fast, slow = near_pairs(hashes, threshold), all_pairs_reference(hashes, threshold)
        assert np.array_equal(fast, slow), threshold
        assert len(fast) > 0


def test_audit_finds_planted_duplicates_only(faulty_twin) -> None:
    report = audit(faulty_twin.root, workers=1)
    by_kind = {f["kind"]: f["files"] for f in faulty_twin.faults}
    assert [g.files for g in report.exact_groups] == [sorted(by_kind["exact-duplicate"])]
    assert [g.files for g in report.near_groups] == [sorted(by_kind["near-duplicate"])]
    assert report.leakage["fold2"] == {"groups": 2, "images": 4, "fold_pairs": {"0-1": 2}}
    assert report.overlaps["segmented-in-labeled"] == {"exact": 6, "near": 0, "total": 6}
    assert report.unreadable == by_kind["truncated-image"]
    assert "2 duplicate groups (4 images) span both folds" in report.summary


def test_clean_twin_has_no_duplicates_and_scopeguide_matches_the_renderer(tiny_twin) -> None:
    report = audit(tiny_twin.root, workers=1)
    assert report.exact_groups == [] and report.near_groups == []
    assert {k: v["scopeguide"] for k, v in report.scopeguide.items()} == tiny_twin.scopeguide


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
