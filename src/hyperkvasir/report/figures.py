"""The report's figures: matplotlib PNGs (saved beside the HTML and embedded in it) and thumbnail grids."""

from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from hyperkvasir.data.imaging import (  # noqa: E402
    binarise_mask,
    decode_mask,
    decode_rgb,
)
from hyperkvasir.data.taxonomy import CLASSES  # noqa: E402
from hyperkvasir.outputs import atomic_write  # noqa: E402


class FigureSink:
    """Writes each figure as ``<folder>/<name>.png`` and hands back a data URI for the HTML."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.saved: list[Path] = []

    def png(self, name: str, data: bytes) -> str:
        path = self.folder / f"{name}.png"
        with atomic_write(path) as handle:
            handle.write(data)
        self.saved.append(path)
        return "data:image/png;base64," + base64.b64encode(data).decode()

    def figure(self, name: str, fig) -> str:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        return self.png(name, buffer.getvalue())

    def image(self, name: str, image: Image.Image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return self.png(name, buffer.getvalue())


def _short(folder: str) -> str:
    return folder.replace("ulcerative-colitis-grade-", "UC ").replace("dyed-", "dyed ")


def hierarchy_rings(counts: dict[str, int]):
    """Tract → category → class as nested rings (the PNG twin of the interactive sunburst)."""
    fig, ax = plt.subplots(figsize=(7, 7))
    classes = [c for c in CLASSES if counts.get(c.folder)]
    classes.sort(key=lambda c: (c.tract, c.category, c.folder))
    sizes = [counts[c.folder] for c in classes]
    tracts = Counter()
    categories = Counter()
    for c in classes:
        tracts[c.tract] += counts[c.folder]
        categories[(c.tract, c.category)] += counts[c.folder]
    cmap = plt.get_cmap("tab20")
    ax.pie(
        list(tracts.values()),
        radius=0.45,
        labels=[t.replace("-gi-tract", " GI") for t in tracts],
        labeldistance=0.35,
        colors=[cmap(i * 2) for i in range(len(tracts))],
        wedgeprops={"width": 0.45},
    )
    ax.pie(
        list(categories.values()),
        radius=0.75,
        colors=[cmap(i + 4) for i in range(len(categories))],
        wedgeprops={"width": 0.3, "edgecolor": "white"},
    )
    ax.pie(
        sizes,
        radius=1.05,
        labels=[_short(c.folder) for c in classes],
        labeldistance=1.05,
        textprops={"fontsize": 6},
        colors=[cmap(c.index % 20) for c in classes],
        wedgeprops={"width": 0.3, "edgecolor": "white"},
    )
    ax.set_title("labeled images: tract → category → class")
    return fig


def fold_balance(folds: dict[str, dict[str, int]], title: str):
    """Images per class in each fold of a split scheme (grouped horizontal bars)."""
    names = [c.folder for c in CLASSES]
    fold_ids = sorted({f for per in folds.values() for f in per}, key=int)
    fig, ax = plt.subplots(figsize=(8, 7))
    height = 0.8 / max(len(fold_ids), 1)
    for i, fold in enumerate(fold_ids):
        ax.barh(
            np.arange(len(names)) + i * height,
            [folds.get(n, {}).get(fold, 0) for n in names],
            height,
            label=f"fold {fold}",
        )
    ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2, [_short(n) for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title(title)
    ax.legend()
    return fig


def bars(labels: list[str], values: list[float], title: str, xlabel: str):
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(labels) + 1)))
    ax.barh(range(len(labels)), values, color="#3b7dd8")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def histogram(values: list[float], title: str, xlabel: str, bins: int = 20):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(values, bins=bins, color="#3b7dd8")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return fig


def scatter(x: list[float], y: list[float], title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(x, y, s=10, alpha=0.6)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def thumbnail(path: Path, size: int = 96) -> Image.Image:
    """A small RGB thumbnail through the one decoder; an undecodable file becomes a labelled grey tile."""
    try:
        rgb = decode_rgb(path, min_size=(size, size))
        image = Image.fromarray(rgb)
        image.thumbnail((size, size))
        return image
    except ValueError:
        tile = Image.new("RGB", (size, size), (90, 90, 90))
        ImageDraw.Draw(tile).text((4, size // 2 - 6), "undecodable", fill="white")
        return tile


def grid(rows: list[tuple[str, list[Image.Image]]], size: int = 96, label_width: int = 170) -> Image.Image:
    """Rows of thumbnails, each with a caption on the left."""
    columns = max((len(images) for _, images in rows), default=1)
    sheet = Image.new("RGB", (label_width + columns * (size + 4), max(1, len(rows)) * (size + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (caption, images) in enumerate(rows):
        y = r * (size + 4)
        draw.text((4, y + size // 2 - 6), caption[:28], fill="black")
        for c, image in enumerate(images):
            sheet.paste(image, (label_width + c * (size + 4), y))
    return sheet


def overlay(
    image_path: Path, mask_path: Path, boxes: list[tuple[float, float, float, float]], size: int = 160
) -> Image.Image:
    """Image with its mask outline (green) and its boxes (yellow)."""
    rgb = decode_rgb(image_path)
    mask = binarise_mask(decode_mask(mask_path))
    image = Image.fromarray(rgb)
    if mask.shape == rgb.shape[:2]:
        edge = mask ^ np.roll(mask, 1, 0) | mask ^ np.roll(mask, 1, 1)
        pixels = np.asarray(image).copy()
        pixels[edge] = (0, 255, 0)
        image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.rectangle(box, outline=(255, 220, 0), width=max(2, image.width // 200))
    image.thumbnail((size, size))
    return image


def embedding_map(
    points: np.ndarray, classes: list[str], folds: list[str], duplicate: np.ndarray, conflict: np.ndarray, title: str
):
    """Two panels of the same 2-D projection, coloured by class and by fold; members of duplicate sets ringed in
    black, images of label conflicts crossed in red (what a reviewer looks at first)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), sharex=True, sharey=True)
    for ax, values, name in ((axes[0], classes, "class"), (axes[1], folds, "fold")):
        kinds = sorted(set(values), key=_class_order)
        cmap = plt.get_cmap("tab10" if len(kinds) <= 10 else "tab20")
        for n, value in enumerate(kinds):
            chosen = np.asarray([v == value for v in values])
            ax.scatter(
                points[chosen, 0],
                points[chosen, 1],
                s=9,
                alpha=0.7,
                color=cmap(n % 20),
                label=f"{_short(value)} ({int(chosen.sum())})",
            )
        if duplicate.any():
            ax.scatter(
                points[duplicate, 0],
                points[duplicate, 1],
                s=40,
                facecolors="none",
                edgecolors="black",
                linewidths=0.8,
                label=f"in a duplicate set ({int(duplicate.sum())})",
            )
        if conflict.any():
            ax.scatter(
                points[conflict, 0],
                points[conflict, 1],
                s=70,
                marker="x",
                color="red",
                linewidths=1.6,
                label=f"label conflict ({int(conflict.sum())})",
            )
        ax.set_title(f"coloured by {name}")
        ax.legend(fontsize=6, markerscale=1.2, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


def _class_order(value: str) -> tuple[int, str]:
    """Classes in taxonomy order, anything else (folds) by name."""
    known = {c.folder: c.index for c in CLASSES}
    return known.get(value, len(CLASSES)), value
