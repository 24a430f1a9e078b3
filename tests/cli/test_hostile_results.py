"""Silent wrong results (issue 22, class 3): inputs that used to give a wrong answer with exit 0 — masks stored as
0/1 or inverted, 16-bit and other pixel formats, loosely typed recipes, outputs named by stem, decompression
bombs, ragged predictions CSVs — now give the right answer or one line naming the file."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hyperkvasir.cli import main
from hyperkvasir.data.imaging import ImageDecodeError, MaskError, decode_mask, decode_rgb, load_mask

GRADIENT = (np.arange(48 * 64).reshape(48, 64) * 7 % 256).astype(np.uint8)


@pytest.fixture(scope="module")
def checkpoint(classify_checkpoint: Path) -> Path:
    return classify_checkpoint


def _rewrite_masks(root: Path, change) -> list[Path]:
    """Rewrite every released mask of ``root`` as ``change(bool mask)`` (uint8), saved as JPEG quality 100."""
    masks = sorted((root / "segmented-images" / "masks").glob("*.jpg"))
    for path in masks:
        Image.fromarray(change(np.asarray(Image.open(path).convert("L")) >= 128)).save(path, quality=100)
    return masks


# ------------------------------------------------------------------------------------------------ masks
def test_masks_stored_as_0_1_are_polyps_not_empty(twin_copy: Path, tmp_path: Path, capsys) -> None:
    truth = {
        p.stem: np.asarray(Image.open(p).convert("L")) >= 128
        for p in sorted((twin_copy / "segmented-images" / "masks").glob("*.jpg"))
    }
    masks = _rewrite_masks(twin_copy, lambda polyp: polyp.astype(np.uint8))
    for path in masks:  # read as the same polyp, to the pixel but for JPEG's edge noise
        assert (load_mask(path) == truth[path.stem]).mean() > 0.99 and load_mask(path).any()
    assert main(["validate", str(twin_copy)]) == 0
    from hyperkvasir.segment.data import SegmentedPolyps

    dataset = SegmentedPolyps(twin_copy, [f"{p.stem}.jpg" for p in masks], size=64)
    assert all(dataset.raw(i)[1].any() for i in range(len(dataset)))  # training sees the polyps
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for stem, polyp in truth.items():  # a perfect prediction, saved as a 0/1 map as well
        Image.fromarray(polyp.astype(np.uint8)).save(predictions / f"{stem}.png")
    capsys.readouterr()
    assert main(["evaluate", "segment", "--pred", str(predictions), "--truth", str(masks[0].parent), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dice"] > 0.98


def test_inverted_masks_are_refused_not_trained_or_scored(twin_copy: Path, tmp_path: Path, capsys) -> None:
    masks = _rewrite_masks(twin_copy, lambda polyp: np.where(polyp, 0, 255).astype(np.uint8))
    assert main(["validate", str(twin_copy)]) == 1
    assert "inverted" in capsys.readouterr().out
    from hyperkvasir.segment.data import SegmentedPolyps

    with pytest.raises(MaskError, match="inverted"):
        SegmentedPolyps(twin_copy, [f"{masks[0].stem}.jpg"], size=64).raw(0)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(predictions / f"{masks[0].stem}.png")
    assert main(["evaluate", "segment", "--pred", str(predictions), "--truth", str(masks[0].parent), "--subset"]) == 1
    err = capsys.readouterr().err
    assert masks[0].name in err and "inverted" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "save",
    [
        lambda m, p: Image.fromarray(m.astype(np.uint16)).save(p),  # 16-bit 0/1
        lambda m, p: Image.fromarray(m.astype(np.uint16) * 65535).save(p),  # 16-bit 0/65535
        lambda m, p: Image.fromarray(np.dstack([m] * 3)).save(p),  # RGB 0/1
        lambda m, p: Image.fromarray(m.astype(bool)).save(p),  # 1-bit
        lambda m, p: Image.fromarray(np.dstack([np.full(m.shape + (3,), 255, np.uint8), m * 255])).save(p),  # alpha
    ],
    ids=["uint16-0-1", "uint16-full", "rgb-0-1", "1-bit", "alpha-is-the-mask"],
)
def test_mask_encodings_read_as_the_same_polyp(tmp_path: Path, save) -> None:
    polyp = np.zeros((40, 50), np.uint8)
    polyp[10:25, 15:35] = 1
    save(polyp, tmp_path / "m.png")
    assert (load_mask(tmp_path / "m.png") == polyp.astype(bool)).all()


# ------------------------------------------------------------------------------------------------ pixels
def _bomb_png(path: Path) -> None:
    """A PNG whose header claims 20000 × 20000 pixels (over Pillow's decompression-bomb limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 20001))
        + chunk(b"IEND", b"")
    )


def _bomb_jpeg(source: Path, path: Path) -> None:
    """A real JPEG whose frame header is patched to 20000 × 20000 pixels."""
    data = source.read_bytes()
    at = data.index(b"\xff\xc0") + 5
    path.write_bytes(data[:at] + struct.pack(">HH", 20000, 20000) + data[at + 4 :])


@pytest.mark.parametrize(
    ("save", "mode"),
    [
        (lambda g, p: Image.fromarray(g.astype(np.uint16) * 257).save(p.with_suffix(".png")), ".png"),
        (lambda g, p: Image.fromarray(g.astype(np.uint16) * 257).save(p.with_suffix(".tif")), ".tif"),
        (lambda g, p: Image.fromarray(g.astype(np.float32) / 255).save(p.with_suffix(".tif")), ".tif"),
        (lambda g, p: Image.fromarray(g).convert("P").save(p.with_suffix(".png")), ".png"),
        (lambda g, p: Image.fromarray(np.dstack([g, g, g, np.full_like(g, 255)])).save(p.with_suffix(".png")), ".png"),
    ],
    ids=["16-bit-grey-png", "16-bit-tiff", "float-tiff", "palette", "opaque-rgba"],
)
def test_pixel_formats_decode_as_their_8_bit_twin(tmp_path: Path, save, mode: str) -> None:
    save(GRADIENT, tmp_path / "image")
    assert np.abs(decode_rgb(tmp_path / f"image{mode}").astype(int) - GRADIENT[..., None]).max() <= 1


def test_transparency_is_black_and_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgba = np.dstack([np.full((20, 30, 3), 200, np.uint8), np.zeros((20, 30), np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert decode_rgb(tmp_path / "clear.png").max() == 0
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif)
    assert decode_rgb(tmp_path / "phone.jpg").shape == (30, 20, 3)


@pytest.mark.parametrize(
    ("array", "text"),
    [
        (GRADIENT.astype(np.int32), "32-bit integer"),
        (GRADIENT.astype(np.float32), "float pixels beyond 0–1"),
    ],
    ids=["int32", "float-0-255"],
)
def test_ambiguous_bit_depths_are_refused(tmp_path: Path, array: np.ndarray, text: str) -> None:
    Image.fromarray(array).save(tmp_path / "x.tif")
    with pytest.raises(ImageDecodeError, match=text):
        decode_rgb(tmp_path / "x.tif")


def test_16_bit_png_gets_the_8_bit_probabilities(checkpoint: Path, tiny_twin, tmp_path: Path) -> None:
    grey = np.asarray(Image.open(next(tiny_twin.root.glob("labeled-images/**/*.jpg"))).convert("L"))
    (tmp_path / "in").mkdir()
    Image.fromarray(grey).save(tmp_path / "in" / "eight.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "in" / "sixteen.png")
    assert (
        main(["predict", str(checkpoint), str(tmp_path / "in"), "--out", str(tmp_path / "p.parquet"), "--workers", "0"])
        == 0
    )
    rows = {Path(r.pop("path")).name: r for r in pq.read_table(tmp_path / "p.parquet").to_pylist()}
    eight, sixteen = rows["eight.png"], rows["sixteen.png"]
    assert eight.pop("label") == sixteen.pop("label")
    assert max(abs(eight[c] - sixteen[c]) for c in eight) < 1e-5


def test_decompression_bomb_is_named_and_skipped(checkpoint: Path, twin_copy: Path, tmp_path: Path, capsys) -> None:
    images = sorted(twin_copy.glob("labeled-images/**/*.jpg"))
    (tmp_path / "in").mkdir()
    shutil.copyfile(images[1], tmp_path / "in" / "good.jpg")
    _bomb_png(tmp_path / "in" / "bomb.png")
    _bomb_jpeg(images[1], tmp_path / "in" / "bomb-too.jpg")
    assert (
        main(["predict", str(checkpoint), str(tmp_path / "in"), "--out", str(tmp_path / "p.parquet"), "--workers", "0"])
        == 0
    )
    err = capsys.readouterr().err
    assert "bomb.png" in err and "bomb-too.jpg" in err and pq.read_table(tmp_path / "p.parquet").num_rows == 1
    _bomb_jpeg(images[0], images[0])
    assert main(["audit", str(twin_copy), "--workers", "1"]) in (0, 1)  # counted as undecodable, the audit goes on
    out, err = capsys.readouterr()
    assert images[0].name in out.replace("\n", "") and "Traceback" not in err
    assert main(["validate", str(twin_copy), "--workers", "1"]) == 1
    out, err = capsys.readouterr()
    flat = out.replace("\n", "")  # rich wraps long lines
    assert images[0].name in flat and "undecodable-image" in flat and "Traceback" not in err
    for bomb in ("bomb.png", "bomb-too.jpg"):
        with pytest.raises(ImageDecodeError, match=f"{bomb}: .*decompression"):
            decode_rgb(tmp_path / "in" / bomb)


# ------------------------------------------------------------------------------------------------ outputs
def test_same_file_names_in_two_folders_keep_their_own_outputs(checkpoint: Path, tiny_twin, tmp_path: Path) -> None:
    images = sorted(tiny_twin.root.glob("labeled-images/**/*.jpg"))
    for site, image in (("site1", images[0]), ("site2", images[-1])):
        (tmp_path / "in" / site).mkdir(parents=True)
        shutil.copyfile(image, tmp_path / "in" / site / "img001.jpg")
    assert (
        main(
            [
                "predict",
                str(checkpoint),
                str(tmp_path / "in"),
                str(tmp_path / "in" / "site1" / "img001.jpg"),
                "--out",
                str(tmp_path / "p.parquet"),
                "--gradcam",
                str(tmp_path / "cam"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 2  # the file named twice is scored once
    assert sorted(p.relative_to(tmp_path / "cam").as_posix() for p in (tmp_path / "cam").rglob("*.png")) == [
        "site1/img001.png",
        "site2/img001.png",
    ]
    shutil.copyfile(images[1], tmp_path / "in" / "site1" / "img001.png")
    assert (
        main(
            [
                "predict",
                str(checkpoint),
                str(tmp_path / "in"),
                "--out",
                str(tmp_path / "q.parquet"),
                "--gradcam",
                str(tmp_path / "cam2"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "q.parquet").exists() and not (tmp_path / "cam2").exists()


# ------------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize(
    ("recipe", "texts"),
    [
        ('tta: "false"\n', ['tta is "false"', "true or false"]),
        ('balanced: "no"\n', ['balanced is "no"', "true or false"]),
        ('epochs: "ten"\n', ['epochs is "ten"', "whole number"]),
        ("input_size: 40.5\n", ["input_size is 40.5", "whole number"]),
        ('lr: "1e-3"\n', ['lr is "1e-3"', "a number"]),
        ("lr: .nan\n", ["lr is NaN", "finite"]),
        ("seed: null\n", ["seed is null", "whole number"]),
        ("model: [a, b]\n", ['model is ["a", "b"]', "a string"]),
        ("recipe: {name: paper}\n", ["recipe is {", "a string"]),
        ("root: /elsewhere\n", ["unknown key 'root'"]),
        ("epochs: 1\nbogus: 2\n", ["unknown key 'bogus'", "known keys:"]),
    ],
    ids=[
        "tta-string",
        "balanced-string",
        "epochs-word",
        "input-size-float",
        "lr-quoted",
        "lr-nan",
        "seed-null",
        "model-list",
        "recipe-nested",
        "root",
        "unknown",
    ],
)
def test_recipe_values_are_type_checked(tiny_twin, tmp_path: Path, capsys, recipe: str, texts: list[str]) -> None:
    (tmp_path / "r.yaml").write_text(recipe)
    assert (
        main(
            [
                "train",
                "classify",
                str(tiny_twin.root),
                "--config",
                str(tmp_path / "r.yaml"),
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "r.yaml" in err and all(text in err for text in texts), err
    assert not (tmp_path / "run").exists()


def test_recipe_numbers_as_yaml_1_2_reads_them(tmp_path: Path) -> None:
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.recipes import read_recipe

    (tmp_path / "r.yaml").write_text("lr: 1e-3\nlogit_tau: 1\ntta: false\nbalanced: no\nweights: null\n")
    assert read_recipe(tmp_path / "r.yaml", ClassifyConfig) == {
        "lr": 0.001,
        "logit_tau": 1.0,
        "tta": False,
        "balanced": False,
        "weights": None,
    }
    packaged = Path(__file__).parents[2] / "src" / "hyperkvasir" / "configs"
    for path in packaged.glob("*.yaml"):  # every shipped recipe passes its own schema
        kind = ClassifyConfig
        if path.stem.endswith("segment"):
            from hyperkvasir.segment.config import SegmentConfig as kind
        assert read_recipe(path, kind)


# ------------------------------------------------------------------------------------------------ CSVs
@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("{a},polyps\n{b}\n", "p.csv:3: 1 fields where the header has 2"),
        ("{a},polyps\n\n{b},polyps,0.5\n", "p.csv:4: 3 fields where the header has 2"),
        ('{a},"polyps\n', "p.csv:2: not a CSV row"),
    ],
    ids=["row-is-only-a-name", "row-with-an-extra-field", "unclosed-quote"],
)
def test_ragged_predictions_csv_names_the_line(tiny_twin, tmp_path: Path, capsys, body: str, text: str) -> None:
    a, b = (p.name for p in sorted(tiny_twin.root.glob("labeled-images/**/*.jpg"))[:2])
    (tmp_path / "p.csv").write_text("file-name,label\n" + body.format(a=a, b=b))
    assert main(["evaluate", "classify", "--predictions", str(tmp_path / "p.csv"), "--root", str(tiny_twin.root)]) == 1
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err, err


def test_mask_that_is_all_white_or_grey_stays_refused(tmp_path: Path) -> None:
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "white.png")
    with pytest.raises(MaskError, match="all white"):
        load_mask(tmp_path / "white.png")
    assert decode_mask(tmp_path / "white.png").min() == 255
