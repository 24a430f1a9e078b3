from __future__ import annotations

import pytest

from hyperkvasir.data.taxonomy import CLASSES, RELEASED_TOTAL, lookup, tract_of_organ
from hyperkvasir.errors import UnknownClassError


def test_23_classes_in_paper_order_with_released_counts() -> None:
    assert len(CLASSES) == 23
    assert [c.index for c in CLASSES] == list(range(23))
    assert RELEASED_TOTAL == 10_662
    assert sum(c.released_count for c in CLASSES if c.tract == "lower-gi-tract") == 7_210
    assert sum(c.tract == "lower-gi-tract" for c in CLASSES) == 16


def test_paper_letters_differ_from_sorted_split_names_only_for_colitis() -> None:
    letters = "".join(c.letter for c in CLASSES)
    assert letters == "ABCDEFGHIJKLMNOPQRSTUVW"
    sorted_names = sorted(c.split_name for c in CLASSES)
    differing = [i for i, c in enumerate(CLASSES) if sorted_names[i] != c.split_name]
    assert differing == [18, 19, 20, 21]  # UC 0-1 (17) and grade 3 (22) sit at the same index in both orders
    assert [c.paper_name for c in CLASSES[17:20]] == [
        "ulcerative-colitis-0-1",
        "ulcerative-colitis-1-2",
        "ulcerative-colitis-2-3",
    ]


@pytest.mark.parametrize("info", CLASSES, ids=lambda c: c.folder)
def test_every_naming_round_trips(info) -> None:
    for name in (info.folder, info.split_name, info.paper_name, info.folder.upper(), info.split_name.replace("-", " ")):
        assert lookup(name) is info


def test_release_typos_are_known() -> None:
    assert lookup("hemorroids").folder == "hemorrhoids"
    assert lookup("oesophagitis-a").folder == "esophagitis-a"
    assert lookup("short-segment-barretts").folder == "barretts-short-segment"
    assert lookup("normal-cecum").folder == "cecum"
    assert lookup("ulcerative-colities-grade-3").folder == "ulcerative-colitis-grade-3"
    assert lookup("Polyps").folder == "polyps"


def test_unknown_class_lists_near_matches() -> None:
    with pytest.raises(UnknownClassError, match="did you mean.*hemorrhoids"):
        lookup("hemorhoids")
    with pytest.raises(UnknownClassError, match="known classes"):
        lookup("zzz")


def test_organ_spellings() -> None:
    assert tract_of_organ("Lower GI") == "lower-gi-tract"
    assert tract_of_organ("upper gi") == "upper-gi-tract"
    assert tract_of_organ("upper-gi-tract") == "upper-gi-tract"
    with pytest.raises(UnknownClassError, match="unknown organ"):
        tract_of_organ("Small bowel")
