"""Shortcut probes and corner masking, on the twin (whose ScopeGuide looks like the real one) and real pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hyperkvasir.classify.shortcuts import _features, _probe, shortcut_probes
from hyperkvasir.cli import main
from hyperkvasir.data.imaging import decode_rgb, load_square
from hyperkvasir.data.pixels import SCOPEGUIDE_MIN_SHARE, scopeguide_score


def test_shortcut_probes_on_the_twin(tiny_twin, capsys) -> None:
    assert main(["shortcuts", str(tiny_twin.root), "--json", "--workers", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"corner_probe", "corner_probe_masked", "frame_probe_masked", "majority", "per_class", "summary"} <= set(
        result
    )
    assert result["per_class"]["polyps"]["black_box_share"] > 0
    assert "sees only the lower-left corner" in result["summary"]


def test_a_blanked_corner_gives_every_frame_the_same_features(tiny_twin) -> None:
    """What makes the masked-corner probe fall to the prior: its features are one constant vector, whatever the
    frame (a ScopeGuide frame and a black-box one included), while the unmasked corners differ."""
    frames = sorted(tiny_twin.root.glob("labeled-images/**/*.jpg"))[::7]
    features = np.stack([_features(str(f)) for f in frames])
    assert len(frames) >= 5
    assert np.ptp(features[:, 2], axis=0).max() == 0  # corner of the masked frame
    assert np.ptp(features[:, 0], axis=0).max() > 0.05 and np.ptp(features[:, 1], axis=0).max() > 0.05


SHARES = (0.5, 0.3, 0.2)  # an imbalanced three-class problem: always predicting class 0 is right half the time


def _parts(seed: int, signal: bool) -> tuple[dict, dict]:
    """Train/validation/test features shaped like the probes' (54 columns, most constant, as in a histogram of a
    dark region), 20 of them Gaussian noise; with ``signal`` one more column is the class plus noise of σ 0.15."""
    rng = np.random.default_rng(seed)
    y = {part: rng.choice(len(SHARES), size=n, p=SHARES) for part, n in (("train", 300), ("val", 100), ("test", 400))}
    x = {}
    for part, labels in y.items():
        x[part] = np.zeros((len(labels), 54), np.float32)
        x[part][:, :20] = rng.normal(size=(len(labels), 20))
        if signal:
            x[part][:, 20] = labels + rng.normal(0, 0.15, len(labels))
    return x, y


def test_the_probe_finds_the_one_feature_that_carries_the_class() -> None:
    from sklearn.metrics import balanced_accuracy_score

    x, y = _parts(seed=0, signal=True)
    predicted = _probe(x["train"], y["train"], x["val"], y["val"], x["test"])
    assert balanced_accuracy_score(y["test"], predicted) >= 0.95  # classes lie 1 apart, 6.7 σ of the noise


def test_the_probe_on_noise_does_not_beat_the_majority() -> None:
    """Features that vary but say nothing of the class: the probe is fitted (no constant-feature shortcut) and
    stays at chance. Any label-blind predictor has balanced accuracy 1/3 in expectation; 0.08 is about three
    standard errors at these 400 test images (per-class recall errors 0.033, 0.043, 0.053)."""
    from sklearn.metrics import balanced_accuracy_score

    x, y = _parts(seed=1, signal=False)
    assert np.ptp(x["train"], axis=0).any()
    predicted = _probe(x["train"], y["train"], x["val"], y["val"], x["test"])
    majority = np.mean(y["test"] == np.bincount(y["train"]).argmax())
    assert np.mean(predicted == y["test"]) <= majority + 0.05
    assert abs(balanced_accuracy_score(y["test"], predicted) - 1 / 3) <= 0.08
    assert len(set(predicted)) > 1  # fitted, not the prior's mode


def test_constant_features_fall_back_to_the_training_mode() -> None:
    y_train = [2, 2, 0, 1, 2]
    predicted = _probe(np.ones((5, 54)), y_train, np.ones((2, 54)), [0, 1], np.ones((3, 54)))
    assert list(predicted) == [2, 2, 2]


def test_masked_corners_hold_no_scopeguide_on_real_frames(real_tree: Path, real_audit) -> None:
    from hyperkvasir.data.imaging import blank_corner

    flagged = [f for f in real_audit.scopeguide_files if f.startswith("labeled-images/")]
    assert len(flagged) > 100
    for relpath in flagged:
        masked = blank_corner(decode_rgb(real_tree / relpath))
        assert scopeguide_score(masked) < SCOPEGUIDE_MIN_SHARE, relpath


def test_real_corner_probe_beats_the_majority_and_the_masked_probe_does_not(real_tree: Path) -> None:
    result = shortcut_probes(real_tree, workers=2)
    assert result["corner_probe"]["macro_f1"] > result["majority"]["macro_f1"] + 0.1
    assert abs(result["corner_probe_masked"]["micro_f1"] - result["majority"]["micro_f1"]) <= 0.05


def test_mask_corners_blanks_training_inputs_the_cache_and_predict(tiny_twin, tmp_path: Path, capsys) -> None:
    frame = next(p for p in sorted(tiny_twin.root.glob("labeled-images/**/polyps/*.jpg")))
    square = load_square(frame, 64, mask_corners=True)
    assert not square[-8:, :8].any() and square[8:24, 30:50].any()  # lower-left black, centre untouched
    assert (
        main(
            [
                "train",
                "classify",
                str(tiny_twin.root),
                "--model",
                "test_efficientnet",
                "--epochs",
                "1",
                "--input-size",
                "32",
                "--no-pretrained",
                "--workers",
                "0",
                "--mask-corners",
                "--out",
                str(tmp_path / "run"),
                "--json",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mask_corners"] is True
    assert (tiny_twin.root / ".hyperkvasir" / "cache" / "square-32-corner-masked.npy").is_file()
    from hyperkvasir.classify.module import ClassifyModule

    config = ClassifyModule.from_checkpoint(tmp_path / "run" / "best.ckpt", "cpu")[0].config
    assert config.mask_corners is True  # what predict repeats
    image = np.asarray(load_square(frame, 32, mask_corners=config.mask_corners))
    assert not image[-4:, :4].any()
