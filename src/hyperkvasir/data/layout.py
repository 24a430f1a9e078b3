"""Where each part of a HyperKvasir release lives: the :class:`Release` tree, its parts and its file listings.

Facts and variants come from docs/dataset.md (§1 layout, §2 split files, §1.7/§7 videos). Part locations tolerate
the documented layout variants; listings skip operating-system litter and never read through a link that leaves
the tree (what is left out is reported as :class:`Skipped`). The readers of the tables found here are in tables.py.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from hyperkvasir.errors import DatasetNotFoundError, HyperKvasirError

PARTS = ("labeled", "segmented", "unlabeled", "videos", "splits")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg"})
VIDEO_SUFFIXES = frozenset({".avi", ".mpg", ".mp4"})
SPLIT_FILES = {2: "2_fold_split.csv", 5: "5_fold_split.csv"}
# Files that copies made on macOS/Windows carry and that are never part of the release.
_ROGUE_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


def is_rogue(relpath: Path) -> bool:
    """Operating-system litter (``.DS_Store``, ``__MACOSX/``, ``._x.jpg``) that must be ignored.

    ``relpath`` is relative to the part's folder, so only the release's own folders are looked at.
    """
    return any(_rogue_name(part) for part in relpath.parts)


def _rogue_name(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name.lower() in _ROGUE_NAMES


# ---------------------------------------------------------------------------------------------- release
@dataclass(frozen=True)
class Release:
    """A release tree on disk: finds each part, tolerating the documented layout variants.

    ``Release(root)`` accepts the folder that holds ``labeled-images/`` etc., or the single top-level folder
    the full archive extracts to. Parts that are absent are ``None``; :meth:`require` turns that into an
    actionable error.
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"{root}: not a folder; pass the folder that holds labeled-images/ "
                f"(or create one with `hyperkvasir download {root}`)"
            )
        children = [c for c in root.iterdir() if not is_rogue(Path(c.name))]
        if (
            len(children) == 1
            and children[0].is_dir()
            and (children[0] / "labeled-images").is_dir()
            and within(os.path.realpath(children[0]), os.path.realpath(root))
        ):
            root = children[0]  # the full archive's single top-level folder
        object.__setattr__(self, "root", root)
        if not any(self.part(name) for name in PARTS):
            tree = os.path.realpath(root)
            outside = [c for c in children if c.is_symlink() and not within(os.path.realpath(c), tree)]
            raise DatasetNotFoundError(
                f"{root}: not a HyperKvasir release (no labeled-images/, segmented-images/, unlabeled-images/, "
                f"labeled-videos/ or official_splits/); get it with `hyperkvasir download {root}`"
                + (
                    f" ({outside[0].name} is a link to {os.path.realpath(outside[0])}, outside the tree, and nothing "
                    f"is read through such a link: pass the folder it points at as ROOT)"
                    if outside
                    else ""
                )
            )

    # -- part locations: a folder or file reached through a link that leaves the tree counts as absent
    def inside(self, path: Path) -> bool:
        """Whether ``path``, links resolved, lies in the tree: nothing is read through a link that leaves it."""
        return within(os.path.realpath(path), os.path.realpath(self.root))

    def _dir(self, path: Path) -> Path | None:
        return path if path.is_dir() and self.inside(path) else None

    def _file(self, path: Path) -> Path | None:
        return path if path.is_file() and self.inside(path) else None

    @property
    def labeled_dir(self) -> Path | None:
        return self._dir(self.root / "labeled-images")

    @property
    def image_labels_csv(self) -> Path | None:
        return self._file(self.root / "labeled-images" / "image-labels.csv")

    @property
    def segmented_dir(self) -> Path | None:
        path = self.root / "segmented-images"
        return path if self._dir(path / "images") else None

    @property
    def bounding_boxes_json(self) -> Path | None:
        return self._file(self.root / "segmented-images" / "bounding-boxes.json")

    @property
    def unlabeled_dir(self) -> Path | None:
        # current archives: unlabeled-images/images/; the paper's wording: a subfolder of the image folder
        for path in (self.root / "unlabeled-images" / "images", self.root / "unlabeled-images"):
            if self._dir(path):
                with os.scandir(path) as entries:  # stops at the first image: the folder holds ~100k
                    if any(os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES for e in entries):
                        return path
        return None

    @property
    def videos_dir(self) -> Path | None:
        return self._dir(self.root / "labeled-videos")

    @property
    def video_labels_csv(self) -> Path | None:
        if self.videos_dir is None:
            return None
        found = [p for p in sorted(self.videos_dir.rglob("video-label*.csv")) if self._file(p)]  # or -labeling.csv
        return found[0] if found else None

    @property
    def splits_dir(self) -> Path | None:
        for name in ("official_splits", "splits"):
            path = self.root / name
            if any(self._file(path / f) for f in SPLIT_FILES.values()):
                return path
        return None

    def split_csv(self, k: int) -> Path | None:
        """The official ``k``-fold split CSV (k = 2 or 5) when present."""
        if k not in SPLIT_FILES:
            raise HyperKvasirError(f"no official {k}-fold split; the release has {sorted(SPLIT_FILES)}")
        if self.splits_dir is None:
            return None
        return self._file(self.splits_dir / SPLIT_FILES[k])

    def part(self, name: str) -> Path | None:
        """Folder of a part (one of :data:`PARTS`), or None when absent."""
        return {
            "labeled": lambda: self.labeled_dir,
            "segmented": lambda: self.segmented_dir,
            "unlabeled": lambda: self.unlabeled_dir,
            "videos": lambda: self.videos_dir,
            "splits": lambda: self.splits_dir,
        }[name]()

    def present_parts(self) -> list[str]:
        return [name for name in PARTS if self.part(name) is not None]

    def require(self, name: str) -> Path:
        path = self.part(name)
        if path is None:
            raise DatasetNotFoundError(
                f"{self.root}: the {name} part is missing; get it with "
                f"`hyperkvasir download {self.root} --parts {name}`"
            )
        return path

    # -- file listings (sorted, rogue files skipped)
    def scan(self, part: str, skipped: list[Skipped] | None = None) -> list[tuple[str, os.stat_result]]:
        """(path relative to the root, stat) of every file of a part, by ``os.scandir`` (no Path per file).

        ``part`` is ``labeled``, ``segmented-images``, ``segmented-masks``, ``unlabeled`` or ``videos``. Links that
        stay in the tree are followed (a class folder may be one); links that leave it, point nowhere or loop, and
        entries that are no regular file, are left out and named in ``skipped``.
        """
        where = {
            "labeled": (self.labeled_dir, 4, IMAGE_SUFFIXES),
            "segmented-images": (self.segmented_dir and self.segmented_dir / "images", 1, IMAGE_SUFFIXES),
            "segmented-masks": (self.segmented_dir and self.segmented_dir / "masks", 1, IMAGE_SUFFIXES),
            "unlabeled": (self.unlabeled_dir, 1, IMAGE_SUFFIXES),
            "videos": (self.videos_dir, None, VIDEO_SUFFIXES),
        }
        base, depth, suffixes = where[part]
        if base is None or not self._dir(base):
            return []
        tree = os.path.realpath(self.root)
        above = frozenset(os.path.realpath(p) for p in (base, *base.parents) if within(os.path.realpath(p), tree))
        return sorted(
            _scan(
                str(base),
                str(base.relative_to(self.root)),
                depth,
                suffixes,
                tree,
                [],
                [] if skipped is None else skipped,
                above,
            )
        )

    def skipped(self) -> list[Skipped]:
        """Entries every listing and reader leaves out: links that point nowhere, loop or leave the tree (the
        release's folders and files included), and files that are not regular files."""
        found: list[Skipped] = []
        tree = os.path.realpath(self.root)
        for rel in _RELEASE_ENTRIES:
            path = self.root / rel
            if path.is_symlink():
                target = os.path.realpath(path)
                if not path.exists():
                    found.append(Skipped("broken-link", rel, target))
                elif not within(target, tree):
                    found.append(Skipped("link-outside-tree", rel, target))
        for listing in ("labeled", "segmented-images", "segmented-masks", "unlabeled", "videos"):
            self.scan(listing, found)
        return sorted(set(found), key=lambda s: s.path)

    def labeled_files(self) -> list[Path]:
        """Every image under ``labeled-images/<tract>/<category>/<class>/``."""
        return [self.root / rel for rel, _ in self.scan("labeled")]

    def segmented_pairs(self) -> tuple[list[Path], list[Path]]:
        """(images, masks) under ``segmented-images/`` (either naming: ``cju…`` or UUID)."""
        return (
            [self.root / rel for rel, _ in self.scan("segmented-images")],
            [self.root / rel for rel, _ in self.scan("segmented-masks")],
        )

    def segmented_masks(self) -> dict[str, Path]:
        """Image stem → its mask: a mask pairs with the image of the same file stem (the release's rule)."""
        return {mask.stem: mask for mask in self.segmented_pairs()[1]}

    def unlabeled_files(self) -> list[Path]:
        return [self.root / rel for rel, _ in self.scan("unlabeled")]

    def video_files(self) -> list[Path]:
        return [self.root / rel for rel, _ in self.scan("videos")]


@dataclass(frozen=True)
class Skipped:
    """An entry no listing holds, and why: ``broken-link`` (points nowhere or loops), ``link-outside-tree``,
    ``not-a-file`` (a pipe, socket or device under an image's name) or ``undecodable-name`` (a name that is no
    UTF-8; ``path`` shows its bytes escaped)."""

    code: str
    path: str  # relative to the release root
    target: str  # where the link leads ("" for not-a-file)


# What the release holds at fixed places (relative to the root): a link there that leaves the tree is reported.
_RELEASE_ENTRIES = (
    "labeled-images",
    "labeled-images/image-labels.csv",
    "segmented-images",
    "segmented-images/images",
    "segmented-images/masks",
    "segmented-images/bounding-boxes.json",
    "unlabeled-images",
    "unlabeled-images/images",
    "labeled-videos",
    "official_splits",
    "splits",
    *(f"{folder}/{name}" for folder in ("official_splits", "splits") for name in SPLIT_FILES.values()),
)


def escaped(name: str) -> str:
    """``name`` with the bytes of a file name that are no UTF-8 written as ``\\xff`` (Python carries them as lone
    surrogates, which no UTF-8 writer — Parquet, JSON, a terminal — accepts)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def within(path: str, tree: str) -> bool:
    """Whether the resolved ``path`` is the resolved ``tree`` or lies below it."""
    return path == tree or path.startswith(tree.rstrip(os.sep) + os.sep)


def _scan(
    base: str,
    prefix: str,
    depth: int | None,
    suffixes: frozenset[str],
    tree: str,
    found: list,
    skipped: list,
    ancestors: frozenset[str],
) -> list[tuple[str, os.stat_result]]:
    """Files ``depth`` levels below ``base`` (any depth when None) with a wanted suffix, litter skipped, links
    followed while they stay in ``tree``; what is left out goes to ``skipped``."""
    with os.scandir(base) as entries:
        for entry in entries:
            name = entry.name
            wanted = depth in (None, 1) and name[name.rfind(".") :].lower() in suffixes
            if _rogue_name(name) or not (wanted or depth != 1):
                continue
            rel = f"{prefix}/{name}"
            try:
                info = entry.stat()
            except OSError:  # a dangling or looping link
                skipped.append(Skipped("broken-link", rel, os.path.realpath(entry.path)))
                continue
            descend = depth != 1 and stat.S_ISDIR(info.st_mode)
            if not (descend or wanted):
                continue
            if escaped(name) != name:  # bytes that are no UTF-8: no manifest, CSV or label can hold the name
                skipped.append(Skipped("undecodable-name", escaped(rel), ""))
                continue
            real = os.path.realpath(entry.path) if entry.is_symlink() or descend else ""
            if entry.is_symlink() and not within(real, tree):
                skipped.append(Skipped("link-outside-tree", rel, real))
            elif descend and real in ancestors:  # a folder link back to where the walk came from
                skipped.append(Skipped("broken-link", rel, real))
            elif descend:
                _scan(
                    entry.path,
                    rel,
                    None if depth is None else depth - 1,
                    suffixes,
                    tree,
                    found,
                    skipped,
                    ancestors | {real},
                )
            elif stat.S_ISREG(info.st_mode):
                found.append((rel, info))
            else:
                skipped.append(Skipped("not-a-file", rel, ""))
    return found
