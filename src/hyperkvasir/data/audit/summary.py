"""The audit's summary: one paste-ready paragraph of its figures."""

from __future__ import annotations

from collections import Counter

from hyperkvasir.data.audit.groups import DuplicateGroup
from hyperkvasir.data.audit.report import AuditReport


def summary(report: AuditReport, labeled: int, merged: list[DuplicateGroup]) -> str:
    """A paste-ready paragraph (``merged``: the report's duplicate sets); a part absent from the copy is named,
    never summarised as empty."""
    sentences = []
    if report.unreadable:
        more = len(report.unreadable) - 10
        sentences.append(
            f"{len(report.unreadable):,} {'image does' if len(report.unreadable) == 1 else 'images do'} not decode "
            f"and {'was' if len(report.unreadable) == 1 else 'were'} left out of every count "
            f"({', '.join(report.unreadable[:10])}{f' and {more} more' if more > 0 else ''}); "
            f"`hyperkvasir validate` names each problem."
        )
    method = (
        f"64-bit pHash within {report.threshold} bits confirmed by thumbnail correlation ≥ {report.min_correlation}"
    )
    if labeled:
        sets = report.labeled_sets()
        exact_extra = sum(len(g.labeled_files()) - 1 for g in report.exact_groups)
        leak2, leak5 = report.leakage["fold2"], report.leakage["fold5"]
        sentences.append(
            f"Of {labeled:,} labeled images, {sum(len(g.labeled_files()) for g in sets):,} fall into "
            f"{len(sets):,} duplicate groups ({exact_extra:,} byte-identical redundant copies; near duplicates by "
            f"{method})."
        )
        sentences.append(
            f"{leak2['pairs']:,} confirmed duplicate pairs ({leak2['images']} images, {leak2['groups']} duplicate "
            f"groups) lie across the two folds of the official 2-fold split and {leak5['pairs']:,} "
            f"({leak5['images']} images, {leak5['groups']} groups) across folds of the 5-fold split"
            + (", so test folds are not independent of training folds." if leak2["pairs"] or leak5["pairs"] else ".")
        )
        if report.large_units:
            big = report.large_units[0]
            sentences.append(
                f"{len(report.large_units)} chains of near duplicates are too large to place without skewing a "
                f"class (largest: {big['files']} images, {big['class']} has {big['class_images']}); a split keeps "
                f"each whole."
            )
        if report.label_conflicts:
            pairs = Counter(" vs ".join(sorted(set(c["classes"]))) for c in report.label_conflicts)
            sentences.append(
                f"{len(report.label_conflicts)} duplicate groups carry conflicting labels "
                f"({', '.join(f'{k}: {v}' for k, v in pairs.most_common(3))}): the ground truth contradicts itself."
            )
        flagged = sum(v["scopeguide"] for v in report.scopeguide.values())
        top = [
            (name, v)
            for name, v in sorted(report.scopeguide.items(), key=lambda kv: -kv[1]["share"])
            if v["scopeguide"]
        ][:3]
        if top:
            listed = ", ".join(f"{name} {v['share']:.0%}" for name, v in top)
            sentences.append(
                f"The teal ScopeGuide box appears in {flagged:,} labeled images ({flagged / labeled:.1%}), most "
                f"often in {listed}: a shortcut a classifier "
                f"can learn."
            )
        else:
            sentences.append("No labeled image shows the ScopeGuide box.")
    else:
        sentences.append("The labeled part is not in this copy, so no label, fold or leakage figure applies.")
    corner = report.segmented_corner
    if corner:
        seg = report.overlaps["segmented-in-labeled"]
        own = [g for g in merged if sum(p == "segmented" for p in g.parts) > 1]
        sentences.append(
            f"Of {corner['images']:,} segmented images, {len(own)} duplicate groups hold more than one segmented "
            f"image; {corner['black_box_share']:.0%} hide the lower-left corner under a black box and "
            f"{corner['share']:.0%} show the ScopeGuide box."
            + (f" {seg['exact'] + seg['near']:,} are also labeled images." if labeled else "")
        )
        official = report.kvasir_seg_official
        if official["in_official_lists"]:
            sentences.append(
                f"{official['groups_straddling']} duplicate groups ({official['images_straddling']} images) "
                f"straddle Kvasir-SEG's official 880/120 split."
            )
    if report.images.get("unlabeled"):
        unl = report.overlaps["unlabeled-in-labeled"]
        sentences.append(f"{unl['exact'] + unl['near']:,} of {unl['total']:,} unlabeled images duplicate labeled ones.")
    videos = report.video_duplicates
    if videos.get("exact") or videos.get("metadata") or report.images.get("videos"):
        sentences.append(
            f"Among the videos, {len(videos['exact'])} groups are byte-identical and "
            f"{len(videos['metadata'])} more share resolution, frame count and size."
        )
    return " ".join(sentences)
