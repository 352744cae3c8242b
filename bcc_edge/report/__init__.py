"""`bcc-edge report`: accuracy, size and speed of every artifact of one or more runs, measured
on the same images, written as report.json (all numbers), report.md (tables) and a
self-contained report.html (plots, confusion matrices, a gallery of the worst errors).

Modules: collect (find artifacts) -> images (which images) -> build (numbers, through
bcc_edge.evaluate) -> markdown / html (+ plots, gallery) writers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from bcc_edge.report.build import ReportOptions, build_report

OUTPUTS = ("report.json", "report.md", "report.html")

__all__ = ["OUTPUTS", "ReportOptions", "build_report", "make_report", "write_report"]


def write_report(report: dict[str, Any], out: str | Path) -> list[Path]:
    """Render all three files in memory first, then write each atomically: a failure leaves
    no half-written report."""
    from bcc_edge.report.gallery import thumbnail_uri
    from bcc_edge.report.html import render_html
    from bcc_edge.report.markdown import render_markdown
    from bcc_edge.fileio import write_text

    gallery_paths = {e["path"] for a in report["artifacts"] if a["status"] == "ok" for e in a["worst_errors"]}
    texts = {
        "report.json": json.dumps(report, indent=2, allow_nan=False) + "\n",
        "report.md": render_markdown(report),
        "report.html": render_html(report, {path: thumbnail_uri(path) for path in sorted(gallery_paths)}),
    }
    out = Path(out)
    for name, text in texts.items():
        write_text(out / name, text)
    return [out / name for name in OUTPUTS]


def make_report(paths: Sequence[str], data: str, out: str | Path, options: ReportOptions = ReportOptions(),
                log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Evaluate, then write REPORT_DIR/report.{json,md,html}; returns the report dict."""
    report = build_report(paths, data, options, log)
    write_report(report, out)
    return report
