"""report.html: one self-contained page (inline CSS, plots and thumbnails as data: URIs, no JS)."""

from __future__ import annotations

from html import escape
from typing import Mapping

from bcc_edge.report import plots, tables

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child, .summary td:nth-child(-n+3) { text-align: left; }
th { background: #f3f3f3; }
.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 1rem; }
.failed td { background: #fdecea; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
.gallery figure { width: 110px; font-size: 0.7rem; text-align: center; }
.gallery img { width: 96px; height: 96px; object-fit: contain; background: #eee; }
"""


def _table(table: tables.Table, css_class: str = "") -> str:
    headers, rows = table
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">'


def _tradeoffs(entries: list[dict]) -> str:
    parts = []
    for key, front_name, xlabel, title in (
        ("kib", "size", "file size (KiB, log scale)", "Accuracy vs size"),
        ("latency_median_ms", "latency", "median invoke latency (ms, log scale)", "Accuracy vs latency"),
    ):
        points = [e for e in entries if e[key] is not None]
        if points:
            front = [e["pareto"][front_name] for e in points]
            parts.append(f"<figure>{_img(plots.tradeoff(points, key, front, xlabel, title), title)}</figure>")
    return "".join(parts)


def _gallery(entry: dict, thumbnails: Mapping[str, str | None]) -> str:
    if not entry["worst_errors"]:
        return "<p>No misclassified images.</p>"
    cells = []
    for error in entry["worst_errors"]:
        uri = thumbnails.get(error["path"])
        picture = _img(uri, error["path"]) if uri else "<div>(unreadable)</div>"
        caption = f"true {error['true']} → {error['pred']} ({error['confidence']:.0%})"
        cells.append(f'<figure title="{escape(error["path"])}">{picture}<figcaption>{escape(caption)}</figcaption></figure>')
    return f'<div class="gallery">{"".join(cells)}</div>'


def render_html(report: dict, thumbnails: Mapping[str, str | None]) -> str:
    """The full page. `thumbnails` maps each worst-error path to a data URI (None: unreadable)."""
    data, labels = report["data"], report["data"]["labels"]
    entries = [dict(e, latency_median_ms=e["latency_ms"]["invoke"]["p50"] if e["latency_ms"] else None) for e in tables.ok_entries(report)]
    parts = [
        "<h1>bcc-edge model report</h1>",
        "<ul>",
        f"<li>data: <code>{escape(data['path'])}</code> — {escape(data['selection'])}, {data['count']} images, {len(labels)} classes</li>",
        f"<li>latency: {escape(tables.latency_sentence(report))}</li>",
        f"<li>created {escape(report['created'])} by bcc-edge {escape(report['toolkit_version'])}</li>",
        "</ul>",
    ]
    if report["notes"]:
        parts.append('<div class="notes"><ul>' + "".join(f"<li>{escape(n)}</li>" for n in report["notes"]) + "</ul></div>")
    parts += ["<h2>Summary</h2>", _table(tables.summary(report), "summary")]
    failed = tables.failed(report)
    if failed[1]:
        parts += ["<h2>Failed artifacts</h2>", _table(failed, "failed")]
    if entries:
        parts += ["<h2>Trade-offs</h2>", _tradeoffs(entries),
                  f"<figure>{_img(plots.per_class_f1(entries, labels), 'per-class F1')}</figure>"]
        parts += ["<h2>Trusting a prediction</h2>", _table(tables.trust(report)),
                  f"<figure>{_img(plots.reliability(entries), 'reliability diagram')}</figure>",
                  f"<figure>{_img(plots.risk_coverage(entries), 'risk-coverage curves')}</figure>",
                  "<h3>Recall change against the float model (points)</h3>", _table(tables.recall_change(report, labels))]
    for entry in entries:
        confusion = plots.confusion(entry["metrics"]["confusion"], labels, f"{entry['id']} (row-normalised)")
        parts += [
            f"<h2>{escape(entry['id'])}</h2>",
            f"<figure>{_img(confusion, 'confusion matrix')}</figure>",
            _table(tables.per_class(entry, labels)),
            "<h3>Most confident errors per class</h3>",
            _gallery(entry, thumbnails),
        ]
    body = "\n".join(parts)
    return f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>bcc-edge model report</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n'
