"""Report figures as self-contained `data:image/png;base64,...` URIs.

Uses matplotlib's object API with the Agg canvas directly (no pyplot): no global state, no
display needed, and it never changes the backend of a host program that imported us.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

from bcc_edge.errors import BccError

# One colour per run, one marker per artifact kind, so a point is identifiable without a legend lookup.
_MARKERS = {("keras", "float32"): "*", ("tflite", "float32"): "o", ("tflite", "int8"): "s", ("onnx", "float32"): "^", ("onnx", "int8"): "D"}


def _new_figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise BccError("plots need matplotlib: pip install 'bcc-edge[report]'") from None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _to_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plain(text: str) -> str:
    """Label text drawn as written: a $ pair would start matplotlib's mathtext, which raises on
    what is not TeX (a class named `$\\foo$`)."""
    return text.replace("$", r"\$")


def kind_label(entry: dict) -> str:
    """'TFLite INT8', 'ONNX float32', 'Keras float32'."""
    name = {"keras": "Keras", "tflite": "TFLite", "onnx": "ONNX"}[entry["format"]]
    return f"{name} {entry['precision'].upper() if entry['precision'] == 'int8' else entry['precision']}"


def tradeoff(entries: Sequence[dict], cost_key: str, on_front: Sequence[bool], xlabel: str, title: str) -> str:
    """Top-1 accuracy against a cost (log axis), one point per artifact, Pareto front joined."""
    from matplotlib.ticker import ScalarFormatter

    figure = _new_figure(7.5, 4.8)
    axes = figure.add_subplot()
    runs = list(dict.fromkeys(e["run"] for e in entries))
    colours = {run: f"C{i % 10}" for i, run in enumerate(runs)}
    for entry, best in zip(entries, on_front):
        x, y = entry[cost_key], 100 * entry["metrics"]["accuracy"]
        axes.scatter(
            x, y, s=90 if best else 45, marker=_MARKERS.get((entry["format"], entry["precision"]), "o"),
            color=colours[entry["run"]], edgecolors="black" if best else "none", linewidths=1.2, zorder=3,
        )
        axes.annotate(kind_label(entry), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=7)
    front = sorted((e[cost_key], 100 * e["metrics"]["accuracy"]) for e, best in zip(entries, on_front) if best)
    if front:
        xs, ys = zip(*front)
        axes.step(xs, ys, where="post", color="black", linewidth=1, linestyle="--", zorder=2, label="Pareto front")
    for run in runs:
        axes.scatter([], [], color=colours[run], label=_plain(run))
    axes.set_xscale("log")
    # plain numbers: "300" reads better than "3x10^2" for KiB or milliseconds
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(ScalarFormatter())
    axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return _to_data_uri(figure)


def confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> str:
    """Row-normalised confusion matrix (each true class sums to 100%), counts in the cells."""
    counts = np.asarray(matrix, np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(labels)
    side = 2.2 + 0.55 * n
    figure = _new_figure(side + 1.0, side)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of true class")
    axes.set_xticks(range(n), [_plain(x) for x in labels], rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(n), [_plain(x) for x in labels], fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(_plain(title), fontsize=9)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                axes.text(j, i, f"{share[i, j]:.0%}\n{int(counts[i, j])}", ha="center", va="center", fontsize=6,
                          color="white" if share[i, j] > 0.6 else "black")
    return _to_data_uri(figure)


def per_class_f1(entries: Sequence[dict], labels: Sequence[str]) -> str:
    """Grouped horizontal bars: one group per class, one bar per artifact."""
    n_art, n_cls = len(entries), len(labels)
    figure = _new_figure(7.5, 1.2 + n_cls * (0.25 + 0.16 * n_art))
    axes = figure.add_subplot()
    height = 0.8 / n_art
    for a, entry in enumerate(entries):
        positions = np.arange(n_cls) + (a - (n_art - 1) / 2) * height
        axes.barh(positions, entry["metrics"]["per_class"]["f1"], height=height, label=_plain(f"{entry['run']} · {kind_label(entry)}"))
    axes.set_yticks(range(n_cls), [_plain(x) for x in labels])
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("F1")
    axes.set_title("Per-class F1")
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(fontsize=7, loc="lower left")
    return _to_data_uri(figure)


def reliability(entries: Sequence[dict]) -> str:
    """Reliability diagram: accuracy against mean top-1 confidence per bin, one line per
    artifact; a calibrated model follows the diagonal."""
    figure = _new_figure(6.0, 5.0)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for entry in entries:
        bins = entry["trust"]["reliability"]
        points = [(c, a) for c, a in zip(bins["confidence"], bins["accuracy"]) if c is not None]
        if points:
            xs, ys = zip(*points)
            axes.plot(xs, ys, marker="o", markersize=3, label=_plain(f"{entry['run']} · {kind_label(entry)} (ECE {entry['trust']['ece']:.3f})"))
    axes.set_xlabel("mean top-1 confidence in bin")
    axes.set_ylabel("accuracy in bin")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title("Reliability")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    return _to_data_uri(figure)


def risk_coverage(entries: Sequence[dict]) -> str:
    """Accuracy on the accepted images against the share accepted when the least confident are
    referred; each artifact's review policy marked on its curve."""
    figure = _new_figure(6.0, 5.0)
    axes = figure.add_subplot()
    for i, entry in enumerate(entries):
        curve = entry["risk_coverage"]
        colour = f"C{i % 10}"
        axes.plot([100 * c for c in curve["coverage"]], [100 * a for a in curve["accuracy"]], color=colour, linewidth=1.2,
                  label=_plain(f"{entry['run']} · {kind_label(entry)}"))
        t = entry["trust"]
        if t["accepted_accuracy"] is not None and t["coverage"] < 1:
            axes.scatter([100 * t["coverage"]], [100 * t["accepted_accuracy"]], color=colour, edgecolors="black", zorder=3)
    axes.set_xlabel("coverage: images accepted (%)")
    axes.set_ylabel("accuracy on accepted images (%)")
    axes.set_xlim(50, 100)
    axes.set_title("Risk-coverage (dots: the review policy)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="lower left")
    return _to_data_uri(figure)
