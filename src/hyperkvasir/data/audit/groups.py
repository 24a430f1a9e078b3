"""Grouping confirmed evidence, in two notions kept apart (docs/design.md, "Leakage").

* **Reported groups** (:func:`near_clusters`): leader clusters, every member a confirmed pair of its leader, so a
  group cannot chain; what a person reads and where label conflicts are looked for.
* **Split units** (:func:`pair_components`): connected components of every confirmed pair, however long the chain;
  what a split keeps whole.

Either is computed over every part and from pairs of labeled images alone, and merged with byte copies by
union-find (:func:`merge_groups`); nothing is overwritten.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hyperkvasir.data.audit.search import confirmed_near_pairs

_DISTANCE_SAMPLE = 512  # members whose pairwise distances bound a group's reported max_distance


@dataclass
class DuplicateGroup:
    kind: str  # exact | near | merged (exact and near evidence joined by union-find)
    files: list[str]
    parts: list[str]
    classes: list[str | None]
    fold2: list[int | None]
    fold5: list[int | None]
    max_distance: int = 0

    def labeled_files(self) -> list[int]:
        return [i for i, part in enumerate(self.parts) if part == "labeled"]

    def labeled_members(self) -> DuplicateGroup:
        """This group restricted to its labeled images."""
        keep = self.labeled_files()
        return DuplicateGroup(
            self.kind,
            [self.files[i] for i in keep],
            [self.parts[i] for i in keep],
            [self.classes[i] for i in keep],
            [self.fold2[i] for i in keep],
            [self.fold5[i] for i in keep],
            self.max_distance,
        )


def merge_groups(groups: list[DuplicateGroup]) -> list[DuplicateGroup]:
    """Union-find over the files of ``groups``; each connected set becomes one ``merged`` group."""
    parent: dict[str, str] = {}
    rows: dict[str, tuple] = {}
    distance: dict[str, int] = defaultdict(int)

    def find(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for group in groups:
        for i, path in enumerate(group.files):
            rows[path] = (group.parts[i], group.classes[i], group.fold2[i], group.fold5[i])
            parent[find(path)] = find(group.files[0])
    for group in groups:
        root = find(group.files[0])
        distance[root] = max(distance[root], group.max_distance)
    members: dict[str, list[str]] = defaultdict(list)
    for path in rows:
        members[find(path)].append(path)
    merged = []
    for root, paths in members.items():
        paths.sort()
        parts, classes, fold2, fold5 = (list(column) for column in zip(*(rows[p] for p in paths)))
        merged.append(DuplicateGroup("merged", paths, parts, classes, fold2, fold5, distance[find(root)]))
    return sorted(merged, key=lambda g: g.files)


@dataclass
class Evidence:
    """What :func:`collect_evidence` finds: the report's groups, units and labeled pairs."""

    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]
    labeled_near: list[DuplicateGroup]
    near_units: list[DuplicateGroup]
    labeled_near_units: list[DuplicateGroup]
    labeled_pairs: list[list[str]]


def collect_evidence(rows: list[dict], features: dict[str, dict], threshold: int, min_correlation: float) -> Evidence:
    """Exact groups; near groups (reported, leader clusters) and near units (split units, whole components) over
    every part and from pairs of labeled images alone (so two labeled images are never grouped because both
    resemble one unlabeled frame); and every confirmed pair of labeled images, by path."""
    by_sha: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_sha[row["sha256"]].append(row)

    def group(kind: str, members: list[dict], distance: int = 0) -> DuplicateGroup:
        members = sorted(members, key=lambda r: r["path"])
        return DuplicateGroup(
            kind,
            [r["path"] for r in members],
            [r["part"] for r in members],
            [r["class"] for r in members],
            [r["fold2"] for r in members],
            [r["fold5"] for r in members],
            distance,
        )

    exact = [group("exact", members) for members in by_sha.values() if len(members) > 1]
    shas = [sha for sha in by_sha if features.get(sha, {}).get("phash") is not None]
    hashes = np.asarray([features[sha]["phash"] for sha in shas], dtype=np.uint64)
    pairs = confirmed_near_pairs(hashes, [features[sha]["thumbnail"] for sha in shas], threshold, min_correlation)
    labeled = np.asarray([any(r["part"] == "labeled" for r in by_sha[sha]) for sha in shas], bool)

    def near_groups(clusters: list[list[int]], keep: Callable[[dict], bool]) -> list[DuplicateGroup]:
        found = []
        for indices in clusters:
            members = [row for i in indices for row in by_sha[shas[i]] if keep(row)]
            sub = hashes[indices[:_DISTANCE_SAMPLE]]  # a bounded sample of the distances
            found.append(group("near", members, int(np.bitwise_count(sub[:, None] ^ sub[None, :]).max())))
        return sorted(found, key=lambda g: g.files)

    def is_labeled(row: dict) -> bool:
        return row["part"] == "labeled"

    labeled_pairs = pairs[labeled[pairs[:, 0]] & labeled[pairs[:, 1]]] if len(pairs) else pairs
    path_pairs = [
        [a["path"], b["path"]]
        for i, j in labeled_pairs
        for a in by_sha[shas[i]]
        if is_labeled(a)
        for b in by_sha[shas[j]]
        if is_labeled(b)
    ]
    for g in exact:
        members = [path for path, part in zip(g.files, g.parts) if part == "labeled"]
        path_pairs += [[a, b] for a, b in itertools.combinations(members, 2)]
    return Evidence(
        exact=sorted(exact, key=lambda g: g.files),
        near=near_groups(near_clusters(len(shas), pairs), lambda row: True),
        labeled_near=near_groups(near_clusters(len(shas), labeled_pairs), is_labeled),
        near_units=near_groups(pair_components(len(shas), pairs), lambda row: True),
        labeled_near_units=near_groups(pair_components(len(shas), labeled_pairs), is_labeled),
        labeled_pairs=sorted(path_pairs),
    )


def near_clusters(count: int, pairs: np.ndarray) -> list[list[int]]:
    """Near-duplicate groups that cannot chain: within a group every member is a confirmed near pair of the
    group's leader, so any two members are within twice the threshold (Hamming distance obeys the triangle
    inequality), however long a run of slowly changing frames links them.

    A connected component of confirmed pairs is kept whole when every member pairs with one leader (the common
    case: a few copies of one picture); otherwise it is cut by leader clustering, leaders taken by decreasing
    number of pairs, each member joining the first leader it pairs with. A leader left alone (all its pairs
    joined other leaders) is kept as a pair with its first neighbour, so no near pair is lost; merged with that
    neighbour's group (``duplicate_sets``) it sits within three times the threshold of every member, never more,
    because such a leader has no members of its own. Cost grows with the pairs, not with m².
    """
    if not len(pairs):
        return []
    graph = _pair_graph(count, pairs)
    degree = np.asarray((graph > 0).sum(1)).ravel()
    clusters: list[list[int]] = []
    for members in _components(graph, pairs):
        leader_of: dict[int, int] = {}
        for node in sorted(members, key=lambda n: (-degree[n], n)):
            if node in leader_of:
                continue
            leader_of[node] = node
            for neighbour in graph.indices[graph.indptr[node] : graph.indptr[node + 1]]:
                leader_of.setdefault(int(neighbour), node)
        by_leader: dict[int, list[int]] = defaultdict(list)
        for node, leader in leader_of.items():
            by_leader[leader].append(node)
        for leader, group in by_leader.items():
            if len(group) > 1:
                clusters.append(sorted(group))
            else:  # every pair of this leader joined another leader: keep one pair, lose no evidence
                clusters.append(sorted([leader, int(graph.indices[graph.indptr[leader]])]))
    return clusters


def pair_components(count: int, pairs: np.ndarray) -> list[list[int]]:
    """Split units: connected components of the confirmed pairs, kept whole however long the chain, so no
    confirmed pair can be cut apart by a split (reported groups, :func:`near_clusters`, cut chains)."""
    return _components(_pair_graph(count, pairs), pairs) if len(pairs) else []


def _pair_graph(count: int, pairs: np.ndarray):
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count)).tocsr()
    return graph + graph.T


def _components(graph, pairs: np.ndarray) -> list[list[int]]:
    """The connected components (sorted index lists) of the nodes that appear in ``pairs``."""
    _, labels = connected_components(graph, directed=False)
    components: dict[int, list[int]] = defaultdict(list)
    for index in np.unique(pairs):
        components[int(labels[index])].append(int(index))
    return list(components.values())
