"""report.md: the numbers as Markdown tables (plots and the error gallery are in report.html)."""

from __future__ import annotations

from bcc_edge.report import tables


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


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
        f"- data: `{data['path']}` — {data['selection']}, {data['count']} images, {len(labels)} classes",
        f"- latency: {tables.latency_sentence(report)}",
        f"- created {report['created']} by bcc-edge {report['toolkit_version']}",
        "",
    ]
    if report["notes"]:
        out += ["## Notes", "", *[f"- {note}" for note in report["notes"]], ""]
    out += ["## Summary", "", _table(tables.summary(report)), ""]
    failed = tables.failed(report)
    if failed[1]:
        out += ["## Failed artifacts", "", _table(failed), ""]
    for entry in tables.ok_entries(report):
        out += [f"## {entry['id']}", "", _table(tables.per_class(entry, labels)), "", "Confusion matrix (rows = true class):", "",
                _table(tables.confusion(entry, labels)), ""]
    return "\n".join(out)
