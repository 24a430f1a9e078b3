"""What ``validate`` reports: a :class:`Finding` per problem (severity, file, what is wrong, what to do), the
:class:`ValidationReport` that sorts them into an exit code, and the :class:`Collector` the checks append to.

A floor below validate.py and validate_labeled.py, so the checks of each part can live apart without a cycle.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    code: str
    file: str  # relative to the release root
    message: str
    hint: str

    def line(self) -> str:
        return f"{self.severity}: {self.file}: {self.message} ({self.hint})"


@dataclass
class ValidationReport:
    root: str
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity == "error" for f in self.findings) else 0

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.severity for f in self.findings))

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "findings": [asdict(f) for f in self.findings],
        }


class Collector(list):
    """The findings of one run; each check appends with :meth:`add`."""

    def add(self, severity: str, code: str, file: str | Path, message: str, hint: str) -> None:
        self.append(Finding(severity, code, str(file), message, hint))
