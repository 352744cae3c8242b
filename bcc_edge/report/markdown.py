"""report.md: the numbers as Markdown tables (plots and the error gallery are in report.html)."""

from __future__ import annotations

from bcc_edge.errors import printable
from bcc_edge.report import tables


# Characters that start markup anywhere in a line (an underscore inside a word does not).
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<>|"})


def _escape(text: str) -> str:
    """Text from labels, paths and notes shown as written: no HTML (a `<script>` label), no
    Markdown markup, no line breaks, no control characters."""
    return printable(str(text)).replace("&", "&amp;").translate(_MARKDOWN_SPECIAL)


def _table(table: tables.Table) -> str:
    headers, rows = table
    lines = ["| " + " | ".join(map(_escape, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(_escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    data, labels = report["data"], report["data"]["labels"]
    out = [
        "# bcc-edge model report",
        "",
        f"- data: {_escape(data['path'])} — {_escape(data['selection'])}, {data['count']} images, {len(labels)} classes",
        f"- latency: {tables.latency_sentence(report)}",
        f"- created {report['created']} by bcc-edge {report['toolkit_version']}",
        "",
    ]
    if report["notes"]:
        out += ["## Notes", "", *[f"- {_escape(note)}" for note in report["notes"]], ""]
    out += ["## Summary", "", _table(tables.summary(report)), ""]
    out += ["## Trusting a prediction", "", "Calibration (ECE: 15 equal-width bins of the top-1 score) and the review policy of each artifact:", "",
            _table(tables.trust(report)), "", "Recall change against the float model, points:", "", _table(tables.recall_change(report, labels)), ""]
    failed = tables.failed(report)
    if failed[1]:
        out += ["## Failed artifacts", "", _table(failed), ""]
    for entry in tables.ok_entries(report):
        out += [f"## {_escape(entry['id'])}", "", _table(tables.per_class(entry, labels)), "", "Confusion matrix (rows = true class):", "",
                _table(tables.confusion(entry, labels)), ""]
    return "\n".join(out)
