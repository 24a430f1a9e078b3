"""Imbalance-aware training: logit-adjusted loss, distributed balanced sampling, rare-class augmentation, the
decision rule fitted on validation only, test-time flips, packaged recipes by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperkvasir.classify.config import ClassifyConfig
from hyperkvasir.classify.decision import decide, fit_offsets
from hyperkvasir.classify.module import ClassifyModule
from hyperkvasir.classify.predict import flip_averaged
from hyperkvasir.classify.train import train_classify
from hyperkvasir.cli import main
from hyperkvasir.engine.sampling import EpochSampler

FAST = dict(model="test_efficientnet", epochs=1, input_size=32, batch_size=8, workers=0, pretrained=False)


def test_logit_adjusted_loss_is_cross_entropy_of_logits_plus_tau_log_prior(tiny_twin) -> None:
    module = ClassifyModule(ClassifyConfig(root=str(tiny_twin.root), loss="logit-adjusted", logit_tau=0.7, **FAST))
    prior = torch.rand(23) + 0.1
    module.log_prior.copy_((prior / prior.sum()).log())
    images, targets = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 5, 9, 22])
    module.eval()  # no BatchNorm update between the two forwards
    loss = module.training_step((images, targets, ["a"] * 4, 0), 0)
    expected = torch.nn.functional.cross_entropy(module(images) + 0.7 * module.log_prior, targets)
    assert torch.allclose(loss, expected)
    with pytest.raises(Exception, match="unknown loss"):
        ClassifyModule(ClassifyConfig(root=str(tiny_twin.root), loss="focal", **FAST))


def test_balanced_sampler_shards_one_sequence_over_ranks() -> None:
    weights = [1.0 / 90] * 90 + [1.0 / 10] * 10  # 90 common, 10 rare samples
    alone = list(EpochSampler(100, seed=3, weights=weights))
    ranks = [list(EpochSampler(100, seed=3, weights=weights, rank=r, world=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(alone) and len(ranks[0]) == len(ranks[1]) == 50
    draws = [
        i
        for epoch in range(20)
        for i in (lambda s: (s.set_epoch(epoch), list(s))[1])(EpochSampler(100, seed=3, weights=weights))
    ]
    assert 0.4 < np.mean([i >= 90 for i in draws]) < 0.6  # rare samples drawn as often as common ones


def test_rare_classes_get_the_strong_pipeline_only_in_training(tiny_twin) -> None:
    from hyperkvasir.classify.data import LabeledImages
    from hyperkvasir.data.splits import assignment

    subsets = assignment(tiny_twin.root, "official-2fold").subsets(0)
    train = LabeledImages(tiny_twin.root, subsets["train"], input_size=32, train=True, rare_below=2)
    counts = train.class_counts()
    assert train.rare == {label for label, n in counts.items() if n < 2} and train.rare
    assert LabeledImages(tiny_twin.root, subsets["test"], input_size=32, rare_below=2).rare == set()


def test_fit_offsets_lifts_a_rare_class_that_argmax_never_predicts() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 80 + [1] * 20)
    probs = np.full((100, 2), 0.0)
    probs[:80, 0] = rng.uniform(0.75, 0.95, 80)
    probs[80:, 0] = rng.uniform(0.55, 0.7, 20)  # the rare class scores higher on its own images, never wins
    probs[:, 1] = 1 - probs[:, 0]
    offsets, before, after = fit_offsets(probs, labels)
    assert (decide(probs, None) == 0).all() and after > before and offsets[1] - offsets[0] > 0
    assert np.array_equal(decide(probs, np.zeros(2)), probs.argmax(1))


def test_decision_rule_is_fitted_on_validation_only(twin_copy: Path, tmp_path: Path) -> None:
    """Replacing every test-fold image by noise changes the test predictions but not the fitted offsets."""
    config = dict(FAST, decision_rule=True, cache=False)
    first = train_classify(ClassifyConfig(root=str(twin_copy), out=str(tmp_path / "a"), **config))
    from hyperkvasir.data.splits import assignment

    test = set(assignment(twin_copy, "official-2fold").subsets(0)["test"])
    rng = np.random.default_rng(1)
    from PIL import Image

    for path in twin_copy.glob("labeled-images/**/*.jpg"):
        if path.name in test:
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    second = train_classify(ClassifyConfig(root=str(twin_copy), out=str(tmp_path / "b"), **config))
    assert first["decision_rule"]["offsets"] == second["decision_rule"]["offsets"]
    assert first["decision_rule"]["fitted_on"].startswith("validation")
    stored = torch.load(tmp_path / "a" / "best.ckpt", weights_only=True)["decision_rule"]
    assert stored["offsets"] == first["decision_rule"]["offsets"]
    lines_a = (tmp_path / "a" / "predictions-test.csv").read_text()
    assert lines_a != (tmp_path / "b" / "predictions-test.csv").read_text()
    # applied: the test labels and predict's labels are the offset decisions, not the plain argmax
    from hyperkvasir.data.taxonomy import CLASSES

    offsets = np.asarray(stored["offsets"])
    rows = [line.split(",") for line in lines_a.splitlines()[1:]]
    probs = np.asarray([[float(v) for v in row[2:]] for row in rows])
    assert [row[1] for row in rows] == [CLASSES[i].folder for i in decide(probs, offsets)]
    images = sorted(twin_copy.glob("labeled-images/**/*.jpg"))[:6]
    assert (
        main(
            [
                "predict",
                str(tmp_path / "a" / "best.ckpt"),
                *map(str, images),
                "--out",
                str(tmp_path / "p.parquet"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    matrix = np.asarray([[row[c.folder] for c in CLASSES] for row in table])
    assert [row["label"] for row in table] == [CLASSES[i].folder for i in decide(matrix, offsets)]


def test_flip_averaged_probabilities_do_not_change_when_the_input_is_flipped() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5))
    images = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        model(images)
        a, b = flip_averaged(model, images), flip_averaged(model, images.flip(-1))
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a.sum(1), torch.ones(2))


def test_packaged_recipes_resolve_by_name(tiny_twin, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "train",
                "classify",
                str(tiny_twin.root),
                "--config",
                "imbalanced-cpu",
                "--model",
                "test_efficientnet",
                "--epochs",
                "1",
                "--input-size",
                "32",
                "--no-pretrained",
                "--workers",
                "0",
                "--out",
                str(tmp_path / "run"),
                "--json",
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["loss"] == "logit-adjusted" and saved["rare_below"] == 40 and saved["tta"]
    assert metrics["decision_rule"] is None and metrics["tta"] is True
    assert (
        main(["train", "classify", str(tiny_twin.root), "--config", "no-such-recipe", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "packaged: " in capsys.readouterr().err and not (tmp_path / "x").exists()
    (tmp_path / "bad.yaml").write_text("just some words")
    assert main(["train", "classify", str(tiny_twin.root), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "a recipe is a YAML mapping" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "run")
