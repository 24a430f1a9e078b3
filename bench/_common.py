"""Helpers shared by the benchmarks: a medium twin to measure on, and a result line printer."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hyperkvasir.synth.tree import make_synthetic_release


def twin_root(description: str) -> tuple[argparse.Namespace, Path]:
    """Parse ``--root`` (an existing twin) or synthesise a medium twin in a temp folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, help="an existing release or twin (default: a fresh medium twin)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.root is None:
        args.root = Path(tempfile.mkdtemp(prefix="hk-bench-")) / "medium"
        print(f"synthesising a medium twin at {args.root} …", flush=True)
        make_synthetic_release(args.root, seed=0, scale="medium", workers=2)
    return args, args.root


def report(args: argparse.Namespace, results: dict) -> None:
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
