from __future__ import annotations

import numpy as np

from hyperkvasir.datasets.transforms import classification_transform


def test_paper_recipe_rotates_continuously_like_torchvision_random_rotation_90() -> None:
    """The paper's RandomRotation(90): any angle in [-90°, 90°], corners filled black. 90° steps (RandomRotate90)
    would only ever give one of the eight flips/quarter turns of the square and never black corners."""
    import random

    random.seed(0)
    np.random.seed(0)
    rng = np.random.default_rng(0)
    image = rng.integers(40, 255, (64, 64, 3), dtype=np.uint8)  # no black pixel anywhere
    dihedral = [np.rot90(f, k) for f in (image, image[::-1], image[:, ::-1], image[::-1, ::-1]) for k in range(4)]
    transform = classification_transform("paper", 64, train=True)
    outputs = [transform(image=image)["image"].permute(1, 2, 0).numpy() for _ in range(40)]
    off_grid = [out for out in outputs if not any(np.array_equal(out, d) for d in dihedral)]
    assert len(off_grid) >= 35
    assert all((out[0, 0] == 0).all() or (out[0, -1] == 0).all() or (out[-1, 0] == 0).all() for out in off_grid)
    assert all(out.shape == (64, 64, 3) for out in outputs)
