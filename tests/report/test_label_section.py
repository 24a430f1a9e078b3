"""The report's labeling section: the label-issue table from a benchmark and the embedding map from the work dir's
embeddings, each only when its input exists (else the way to get it), on the tiny twin and the real sample."""

from __future__ import annotations

import html as markup
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from hyperkvasir.report import build_report


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    """A private work dir, so embeddings another test kept do not count here."""
    folder = tmp_path / "work"
    monkeypatch.setenv("HYPERKVASIR_WORK_DIR", str(folder))
    return folder


def _section(html: str) -> str:
    return html.split('<h2 id="labeling">')[1].split("<h2>")[0]


def test_without_inputs_the_section_says_how_to_get_them(tiny_twin, work: Path, tmp_path: Path) -> None:
    html = build_report(tiny_twin.root, tmp_path / "report.html").read_text()
    section = _section(html)
    assert "run `hyperkvasir benchmark ROOT --out BENCH`" in section
    assert "run `hyperkvasir embed ROOT`" in section
    assert "<table>" not in section and "<img" not in section
    assert not (tmp_path / "report-figures" / "embedding-map.png").exists()


def test_label_issue_table_and_embedding_map_from_their_inputs(
    tiny_twin, tiny_bench: Path, work: Path, tmp_path: Path
) -> None:
    from hyperkvasir.data.audit import audit
    from hyperkvasir.label.embed import embed_parts
    from hyperkvasir.label.issues import label_issues

    embedded = embed_parts(tiny_twin.root, parts=("labeled",), size=64)
    html = build_report(tiny_twin.root, tmp_path / "report.html", results=tiny_bench).read_text()
    section = _section(html)
    expected = label_issues(tiny_twin.root, tiny_bench)
    assert expected, "the tiny benchmark flags no label: the table would be untested"
    table = section.split("<table>")[1].split("</table>")[0]
    rows = table.split("<tr>")[2:]
    assert len(rows) == min(len(expected), 30)
    for row, issue in zip(rows, expected):
        assert f"<td>{markup.escape(issue['file'])}</td><td>{issue['given']}</td><td>{issue['suggested']}</td>" in row
    assert f"{len(expected)} doubtful labels among" in section
    report = audit(tiny_twin.root)
    in_sets = {f for g in report.duplicate_sets() if len(g.files) > 1 for f in g.files} & set(embedded.paths)
    conflicting = {f for c in report.label_conflicts for f in c["files"]} & set(embedded.paths)
    assert f"{len(embedded.paths):,} labeled images, tf_efficientnet_lite0 (ImageNet weights, 64 px)" in section
    assert f"members of a duplicate set ({len(in_sets)})" in section
    assert f"label conflicts ({len(conflicting)})" in section
    assert "folds of the official 2-fold split" in section
    png = tmp_path / "report-figures" / "embedding-map.png"
    assert png.is_file() and Image.open(png).size[0] > 1000


def test_embeddings_of_a_changed_tree_are_not_mapped(twin_copy: Path, work: Path, tmp_path: Path) -> None:
    from hyperkvasir.label.embed import embed_parts

    embed_parts(twin_copy, parts=("labeled",), size=64)
    embed_parts(twin_copy, parts=("segmented",), size=64)  # another part's embeddings never stand in
    next((twin_copy / "labeled-images").rglob("*.jpg")).unlink()
    html = build_report(twin_copy, tmp_path / "report.html").read_text()
    assert "No embeddings of the labeled images as they are now" in _section(html)
    embed_parts(twin_copy, parts=("labeled",), size=64)
    assert "Embedding map: " in _section(build_report(twin_copy, tmp_path / "again.html").read_text())


def test_a_dev_protocol_benchmark_gives_a_note_not_a_failure(
    tiny_twin, tiny_bench: Path, work: Path, tmp_path: Path
) -> None:
    bench = Path(shutil.copytree(tiny_bench, tmp_path / "bench"))
    results = json.loads((bench / "results.json").read_text())
    (bench / "results.json").write_text(json.dumps(results | {"protocol": "dev"}))
    section = _section(build_report(tiny_twin.root, tmp_path / "report.html", results=bench).read_text())
    assert "Not from these results: --results" in section and "dev-protocol benchmark" in section
    assert "<table>" not in section


def test_embedding_map_of_the_real_sample_marks_the_real_conflict(real_tree: Path, work: Path, tmp_path: Path) -> None:
    from hyperkvasir.label.embed import embed_parts

    embed_parts(real_tree, parts=("labeled",), size=64)
    section = _section(build_report(real_tree, tmp_path / "report.html").read_text())
    assert "675 labeled images" in section and "label conflicts (2)" in section  # the UC grade 2-3 / 2 pair
