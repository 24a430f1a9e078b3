"""The one table of HyperKvasir's 23 labeled classes and the lookups across its three namings.

The release names each class three ways (see docs/dataset.md §1.2, Borgli et al. 2020 and simula/hyper-kvasir):
the folder name in ``labeled-images/``, the name in the official split CSVs (with its typos: ``hemorroids``,
``oesophagitis-a``, ``short-segment-barretts``, ``normal-cecum`` …) and the README/paper ID used for the
confusion-matrix letters A–W. The paper order (index 0–22) is the sorted split-CSV order except for the six
ulcerative-colitis grades (indices 17–22), so never derive an index with ``sorted()``: use ``ClassInfo.index``.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Literal

from hyperkvasir.errors import UnknownClassError

Tract = Literal["lower-gi-tract", "upper-gi-tract"]
Category = Literal[
    "anatomical-landmarks", "pathological-findings", "quality-of-mucosal-views", "therapeutic-interventions"
]

TRACTS: tuple[Tract, ...] = ("lower-gi-tract", "upper-gi-tract")
CATEGORIES: tuple[Category, ...] = (
    "anatomical-landmarks",
    "pathological-findings",
    "quality-of-mucosal-views",
    "therapeutic-interventions",
)
# `Organ` column of image-labels.csv / video-labels.csv -> tract folder.
ORGAN_TO_TRACT: dict[str, Tract] = {"lower gi": "lower-gi-tract", "upper gi": "upper-gi-tract"}
TRACT_TO_ORGAN: dict[Tract, str] = {"lower-gi-tract": "Lower GI", "upper-gi-tract": "Upper GI"}


@dataclass(frozen=True)
class ClassInfo:
    """One labeled class under all of its names."""

    index: int  # paper/README order, 0-22; the class index of every model in this toolkit
    folder: str  # released folder name, labeled-images/<tract>/<category>/<folder>/
    split_name: str  # name in official_splits/*.csv (typos kept)
    paper_name: str  # README / scripts/generate_confusion_matrix.py ID
    tract: Tract
    category: Category
    released_count: int  # images in the release (official split CSVs)

    @property
    def letter(self) -> str:
        """Confusion-matrix letter of Fig. 8 of the paper (A–W)."""
        return chr(ord("A") + self.index)

    @property
    def path(self) -> str:
        """Folder of this class relative to ``labeled-images/``."""
        return f"{self.tract}/{self.category}/{self.folder}"


_L, _U = "lower-gi-tract", "upper-gi-tract"
_AL, _PF, _QM, _TI = CATEGORIES

# index, folder, split-CSV name, paper/README ID, tract, category, released count
CLASSES: tuple[ClassInfo, ...] = tuple(
    ClassInfo(*row)  # type: ignore[arg-type]
    for row in (
        (0, "barretts", "barretts", "barretts", _U, _PF, 41),
        (1, "bbps-0-1", "bbps-0-1", "bbps-0-1", _L, _QM, 646),
        (2, "bbps-2-3", "bbps-2-3", "bbps-2-3", _L, _QM, 1148),
        (3, "dyed-lifted-polyps", "dyed-lifted-polyps", "dyed-lifted-polyps", _L, _TI, 1002),
        (4, "dyed-resection-margins", "dyed-resection-margins", "dyed-resection-margins", _L, _TI, 989),
        (5, "hemorrhoids", "hemorroids", "hemorroids", _L, _PF, 6),
        (6, "ileum", "ileum", "ileum", _L, _AL, 9),
        (7, "impacted-stool", "impacted-stool", "impacted-stool", _L, _QM, 131),
        (8, "cecum", "normal-cecum", "normal-cecum", _L, _AL, 1009),
        (9, "pylorus", "normal-pylorus", "normal-pylorus", _U, _AL, 999),
        (10, "z-line", "normal-z-line", "normal-z-line", _U, _AL, 932),
        (11, "esophagitis-a", "oesophagitis-a", "oesophagitis-a", _U, _PF, 403),
        (12, "esophagitis-b-d", "oesophagitis-b-d", "oesophagitis-b-d", _U, _PF, 260),
        (13, "polyps", "polyp", "polyp", _L, _PF, 1028),
        (14, "retroflex-rectum", "retroflex-rectum", "retroflex-rectum", _L, _AL, 391),
        (15, "retroflex-stomach", "retroflex-stomach", "retroflex-stomach", _U, _AL, 764),
        (16, "barretts-short-segment", "short-segment-barretts", "short-segment-barretts", _U, _PF, 53),
        (17, "ulcerative-colitis-grade-0-1", "ulcerative-colitis-grade-0-1", "ulcerative-colitis-0-1", _L, _PF, 35),
        (18, "ulcerative-colitis-grade-1-2", "ulcerative-colitis-grade-1-2", "ulcerative-colitis-1-2", _L, _PF, 11),
        (19, "ulcerative-colitis-grade-2-3", "ulcerative-colitis-grade-2-3", "ulcerative-colitis-2-3", _L, _PF, 28),
        (20, "ulcerative-colitis-grade-1", "ulcerative-colitis-grade-1", "ulcerative-colitis-grade-1", _L, _PF, 201),
        (21, "ulcerative-colitis-grade-2", "ulcerative-colitis-grade-2", "ulcerative-colitis-grade-2", _L, _PF, 443),
        (22, "ulcerative-colitis-grade-3", "ulcerative-colitis-grade-3", "ulcerative-colitis-grade-3", _L, _PF, 133),
    )
)

FOLDER_NAMES: tuple[str, ...] = tuple(c.folder for c in CLASSES)
RELEASED_TOTAL = sum(c.released_count for c in CLASSES)  # 10,662
RELEASED_SEGMENTED = 1_000  # Kvasir-SEG pairs (docs/dataset.md §1)
RELEASED_UNLABELED = 99_417
RELEASED_VIDEOS = 373  # rows of video-labels.csv; the paper says 374 (docs/dataset.md §7)


def _normalise(name: str) -> str:
    """Case, spaces and underscores do not distinguish classes in any naming seen in the wild."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _build_aliases() -> dict[str, ClassInfo]:
    aliases: dict[str, ClassInfo] = {}
    for info in CLASSES:
        names = {info.folder, info.split_name, info.paper_name}
        # scripts/generate_confusion_matrix.py misspells "colitis" as "colities"
        names |= {n.replace("colitis", "colities") for n in names}
        for name in names:
            key = _normalise(name)
            if aliases.setdefault(key, info) is not info:
                raise AssertionError(f"taxonomy alias {key!r} names two classes")
    return aliases


_ALIASES = _build_aliases()


@functools.lru_cache(maxsize=1024)
def lookup(name: str) -> ClassInfo:
    """The class behind any of its names (folder, split CSV, paper, image-labels.csv spelling).

    An unknown name raises :class:`UnknownClassError` listing the nearest known names.
    """
    info = _ALIASES.get(_normalise(name))
    if info is None:
        near = difflib.get_close_matches(_normalise(name), list(_ALIASES), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known classes: {', '.join(FOLDER_NAMES)}"
        raise UnknownClassError(f"unknown HyperKvasir class {name!r}{hint}")
    return info


def tract_of_organ(organ: str) -> Tract:
    """``Lower GI`` / ``upper gi`` / ``lower-gi-tract`` → tract folder name."""
    key = organ.strip().lower()
    if key in ORGAN_TO_TRACT:
        return ORGAN_TO_TRACT[key]
    if key in TRACTS:
        return key
    raise UnknownClassError(f"unknown organ {organ!r}; expected one of 'Lower GI', 'Upper GI'")


# ------------------------------------------------------------------------------------------ video findings
# The paper (Borgli et al. 2020, "Labeled videos") lists 30 video classes; the released metadata holds 171
# free-text findings ("lifted polyp", "polyp, resection", "clipping polyp stalk", "watermelon stomach", …).
# `normalise_video_finding` maps a raw string to one class by ordered keyword rules (the first match wins;
# therapeutic actions before the finding they act on) and returns None when nothing matches; callers keep the
# raw string beside it.
# (tract, class) in the paper's order
VIDEO_CLASSES: tuple[tuple[str, str], ...] = (
    ("upper-gi-tract", "z-line"),
    ("upper-gi-tract", "pylorus"),
    ("upper-gi-tract", "retroflex-stomach"),
    ("upper-gi-tract", "barretts"),
    ("upper-gi-tract", "esophagitis"),
    ("upper-gi-tract", "polyps"),
    ("upper-gi-tract", "ulcers"),
    ("upper-gi-tract", "gave"),
    ("upper-gi-tract", "varices"),
    ("upper-gi-tract", "cancer"),
    ("upper-gi-tract", "gastric-banding-perforated"),
    ("upper-gi-tract", "ercp"),
    ("upper-gi-tract", "reduced-view"),
    ("upper-gi-tract", "optimal-view"),
    ("lower-gi-tract", "cecum"),
    ("lower-gi-tract", "polyps"),
    ("lower-gi-tract", "hemorrhoids"),
    ("lower-gi-tract", "colitis"),
    ("lower-gi-tract", "colorectal-cancer"),
    ("lower-gi-tract", "parasites"),
    ("lower-gi-tract", "stenosis"),
    ("lower-gi-tract", "anastomosis"),
    ("lower-gi-tract", "anastomotic-leakage"),
    ("lower-gi-tract", "dyed-lifted-polyp"),
    ("lower-gi-tract", "dyed-resection-margin"),
    ("lower-gi-tract", "snare-resection"),
    ("lower-gi-tract", "clip-placement"),
    ("lower-gi-tract", "self-expanding-stents"),
    ("lower-gi-tract", "bbps-0-1"),
    ("lower-gi-tract", "bbps-2-3"),
)
VIDEO_CLASS_NAMES: tuple[str, ...] = tuple(dict.fromkeys(name for _, name in VIDEO_CLASSES))

_RULES: tuple[tuple[str, str], ...] = (
    (r"leak", "anastomotic-leakage"),
    (r"anastomo", "anastomosis"),
    (r"stent", "self-expanding-stents"),
    (r"clip", "clip-placement"),
    (r"margin", "dyed-resection-margin"),
    (r"lift|lited|stain|stein|dye|chromo", "dyed-lifted-polyp"),
    (r"resect|removal|snare|\bemr\b|retrieval", "snare-resection"),
    (r"bbps\s*[01]\b|bbps 0-1", "bbps-0-1"),
    (r"bbps|normal (colon|mucosa)|stool", "bbps-2-3"),
    (r"coll?itis|inflam|crohn|\bibd\b", "colitis"),
    (r"h(a)?emorrhoid", "hemorrhoids"),
    (r"colorectal|rectal cancer|colon cancer", "colorectal-cancer"),
    (r"cancer|tumou?r|malign", "cancer"),
    (r"worm|parasit", "parasites"),
    (r"stenos", "stenosis"),
    (r"polyp|\blst\b|serrated|adenoma|lipoma", "polyps"),
    (r"c(a)?ecum|appendi", "cecum"),
    (r"z-?line", "z-line"),
    (r"pylor", "pylorus"),
    (r"retroflex", "retroflex-stomach"),
    (r"barret", "barretts"),
    (r"(o)?esophagitis|oesophagitis", "esophagitis"),
    (r"ulc(er|us)", "ulcers"),
    (r"watermelon|\bgave\b|vascular ectasia", "gave"),
    (r"varic", "varices"),
    (r"band", "gastric-banding-perforated"),
    (r"ercp|papil", "ercp"),
    (r"poor quality|not diagnostic|reduced view|bubb", "reduced-view"),
    (r"optimal view", "optimal-view"),
)


def normalise_video_finding(finding: str | None) -> str | None:
    """The video class of a free-text finding, or None when no rule matches (or the finding is empty)."""
    if not finding:
        return None
    text = finding.lower()
    for pattern, name in _RULES:
        if re.search(pattern, text):
            return name
    return None
