"""Near-duplicate search: 64-bit perceptual hashes within a Hamming radius, confirmed by thumbnail correlation.

Candidates are found without comparing all pairs by multi-index hashing (Norouzi et al., CVPR 2012): the 64 bits
are cut into four bands, and two hashes within the threshold lie within ``threshold // 4`` bits of each other in
at least one band (pigeonhole), so only hashes near in a band are compared.
"""

from __future__ import annotations

import itertools

import numpy as np

from hyperkvasir.data.pixels import thumbnail_correlations

# pHash distance (of 64 bits) up to which a pair is a near-duplicate candidate. On real frames, re-encoded or
# resized copies sit 0–2 bits apart and consecutive captures of one scene 4–12 (a colitis frame filed under two
# grades: 10); unrelated frames start at 4, which is why a candidate must also pass the thumbnail correlation
# below (docs/calibration.md). Ten bits cost ~5 s of search on 110,000 hashes (bench/scale.py).
NEAR_DUPLICATE_THRESHOLD = 10
# Thumbnail correlation a candidate needs: real near-identical pairs ≥ 0.96, unrelated pairs within 14 bits
# ≤ 0.92 (docs/calibration.md).
NEAR_DUPLICATE_MIN_CORRELATION = 0.95
_BAND_BITS = 16  # four bands of 16 bits: a dense 65,536-entry table per band


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every value of ``bits`` bits with at most ``radius`` bits set (0 first)."""
    masks = [0] + [
        sum(1 << b for b in combo) for r in range(1, radius + 1) for combo in itertools.combinations(range(bits), r)
    ]
    return np.asarray(masks, np.int64)


def near_pairs(hashes: np.ndarray, threshold: int = NEAR_DUPLICATE_THRESHOLD) -> np.ndarray:
    """Index pairs (i < j) of 64-bit hashes within ``threshold`` bits, by multi-index hashing.

    The hash is cut into four 16-bit bands; two hashes within ``threshold`` bits differ in at least one band by
    at most ``threshold // 4`` bits (pigeonhole), so each hash is compared only with the hashes whose band value
    lies within that radius of its own (137 probes per band at 10 bits), looked up in a dense table. The work
    follows the candidates (about n²·137/65,536 per band for spread-out hashes, more where frames cluster), not
    all n² pairs. Returns an int64 array of shape (n_pairs, 2).
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    count = len(hashes)
    masks = _flip_masks(_BAND_BITS, threshold // (64 // _BAND_BITS))
    everyone = np.arange(count)
    found: list[np.ndarray] = []  # pair codes i * count + j
    for band in range(64 // _BAND_BITS):
        keys = ((hashes >> np.uint64(band * _BAND_BITS)) & np.uint64((1 << _BAND_BITS) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sizes = np.bincount(keys, minlength=1 << _BAND_BITS)
        starts = np.cumsum(sizes) - sizes  # where each band value's hashes begin in `order`
        for mask in masks:
            partner = keys ^ mask
            matches = sizes[partner]
            total = int(matches.sum())
            if not total:
                continue
            i = np.repeat(everyone, matches)
            j = order[np.repeat(starts[partner] - (np.cumsum(matches) - matches), matches) + np.arange(total)]
            keep = i < j
            i, j = i[keep], j[keep]
            close = np.bitwise_count(hashes[i] ^ hashes[j]) <= threshold
            found.append(i[close].astype(np.int64) * count + j[close])
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // count, codes % count], axis=1)


def confirmed_near_pairs(
    hashes: np.ndarray, thumbnails: list[bytes], threshold: int, min_correlation: float
) -> np.ndarray:
    """pHash candidates within ``threshold`` bits whose thumbnails correlate at ``min_correlation`` or more."""
    pairs = near_pairs(hashes, threshold)
    return pairs[thumbnail_correlations(thumbnails, pairs) >= min_correlation] if len(pairs) else pairs
