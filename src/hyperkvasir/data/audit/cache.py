"""The audit kept in ``audit.json`` of the work dir under a key of everything it depends on, so a tree that did not
change is not audited again (validate, splits, train and report all consult the audit)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa

from hyperkvasir.data import kvasir_seg_lists, pixels, taxonomy
from hyperkvasir.data.audit.report import AuditReport
from hyperkvasir.outputs import atomic_write

AUDIT_NAME = "audit.json"


def audit_code() -> list[Path]:
    """The source files whose code decides an audit: every module of this package, the pixel detectors, the
    taxonomy and the reader of Kvasir-SEG's official lists (a changed detector or rule is a new key)."""
    package = sorted(Path(__file__).parent.glob("*.py"))
    return package + [Path(str(module.__file__)) for module in (pixels, taxonomy, kvasir_seg_lists)]


def cache_key(manifest: pa.Table, threshold: int, min_correlation: float) -> str:
    """What an audit depends on: every manifest column but the mtimes, the parameters, and :func:`audit_code`."""
    digest = hashlib.sha256(json.dumps([threshold, min_correlation]).encode())
    for module in audit_code():
        digest.update(module.read_bytes())
    for column in manifest.drop_columns(["mtime_ns"]).columns:
        digest.update(json.dumps(column.to_pylist(), default=str).encode())
    return digest.hexdigest()


def read_report(path: Path, key: str) -> AuditReport | None:
    """The report kept at ``path`` under ``key``; None when absent, unreadable or under another key."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: audit again, never trust it
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    return AuditReport.from_json(saved["report"])


def write_report(path: Path, key: str, report: AuditReport) -> None:
    """Keep ``report`` at ``path`` under ``key``, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump({"key": key, "report": report.to_json()}, handle)
