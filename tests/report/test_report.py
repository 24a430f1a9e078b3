from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from hyperkvasir.cli import main
from hyperkvasir.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_for_a_faulty_twin(faulty_twin, tmp_path: Path) -> None:
    path = build_report(faulty_twin.root, tmp_path / "report.html")
    html = path.read_text()
    assert "Validation findings" in html and "mask-size-mismatch" in html
    assert "https://" not in html.split("<body>")[1].split("plotly")[0]  # nothing fetched before the charts
    assert html.count("data:image/png;base64,") >= 10
    figures = {p.name for p in (tmp_path / "report-figures").glob("*.png")}
    assert {
        "hierarchy.png",
        "folds-2.png",
        "folds-5.png",
        "folds-grouped-2.png",
        "samples.png",
        "scopeguide.png",
        "duplicates.png",
        "overlays.png",
        "video-findings.png",
        "label-conflicts.png",
    } <= figures
    assert "Label conflicts: the same picture under two classes" in html


def test_report_with_results(tiny_twin, tmp_path: Path) -> None:
    from hyperkvasir.classify.benchmark import run_benchmark
    from hyperkvasir.classify.config import ClassifyConfig

    base = ClassifyConfig(
        root=str(tiny_twin.root),
        model="test_efficientnet",
        epochs=1,
        input_size=32,
        batch_size=8,
        workers=0,
        pretrained=False,
    )
    run_benchmark(tiny_twin.root, ["test_efficientnet"], tmp_path / "bench", base=base)
    assert (
        main(["report", str(tiny_twin.root), "--out", str(tmp_path / "r.html"), "--results", str(tmp_path / "bench")])
        == 0
    )
    html = (tmp_path / "r.html").read_text()
    assert "Benchmark results" in html and "Pre-Trained DenseNet-161" in html and "Per-class F1" in html
    assert (tmp_path / "r-figures" / "confusion-test_efficientnet-test-fold-0.png").is_file()
    assert (tmp_path / "r-figures" / "f1-test_efficientnet-mean.png").is_file()
    assert (tmp_path / "r-figures" / "gradcam-corner.png").is_file()  # where the model looks on ScopeGuide frames
    assert "of the heat falls in the lower-left corner region" in html
    assert "Shortcuts beside the results" in html and "sees only the lower-left corner" in html
    assert 'id="error-analysis"' in html and "Most confident mistakes" in html and "expected calibration error" in html
    assert (
        "Classwise calibration" in html
        and "classwise ECE" in html
        and (tmp_path / "r-figures" / "reliability.png").is_file()
    )
    assert list((tmp_path / "r-figures").glob("confusion-[0-9]*-[0-9]*.png"))  # a confusion pair with its Grad-CAM
    if CHROMIUM:  # the error analysis is in the DOM a browser builds
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=5000",
            f"--user-data-dir={tmp_path / 'profile'}",
        ]
        dump = subprocess.run(
            [CHROMIUM, *flags, "--dump-dom", (tmp_path / "r.html").as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert 'id="error-analysis"' in dump.stdout and "Most confident mistakes" in dump.stdout
    assert html.count("<table>") >= 2  # the results table and the per-class table, each its own


@pytest.mark.skipif(CHROMIUM is None, reason="chromium absent (apt-get install chromium): browser test skipped")
def test_report_renders_offline_in_chromium(tiny_twin, tmp_path: Path) -> None:
    path = build_report(tiny_twin.root, tmp_path / "report.html")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
        "--virtual-time-budget=5000",
    ]
    dump = subprocess.run(
        [CHROMIUM, *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Class hierarchy" in dump.stdout
    assert "main-svg" in dump.stdout, "plotly drew the sunburst offline"
    console_errors = [
        line
        for line in dump.stderr.splitlines()
        if "CONSOLE" in line and "ERROR" in line.upper() and "report.html" in line
    ]
    assert console_errors == []
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=120)
    image = Image.open(shot).convert("L")
    histogram = image.histogram()
    assert max(histogram) / sum(histogram) < 0.95, "the screenshot is not blank"
    json.dumps({"screenshot": str(shot)})
