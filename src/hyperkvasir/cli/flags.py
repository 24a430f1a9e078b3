"""Which options fit which task, for the commands that serve several tasks (``predict``, ``benchmark``): one
table, so that a flag a command accepts is a flag it uses, and a flag that does not fit is refused by name."""

from __future__ import annotations

import typer

_CLASSIFY_IMAGES = "classify images"
_CLASSIFY_VIDEOS = "classify videos"

# command -> option -> the targets it fits. predict's targets: a classifier on images or on videos, a segmenter, a
# video checkpoint (always on videos); benchmark's: its --task.
FITS: dict[str, dict[str, set[str]]] = {
    "predict": {
        "--pseudo-labels": {_CLASSIFY_IMAGES},
        "--threshold": {_CLASSIFY_IMAGES},
        "--max-per-class": {_CLASSIFY_IMAGES},
        "--gradcam": {_CLASSIFY_IMAGES},
        "--tta": {_CLASSIFY_IMAGES, _CLASSIFY_VIDEOS},
        "--every": {_CLASSIFY_VIDEOS, "video"},
    },
    "benchmark": {
        **dict.fromkeys(
            (
                "--optimizer",
                "--exclude-conflicts",
                "--mask-corners",
                "--seeds",
                "--protocol",
                "--force",
                "--average",
                "--reviews",
                "--reviews-on-test",
            ),
            {"classify"},
        ),
        "--config": {"classify", "segment"},
        "--scheme": {"classify", "segment"},
        "--select-on-train": {"video"},
    },
}


def predict_target(task: str, videos: bool) -> str:
    """The row of ``FITS["predict"]`` a checkpoint of ``task`` on images or videos is."""
    if task == "classify":
        return _CLASSIFY_VIDEOS if videos else _CLASSIFY_IMAGES
    return task


def refuse_unfit(command: str, target: str, given: dict[str, object], described: str, extra: str = "") -> None:
    """Exit 2 naming every given option (value not None) that does not fit ``target``."""
    refused = [flag for flag, value in given.items() if value is not None and target not in FITS[command][flag]]
    if refused:
        raise typer.BadParameter(
            f"{', '.join(refused)} does not apply to {described}{extra}; drop it", param_hint=refused[0]
        )
