"""The report's tables as (headers, rows of strings), shared by the Markdown and HTML writers."""

from __future__ import annotations

from bcc_edge.report.plots import kind_label

Table = tuple[list[str], list[list[str]]]


def latency_sentence(report: dict) -> str:
    latency = report["latency"]
    return (f"median (p50) per-image invoke time at batch {latency['batch']} on {latency['threads']} thread, "
            f"{latency['images']} images x {latency['passes']} passes")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def ok_entries(report: dict) -> list[dict]:
    return [e for e in report["artifacts"] if e["status"] == "ok"]


def summary(report: dict) -> Table:
    headers = ["run", "artifact", "kind", "size (KiB)", "bytes", "params", "top-1", "balanced acc.", "macro F1",
               "latency (ms)", "agreement with float", "Pareto"]
    references = {e["agreement"]["reference"] for e in ok_entries(report) if e["agreement"]}
    rows = []
    for e in ok_entries(report):
        m, agree, latency = e["metrics"], e["agreement"], e["latency_ms"]
        fronts = [name for name, on in e["pareto"].items() if on]
        rows.append([
            e["run"], e["file"], kind_label(e), f"{e['kib']:,.1f}", f"{e['bytes']:,}",
            "n/a" if e["params"] is None else f"{e['params']:,}",
            pct(m["accuracy"]), pct(m["balanced_accuracy"]), pct(m["macro_f1"]),
            "n/a" if latency is None else f"{latency['invoke']['p50']:.3f}",
            f"{pct(agree['top1'])} vs {agree['reference']}" if agree else ("(reference)" if e["id"] in references else "n/a"),
            ", ".join(fronts) or "-",
        ])
    return headers, rows


def failed(report: dict) -> Table:
    return ["run", "artifact", "error"], [[e["run"], e["file"], e["error"]] for e in report["artifacts"] if e["status"] == "failed"]


def per_class(entry: dict, labels: list[str]) -> Table:
    pc = entry["metrics"]["per_class"]
    rows = [[label, pct(pc["precision"][k]), pct(pc["recall"][k]), pct(pc["f1"][k]), str(pc["support"][k])] for k, label in enumerate(labels)]
    return ["class", "precision", "recall", "F1", "support"], rows


def confusion(entry: dict, labels: list[str]) -> Table:
    matrix = entry["metrics"]["confusion"]
    return ["true \\ predicted", *labels], [[label, *map(str, row)] for label, row in zip(labels, matrix)]


def trust(report: dict) -> Table:
    """Calibration and referral per artifact: what a lab acting on each score can rely on."""
    headers = ["run", "artifact", "kind", "ECE", "NLL", "Brier", "review coverage", "accepted accuracy"]
    rows = []
    for e in ok_entries(report):
        t = e["trust"]
        rows.append([e["run"], e["file"], kind_label(e), f"{t['ece']:.4f}", f"{t['nll']:.4f}", f"{t['brier']:.4f}",
                     pct(t["coverage"]), pct(t["accepted_accuracy"])])
    return headers, rows


def recall_change(report: dict, labels: list[str]) -> Table:
    """Each class's recall against its run's float model, in points: losses on rare classes
    (basophils) that the global top-1 hides."""
    rows = []
    for e in ok_entries(report):
        cells = ["-" if c is None else f"{100 * c:+.2f}" for c in e["trust"]["recall_change"]]
        rows.append([e["run"], e["file"], *cells])
    return ["run", "artifact", *labels], rows
