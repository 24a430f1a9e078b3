"""The labeling loop's commands on the tiny twin and the real sample: embed, similar, label-issues, to-label,
each with the hostile inputs a user will give them."""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperkvasir.cli import main


@pytest.fixture
def segment_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint the toolkit recognises as one of the segmentation task."""
    path = tmp_path / "segment.ckpt"
    torch.save({"hyper_parameters": {"task": "segment", "config": {}}, "state_dict": {}}, path)
    return path


def _polyp_copies(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "segmented-images" / "images").glob("*.jpg"))


# ----------------------------------------------------------------------------------------------------- embed
def test_embed_is_kept_in_the_work_dir_and_resumes_after_an_interruption(
    twin_copy: Path, classify_checkpoint: Path, monkeypatch, capsys
) -> None:
    from hyperkvasir.label import embed as module

    monkeypatch.setattr(module, "CHUNK", 16)
    real, calls, armed = module._Network.embed, [], [True]

    def interrupted(self, *args):
        calls.append(1)
        if armed and len(calls) == 3:  # Ctrl-C while the third chunk is embedded
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(module._Network, "embed", interrupted)
    assert main(["embed", str(twin_copy), "--checkpoint", str(classify_checkpoint)]) == 130
    folder = twin_copy / ".hyperkvasir" / "embeddings"
    kept = lambda: [p.name for p in folder.glob("*.npz") if not p.name.startswith(".")]  # noqa: E731
    assert len(list(folder.glob(".*.chunk-*.npz"))) == 2 and not kept()
    calls.clear()
    armed.clear()
    capsys.readouterr()
    assert main(["embed", str(twin_copy), "--checkpoint", str(classify_checkpoint), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    chunks = -(-summary["images"] // 16)
    assert len(calls) == chunks - 2  # only the chunks the interruption left undone
    assert len(kept()) == 1
    assert not list(folder.glob(".*.chunk-*.npz"))
    paths, vectors = module.embeddings(twin_copy, checkpoint=classify_checkpoint)
    assert len(calls) == chunks - 2  # read back, not computed again
    monkeypatch.setattr(module._Network, "embed", real)
    shutil.rmtree(folder)
    fresh_paths, fresh = module.embeddings(twin_copy, checkpoint=classify_checkpoint)
    assert paths == fresh_paths and np.allclose(vectors, fresh, atol=1e-5)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert all(p.startswith("labeled-images/") and (twin_copy / p).is_file() for p in paths)


def test_embed_names_undecodable_images_and_embeds_the_rest(twin_copy: Path, classify_checkpoint: Path, capsys) -> None:
    broken = next((twin_copy / "labeled-images").rglob("*.jpg"))
    broken.write_bytes(broken.read_bytes()[:200])
    assert main(["embed", str(twin_copy), "--checkpoint", str(classify_checkpoint), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["undecodable"] == [broken.relative_to(twin_copy).as_posix()]
    assert "1 images do not decode" in captured.err


def test_embed_with_the_offline_imagenet_backbone(tiny_twin, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "--work-dir",
                str(tmp_path / "work"),
                "embed",
                str(tiny_twin.root),
                "--part",
                "segmented",
                "--part",
                "segmented",
                "--size",
                "64",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == len(tiny_twin.segmented) and summary["dimensions"] == 1280


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--part", "nope"], "--part nope: choose from labeled, segmented, unlabeled, videos"),
        (["--part", "videos"], "--part videos embeds the frames of `hyperkvasir video frames"),
        (["--size", "8"], "--size must be between 16 and 2048"),
        (["--model", "nope"], "--model nope: unknown"),
    ],
)
def test_embed_refuses_bad_options(tiny_twin, tmp_path: Path, capsys, flags: list[str], text: str) -> None:
    assert main(["--work-dir", str(tmp_path / "w"), "embed", str(tiny_twin.root), *flags]) == 2
    assert text in capsys.readouterr().err


def test_embed_refuses_a_checkpoint_of_another_task_or_size(
    tiny_twin, classify_checkpoint: Path, segment_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    work = ["--work-dir", str(tmp_path / "w")]
    assert main([*work, "embed", str(tiny_twin.root), "--checkpoint", str(segment_checkpoint)]) == 2
    assert "a segment checkpoint, not a classify one" in capsys.readouterr().err
    assert main([*work, "embed", str(tiny_twin.root), "--checkpoint", str(classify_checkpoint), "--size", "64"]) == 2
    assert "trained at 32 px" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- similar
def test_similar_finds_the_labeled_copy_of_a_segmented_polyp(tiny_twin, classify_checkpoint: Path, capsys) -> None:
    queries = _polyp_copies(tiny_twin.root)[:2]
    assert (
        main(
            [
                "similar",
                str(tiny_twin.root),
                "--query",
                *queries,
                "-k",
                "3",
                "--checkpoint",
                str(classify_checkpoint),
                "--json",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert list(found) == queries
    for query, near in found.items():
        assert len(near) == 3 and [n["distance"] for n in near] == sorted(n["distance"] for n in near)
        assert near[0]["file"].endswith("/polyps/" + Path(query).name) and near[0]["distance"] < 1e-4


def test_similar_never_returns_the_query_itself(tiny_twin, classify_checkpoint: Path) -> None:
    from hyperkvasir.label.neighbours import similar

    labeled = (tiny_twin.root / "labeled-images").rglob("*.jpg")
    query = sorted(p.relative_to(tiny_twin.root).as_posix() for p in labeled)[0]
    found = similar(tiny_twin.root, [str(tiny_twin.root / query)], 4, checkpoint=classify_checkpoint)
    assert list(found) == [query] and len(found[query]) == 4 and query not in {f for f, _ in found[query]}


@pytest.mark.parametrize(
    "query, k, text",
    [
        ("labeled-images/nope.jpg", "3", "--query labeled-images/nope.jpg: no such image in"),
        ("/etc/hostname", "3", "--query /etc/hostname: not a file of the tree"),
        ("../outside.jpg", "3", "not a file of the tree"),
        (None, "0", "-k must be at least 1"),
    ],
)
def test_similar_refuses_unknown_queries(tiny_twin, classify_checkpoint: Path, capsys, query, k, text) -> None:
    query = query or _polyp_copies(tiny_twin.root)[0]
    assert (
        main(["similar", str(tiny_twin.root), "--query", query, "-k", k, "--checkpoint", str(classify_checkpoint)]) == 2
    )
    assert text in capsys.readouterr().err


def test_similar_on_real_kvasir_seg_finds_the_labeled_copies(
    real_tree: Path, real_audit, tmp_path: Path, capsys
) -> None:
    copies = {}
    for group in real_audit.duplicate_sets():
        labeled = {f for f, p in zip(group.files, group.parts) if p == "labeled"}
        copies |= {f: labeled for f, p in zip(group.files, group.parts) if p == "segmented" and labeled}
    assert copies, "the real sample holds Kvasir-SEG originals that are copies of labeled polyps"
    queries = sorted(copies)[:5]
    assert (
        main(
            [
                "--work-dir",
                str(tmp_path / "w"),
                "similar",
                str(real_tree),
                "--query",
                *queries,
                "-k",
                "5",
                "--size",
                "96",
                "--json",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert all(copies[q] & {n["file"] for n in found[q]} for q in queries)


# ---------------------------------------------------------------------------------------------- label-issues
def test_label_issues_ranks_out_of_fold_doubts(tiny_twin, tiny_bench: Path, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "label-issues",
                str(tiny_twin.root),
                "--results",
                str(tiny_bench),
                "--json",
                "--out",
                str(tmp_path / "issues.csv"),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"file", "given", "suggested", "score", "reason", "grade_steps"} <= set(rows[0])
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    for row in rows:
        assert (tiny_twin.root / row["file"]).parent.name == row["given"] != row["suggested"]
        uc = row["given"].startswith("ulcerative") and row["suggested"].startswith("ulcerative")
        assert (row["grade_steps"] is not None) == uc
    with open(tmp_path / "issues.csv", newline="") as handle:
        assert [r["file"] for r in csv.DictReader(handle)] == [r["file"] for r in rows]


def test_label_issues_merges_a_duplicate_filed_under_another_class(twin_copy: Path, tiny_bench: Path, capsys) -> None:
    polyp = sorted((twin_copy / "labeled-images").rglob("polyps/*.jpg"))[0]
    cecum = next((twin_copy / "labeled-images").rglob("cecum"))
    shutil.copyfile(polyp, cecum / "0000copy-of-a-polyp.jpg")
    assert main(["label-issues", str(twin_copy), "--results", str(tiny_bench), "--json"]) == 0
    captured = capsys.readouterr()
    ranked = json.loads(captured.out)
    rows = {r["file"]: r for r in ranked}
    copy = (cecum / "0000copy-of-a-polyp.jpg").relative_to(twin_copy).as_posix()
    assert rows[copy]["suggested"] == "polyps" and "duplicate filed as polyps" in rows[copy]["reason"]
    assert rows[copy]["score"] is None  # no fold model scored it: listed, unscored
    original = polyp.relative_to(twin_copy).as_posix()
    assert [r["file"] for r in ranked[:2]] == [original, copy]  # the audit's certain evidence first
    assert rows[original]["suggested"] == "cecum" and "duplicate filed as cecum" in rows[original]["reason"]
    assert "1 labeled images have no out-of-fold probability" in captured.err


def test_label_issues_refuses_results_of_another_tree(faulty_twin, tiny_bench: Path, capsys) -> None:
    assert main(["label-issues", str(faulty_twin.root), "--results", str(tiny_bench)]) == 1
    assert "results of another tree" in capsys.readouterr().err


def test_label_issues_refuses_missing_or_broken_predictions(
    tiny_twin, tiny_bench: Path, tmp_path: Path, capsys
) -> None:
    bench = Path(shutil.copytree(tiny_bench, tmp_path / "bench"))
    predictions = bench / "test_efficientnet" / "test-fold-1" / "predictions-test.csv"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join([lines[0], lines[1].replace(",0.", ",x.", 1), *lines[2:]]) + "\n")
    assert main(["label-issues", str(tiny_twin.root), "--results", str(bench)]) == 1
    assert f"{predictions}:2: a probability that is not a number" in capsys.readouterr().err
    predictions.unlink()
    assert main(["label-issues", str(tiny_twin.root), "--results", str(bench)]) == 1
    assert f"{predictions}: missing predictions of a benchmark run" in capsys.readouterr().err


def test_label_issues_refuses_a_folder_without_test_protocol_results(
    tiny_twin, tiny_bench: Path, tmp_path: Path, capsys
) -> None:
    assert main(["label-issues", str(tiny_twin.root), "--results", str(tmp_path)]) == 2
    assert "no results.json there" in capsys.readouterr().err
    bench = Path(shutil.copytree(tiny_bench, tmp_path / "bench"))
    results = json.loads((bench / "results.json").read_text())
    (bench / "results.json").write_text(json.dumps(results | {"protocol": "dev"}))
    assert main(["label-issues", str(tiny_twin.root), "--results", str(bench)]) == 2
    assert "dev-protocol benchmark scores only validation carve-outs" in capsys.readouterr().err
    (bench / "results.json").write_text("[1, 2]")
    assert main(["label-issues", str(tiny_twin.root), "--results", str(bench)]) == 1
    assert "not a benchmark's results.json" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- to-label
def test_to_label_writes_the_queue_and_a_label_studio_import(
    tiny_twin, classify_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "queue"
    assert (
        main(
            [
                "to-label",
                str(tiny_twin.root),
                "--checkpoint",
                str(classify_checkpoint),
                "--budget",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with open(out / "to-label.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and len({r["file"] for r in rows}) == 3
    assert all(r["file"].startswith("unlabeled-images/") for r in rows)
    tasks = json.loads((out / "label-studio.json").read_text())
    assert [t["data"]["file"] for t in tasks] == [r["file"] for r in rows]
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=unlabeled-images/")
    result = tasks[0]["predictions"][0]["result"][0]
    assert result["type"] == "choices" and result["value"]["choices"] == [rows[0]["predicted"]]
    assert 0 <= tasks[0]["predictions"][0]["score"] <= 1
    assert f'<Choice value="{rows[0]["predicted"]}"/>' in (out / "label-studio.xml").read_text()


def test_to_label_never_queues_a_copy_of_a_labeled_image(
    twin_copy: Path, classify_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    labeled = sorted((twin_copy / "labeled-images").rglob("*.jpg"))[0]
    unlabeled = twin_copy / "unlabeled-images" / "images"
    shutil.copyfile(labeled, unlabeled / "0000copy.jpg")
    shutil.copyfile(unlabeled / "0000copy.jpg", unlabeled / "0001copy.jpg")
    total = len(list(unlabeled.glob("*.jpg")))
    assert (
        main(
            [
                "to-label",
                str(twin_copy),
                "--checkpoint",
                str(classify_checkpoint),
                "--budget",
                str(total),
                "--out",
                str(tmp_path / "q"),
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    chosen = {r["file"] for r in json.loads(captured.out)["rows"]}
    assert not chosen & {"unlabeled-images/images/0000copy.jpg", "unlabeled-images/images/0001copy.jpg"}
    assert len(chosen) <= total - 2 and "near duplicates of labeled or chosen images" in captured.err


def test_to_label_aims_at_named_classes(tiny_twin, classify_checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "to-label",
                str(tiny_twin.root),
                "--checkpoint",
                str(classify_checkpoint),
                "--budget",
                "2",
                "--out",
                str(tmp_path / "q"),
                "--classes",
                "hemorrhoids,barretts-short-segment",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["classes"] == ["hemorrhoids", "barretts-short-segment"]


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--budget", "0"], "--budget must be at least 1"),
        (["--budget", "2", "--classes", "nope"], "nope"),
        (["--budget", "2", "--classes", ","], "give one or more class names"),
    ],
)
def test_to_label_refuses_bad_options(
    tiny_twin, classify_checkpoint: Path, tmp_path: Path, capsys, flags, text: str
) -> None:
    assert (
        main(
            [
                "to-label",
                str(tiny_twin.root),
                "--checkpoint",
                str(classify_checkpoint),
                "--out",
                str(tmp_path / "q"),
                *flags,
            ]
        )
        == 2
    )
    assert text in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_to_label_refuses_a_checkpoint_of_another_task_and_a_file_as_out(
    tiny_twin, classify_checkpoint: Path, segment_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    assert (
        main(
            [
                "to-label",
                str(tiny_twin.root),
                "--checkpoint",
                str(segment_checkpoint),
                "--budget",
                "2",
                "--out",
                str(tmp_path / "q"),
            ]
        )
        == 2
    )
    assert "a segment checkpoint, not a classify one" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert (
        main(
            [
                "to-label",
                str(tiny_twin.root),
                "--checkpoint",
                str(classify_checkpoint),
                "--budget",
                "2",
                "--out",
                str(tmp_path / "file"),
            ]
        )
        == 2
    )
    assert "is a file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ hostile sweep
def test_an_unreadable_embedding_cache_is_computed_again(twin_copy: Path, classify_checkpoint: Path) -> None:
    from hyperkvasir.label.embed import embeddings

    paths, vectors = embeddings(twin_copy, checkpoint=classify_checkpoint)
    (cache,) = [p for p in (twin_copy / ".hyperkvasir" / "embeddings").glob("*.npz") if not p.name.startswith(".")]
    cache.write_bytes(cache.read_bytes()[:100])  # a torn copy, a disk error
    again, recomputed = embeddings(twin_copy, checkpoint=classify_checkpoint)
    assert again == paths and np.allclose(recomputed, vectors, atol=1e-5)


def test_label_issues_reads_no_run_outside_the_results_folder(
    tiny_twin, tiny_bench: Path, tmp_path: Path, capsys
) -> None:
    bench = Path(shutil.copytree(tiny_bench, tmp_path / "bench"))
    outside = Path(shutil.copytree(bench / "test_efficientnet" / "test-fold-0", tmp_path / "elsewhere"))
    results = json.loads((bench / "results.json").read_text())
    results["models"]["test_efficientnet"]["runs"][0]["run"] = f"../{outside.name}"
    (bench / "results.json").write_text(json.dumps(results))
    assert main(["label-issues", str(tiny_twin.root), "--results", str(bench)]) == 1
    assert "run {'seed'" in capsys.readouterr().err


def test_label_issues_refuses_a_file_listed_twice(tiny_twin, tiny_bench: Path, tmp_path: Path, capsys) -> None:
    bench = Path(shutil.copytree(tiny_bench, tmp_path / "bench"))
    predictions = bench / "test_efficientnet" / "test-fold-0" / "predictions-test.csv"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join([*lines, lines[1]]) + "\n")
    assert main(["label-issues", str(tiny_twin.root), "--results", str(bench)]) == 1
    assert f"{predictions}:{len(lines) + 1}: " in capsys.readouterr().err


def test_to_label_on_a_full_disk_leaves_no_part_of_the_queue(
    tiny_twin, classify_checkpoint: Path, small_disk, capsys
) -> None:
    disk = small_disk("64k")
    out = disk / "queue"
    out.mkdir()
    with open(disk / "filler", "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
    assert (
        main(
            [
                "to-label",
                str(tiny_twin.root),
                "--checkpoint",
                str(classify_checkpoint),
                "--budget",
                "3",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    assert "No space left on device" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_embed_under_torchrun_shares_the_chunks_and_equals_one_process(
    twin_copy: Path, classify_checkpoint: Path, run_cli
) -> None:
    from hyperkvasir.label.embed import embeddings

    run_cli(
        ["embed", twin_copy, "--checkpoint", classify_checkpoint, "--part", "labeled", "--part", "unlabeled"],
        processes=2,
    )
    paths, vectors = embeddings(twin_copy, parts=("labeled", "unlabeled"), checkpoint=classify_checkpoint)
    shutil.rmtree(twin_copy / ".hyperkvasir" / "embeddings")
    alone_paths, alone = embeddings(twin_copy, parts=("labeled", "unlabeled"), checkpoint=classify_checkpoint)
    assert paths == alone_paths and np.allclose(vectors, alone, atol=1e-5)
