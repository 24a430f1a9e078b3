"""Make docs/twin-contact-sheet.jpg: one image per class of a synthetic twin, labelled with its paper letter.

Usage: python docs/contact_sheet.py TWIN_ROOT docs/twin-contact-sheet.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from hyperkvasir.data.imaging import decode_rgb
from hyperkvasir.data.layout import Release
from hyperkvasir.data.taxonomy import CLASSES

TILE = (256, 205)


def contact_sheet(root: Path) -> Image.Image:
    release = Release(root)
    sheet = Image.new("RGB", (TILE[0] * 6, (TILE[1] + 18) * 4), "white")
    for cls in CLASSES:
        first = sorted((release.labeled_dir / cls.path).glob("*.jpg"))[0]
        tile = Image.fromarray(decode_rgb(first, min_size=TILE)).resize(TILE)
        x, y = (cls.index % 6) * TILE[0], (cls.index // 6) * (TILE[1] + 18)
        sheet.paste(tile, (x, y + 18))
        ImageDraw.Draw(sheet).text((x + 4, y + 3), f"{cls.letter} {cls.folder}", fill="black")
    return sheet


if __name__ == "__main__":
    contact_sheet(Path(sys.argv[1])).save(sys.argv[2], quality=85)
