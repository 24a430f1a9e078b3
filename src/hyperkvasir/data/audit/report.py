"""The audit's report: every figure the audit finds, and the views of its groups that callers ask for."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hyperkvasir.data.audit.groups import DuplicateGroup, merge_groups

_GROUP_FIELDS = ("exact_groups", "near_groups", "labeled_near_groups", "near_units", "labeled_near_units")


@dataclass
class AuditReport:
    threshold: int
    min_correlation: float
    images: dict[str, int]
    exact_groups: list[DuplicateGroup] = field(default_factory=list)
    near_groups: list[DuplicateGroup] = field(default_factory=list)  # reported: leader clusters, no chaining
    labeled_near_groups: list[DuplicateGroup] = field(default_factory=list)  # from labeled-labeled pairs only
    near_units: list[DuplicateGroup] = field(default_factory=list)  # split units: components of every near pair
    labeled_near_units: list[DuplicateGroup] = field(default_factory=list)  # components of labeled-labeled pairs
    labeled_pairs: list[list[str]] = field(default_factory=list)  # every confirmed pair of labeled images
    large_units: list[dict] = field(default_factory=list)  # labeled split units over LARGE_UNIT_SHARE of a class
    label_conflicts: list[dict] = field(default_factory=list)
    leakage: dict[str, dict] = field(default_factory=dict)
    overlaps: dict[str, dict] = field(default_factory=dict)
    scopeguide: dict[str, dict] = field(default_factory=dict)
    scopeguide_files: list[str] = field(default_factory=list)
    black_box_files: list[str] = field(default_factory=list)
    segmented_corner: dict[str, float] = field(default_factory=dict)
    kvasir_seg_official: dict = field(default_factory=dict)
    per_class: dict[str, dict] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    video_duplicates: dict[str, list[list[str]]] = field(default_factory=dict)
    summary: str = ""

    def duplicate_sets(self) -> list[DuplicateGroup]:
        """Every exact and near group merged (union-find): files linked by any evidence share one set."""
        return merge_groups(self.exact_groups + self.near_groups)

    def labeled_sets(self) -> list[DuplicateGroup]:
        """Sets of two or more labeled images linked by evidence between labeled images alone (byte copies,
        confirmed near pairs): what a fold must keep together and where labels can conflict. An unlabeled or
        segmented frame that resembles two labeled images does not join them."""
        return merge_groups(self._labeled_exact() + self.labeled_near_groups)

    def split_units(self) -> list[DuplicateGroup]:
        """What a split must keep whole, over every part: connected components of all evidence (byte copies and
        every confirmed near pair), however long the chain. Not for reading: a slow pan becomes one unit."""
        return merge_groups(self.exact_groups + self.near_units)

    def labeled_split_units(self) -> list[DuplicateGroup]:
        """:meth:`split_units` of the labeled images from evidence between labeled images alone: what folds and
        validation carve-outs keep whole."""
        return merge_groups(self._labeled_exact() + self.labeled_near_units)

    def _labeled_exact(self) -> list[DuplicateGroup]:
        """Byte-copy groups restricted to their labeled images, where two or more remain."""
        exact = [g.labeled_members() for g in self.exact_groups]
        return [g for g in exact if len(g.files) > 1]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, fields: dict) -> AuditReport:
        """The report :meth:`to_json` wrote."""
        groups = {name: [DuplicateGroup(**group) for group in fields[name]] for name in _GROUP_FIELDS}
        return cls(**{**fields, **groups})
