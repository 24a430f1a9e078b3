"""A classifier trained with ``mask_corners`` is blind to the corner at predict time too: repainting the corner of
an input changes nothing that predict writes, while the same network fed the unmasked squares does see it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from hyperkvasir.classify.config import ClassifyConfig
from hyperkvasir.classify.module import ClassifyModule
from hyperkvasir.classify.predict import predict_images
from hyperkvasir.classify.train import train_classify
from hyperkvasir.data.imaging import corner_region, decode_rgb, load_square
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.models import MODELS


def test_predict_ignores_the_masked_corner_that_the_network_would_see(tiny_twin, tmp_path: Path) -> None:
    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "run"),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            batch_size=8,
            workers=0,
            pretrained=False,
            mask_corners=True,
        )
    )
    checkpoint = tmp_path / "run" / "best.ckpt"
    frame = decode_rgb(next(iter(sorted(tiny_twin.root.glob("labeled-images/**/polyps/*.jpg")))))
    painted = frame.copy()
    painted[corner_region(*frame.shape[:2])] = np.random.default_rng(0).integers(
        0, 256, painted[corner_region(*frame.shape[:2])].shape, dtype=np.uint8
    )
    assert (painted != frame).any() and (painted[: frame.shape[0] // 2] == frame[: frame.shape[0] // 2]).all()
    images = tmp_path / "images"
    images.mkdir()
    paths = [images / "original.png", images / "painted.png"]  # PNG: no JPEG block reaches past the corner
    for path, pixels in zip(paths, (frame, painted)):
        Image.fromarray(pixels).save(path)

    predict_images(checkpoint, [images], tmp_path / "p.parquet", workers=0, device="cpu")
    rows = {Path(r["path"]).name: r for r in pq.read_table(tmp_path / "p.parquet").to_pylist()}
    original, repainted = (np.array([rows[p.name][c.folder] for c in CLASSES]) for p in paths)
    assert np.abs(original - repainted).max() <= 1e-7  # float32 rounding at most; both rows are the same input

    # the same network on the squares without the mask: the repainted corner moves its outputs. After one epoch
    # from a random start the probabilities sit near 1/23, so the logits show it plainly (differences ~1e-2).
    module, _ = ClassifyModule.from_checkpoint(checkpoint, torch.device("cpu"))
    model, config = module.model, module.config
    assert config.mask_corners is True
    spec = MODELS[config.model]

    def logits(mask_corners: bool) -> np.ndarray:
        squares = np.stack([load_square(p, config.input_size, mask_corners=mask_corners) for p in paths])
        with torch.no_grad():
            return model(normalise(torch.from_numpy(squares).permute(0, 3, 1, 2), spec.mean, spec.std)).numpy()

    masked, unmasked = logits(True), logits(False)
    assert np.abs(masked[0] - masked[1]).max() <= 1e-6
    assert np.abs(unmasked[0] - unmasked[1]).max() > 1e-3
    assert np.allclose(torch.softmax(torch.from_numpy(masked[0]), 0).numpy(), original, atol=1e-6)  # what predict fed
