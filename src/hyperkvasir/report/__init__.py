"""The explorer report: one self-contained HTML file with every figure also saved as PNG."""

from hyperkvasir.report.build import build_report

__all__ = ["build_report"]
