"""Shortcut probes and corner masking, on the twin (whose ScopeGuide looks like the real one) and real pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hyperkvasir.classify.shortcuts import shortcut_probes
from hyperkvasir.cli import main
from hyperkvasir.data.imaging import decode_rgb, load_square
from hyperkvasir.data.pixels import SCOPEGUIDE_MIN_SHARE, scopeguide_score


def test_shortcut_probes_on_the_twin(tiny_twin, capsys) -> None:
    assert main(["shortcuts", str(tiny_twin.root), "--json", "--workers", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"corner_probe", "corner_probe_masked", "frame_probe_masked", "majority", "per_class", "summary"} <= set(result)
    assert result["corner_probe_masked"]["micro_f1"] == result["majority"]["micro_f1"]  # a blank corner: chance
    assert result["per_class"]["polyps"]["black_box_share"] > 0
    assert "sees only the lower-left corner" in result["summary"]


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
    assert main(["train", "classify", str(tiny_twin.root), "--model", "test_efficientnet", "--epochs", "1",
                 "--input-size", "32", "--no-pretrained", "--workers", "0", "--mask-corners",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mask_corners"] is True
    assert (tiny_twin.root / ".hyperkvasir" / "cache" / "square-32-corner-masked.npy").is_file()
    from hyperkvasir.classify.predict import load_classifier

    _, config, _ = load_classifier(tmp_path / "run" / "best.ckpt", "cpu")
    assert config.mask_corners is True  # what predict repeats
    image = np.asarray(load_square(frame, 32, mask_corners=config.mask_corners))
    assert not image[-4:, :4].any()
