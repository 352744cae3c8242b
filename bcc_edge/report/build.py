"""Compute every number of a report: load each artifact, run them all through
`bcc_edge.evaluate` on the same decoded images, then metrics, agreement, latency, Pareto fronts."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from bcc_edge import __version__, evaluate, metrics
from bcc_edge import data as data_mod
from bcc_edge.errors import BccError, first_line
from bcc_edge.report.collect import Artifact, Group, collect
from bcc_edge.report.gallery import worst_errors
from bcc_edge.report.pareto import pareto_front

FORMAT_VERSION = 1
# Reference for "agreement with its float model": the run's Keras model is what every artifact
# was converted from; without it, the float TFLite (then ONNX) export stands in.
_REFERENCE_ORDER = (("keras", "float32"), ("tflite", "float32"), ("onnx", "float32"))


@dataclass(frozen=True)
class ReportOptions:
    split: str = "val"
    include_keras: bool | None = None  # None: when TensorFlow is installed
    latency_images: int = 32  # per-image invoke latency: these many images ...
    latency_passes: int = 3  # ... this many times each, batch 1, 1 thread
    gallery_per_class: int = 4


@dataclass
class _Slot:
    """One artifact on its way into the report."""

    group: Group
    artifact: Artifact
    predictor: Any = None
    error: str | None = None
    probs: np.ndarray | None = None
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.group.name}/{self.artifact.path.name}"


def _describe_failure(exc: Exception) -> str:
    """One line: a BccError already speaks to the user; anything else (a backend refusing a
    corrupt file) gets its type, since its message alone may be cryptic."""
    return first_line(exc) if isinstance(exc, BccError) else f"{type(exc).__name__}: {first_line(exc)}"


def _load(slot: _Slot) -> None:
    from bcc_edge.runtime import EdgeClassifier

    if slot.artifact.problem:
        slot.error = slot.artifact.problem
        return
    try:
        if slot.artifact.format == "keras":
            from bcc_edge.keras_predictor import KerasPredictor

            slot.predictor = KerasPredictor.from_run(slot.group.run)
        else:
            slot.predictor = EdgeClassifier(slot.artifact.path)
    except Exception as exc:  # noqa: BLE001 - any artifact that fails to load is reported, the rest go on
        slot.error = _describe_failure(exc)


def _group_labels(group: Group, slots: Sequence[_Slot]) -> list[str] | None:
    if group.run is not None:
        return group.run.labels
    loaded = [s.predictor.labels for s in slots if s.group is group and s.predictor is not None]
    return loaded[0] if loaded else None


def _common_labels(groups: Sequence[Group], slots: Sequence[_Slot]) -> list[str]:
    by_group = {g.name: _group_labels(g, slots) for g in groups}
    known = {name: labels for name, labels in by_group.items() if labels is not None}
    if not known:
        raise BccError("no artifact could be loaded: " + "; ".join(f"{s.id}: {s.error}" for s in slots))
    first_name, labels = next(iter(known.items()))
    for name, other in known.items():
        if other != labels:
            raise BccError(f"{name} and {first_name} classify different classes ({', '.join(other)} vs {', '.join(labels)}); compare models of the same classes")
    for slot in slots:
        if slot.predictor is not None and slot.predictor.labels != labels:
            slot.error = f"its labels ({', '.join(slot.predictor.labels)}) differ from its run's ({', '.join(labels)})"
            slot.predictor = None
    return labels


def _predict(slots: Sequence[_Slot], records, log) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Fill each slot's probabilities; models that resize alike share one decode. Returns the
    labels and paths of the images used and the unreadable files skipped."""
    families: dict[Any, list[_Slot]] = {}
    for slot in slots:
        if slot.predictor is not None:
            families.setdefault(slot.predictor.spec.resized_only(), []).append(slot)
    y_true, skipped = None, []
    for resize_spec, members in families.items():
        images, labels, bad = data_mod.load_arrays(records, resize_spec)
        if y_true is None:
            skipped = bad
            gone = {path for path, _ in bad}
            records = [r for r in records if r.path not in gone]
            y_true = labels
        elif bad:
            raise BccError(f"images became unreadable during the report: {bad[0][0]}")
        for slot in members:
            log(f"evaluating {slot.id} on {len(images)} images")
            try:
                slot.probs, slot.seconds = evaluate.predict_all({slot.id: slot.predictor}, images)[slot.id]
            except Exception as exc:  # noqa: BLE001 - a model that loads but cannot run is reported as failed
                slot.error, slot.predictor = _describe_failure(exc), None
    if y_true is None:
        raise BccError("no artifact could be loaded: " + "; ".join(f"{s.id}: {s.error}" for s in slots))
    if not len(y_true):
        raise BccError("none of the selected images could be read: " + "; ".join(f"{p}: {r}" for p, r in skipped[:3]))
    return y_true, [r.path for r in records], skipped


def _latency(slot: _Slot, paths: list[str], options: ReportOptions) -> dict | None:
    """Per-image stage latencies (ms percentiles) at batch 1 on one thread, as `bcc-edge bench infer` measures them."""
    if slot.artifact.format == "keras":
        return None  # not a device artifact: nothing runs it on the edge
    from bcc_edge.bench.infer import stage_latencies
    from bcc_edge.runtime import EdgeClassifier

    single = EdgeClassifier(slot.artifact.path, threads=1)
    return stage_latencies(single, paths[: options.latency_images], passes=options.latency_passes)


def _params(group: Group, slots: Sequence[_Slot]) -> int | None:
    """Trainable + non-trainable weights of the run's Keras model (the same for all its artifacts)."""
    for slot in slots:
        if slot.group is group and slot.artifact.format == "keras" and slot.predictor is not None:
            return int(slot.predictor.model.count_params())
    return None


def _reference(group_slots: Sequence[_Slot]) -> _Slot | None:
    for kind in _REFERENCE_ORDER:
        for slot in group_slots:
            if slot.probs is not None and (slot.artifact.format, slot.artifact.precision) == kind:
                return slot
    return None


def _entry(slot: _Slot) -> dict[str, Any]:
    path = slot.artifact.path
    size = path.stat().st_size if path.is_file() else None
    return {
        "id": slot.id, "run": slot.group.name, "run_dir": str(slot.group.run_dir) if slot.group.run_dir else None,
        "file": path.name, "path": str(path), "format": slot.artifact.format, "precision": slot.artifact.precision,
        "quantization": slot.artifact.quantization, "status": "failed" if slot.error else "ok", "error": slot.error,
        "bytes": size, "kib": None if size is None else size / 1024,
    }


def build_report(paths: Sequence[str], data: str, options: ReportOptions = ReportOptions(), log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (what report.json holds)."""
    groups, notes = collect(paths, options.include_keras)
    slots = [_Slot(group, artifact) for group in groups for artifact in group.artifacts]
    for slot in slots:
        _load(slot)
    labels = _common_labels(groups, slots)
    chosen = data_mod.evaluation_images(data, options.split, [g.run for g in groups if g.run is not None], labels)
    notes += chosen.notes
    y_true, image_paths, skipped = _predict(slots, chosen.records, log)
    if skipped:
        notes.append(f"{len(skipped)} unreadable image(s) skipped (listed under data.skipped in report.json)")

    entries = []
    for group in groups:
        members = [s for s in slots if s.group is group]
        reference = _reference(members)
        outputs = {s.id: (s.probs, s.seconds) for s in members if s.probs is not None}
        results = {r.name: r for r in evaluate.compare(outputs, reference.id if reference else None, y_true, len(labels))} if outputs else {}
        reference_recall = results[reference.id].metrics["per_class"]["recall"] if reference else [None] * len(labels)
        params = _params(group, members)
        for slot in members:
            entry = _entry(slot)
            result = results.get(slot.id)
            if result is not None:
                try:
                    latency = _latency(slot, image_paths, options)
                except Exception as exc:  # noqa: BLE001 - keep the accuracy numbers; say why latency is missing
                    latency = None
                    notes.append(f"{slot.id}: latency not measured ({_describe_failure(exc)})")
                entry.update(
                    params=params,
                    backend=slot.predictor.backend,
                    eval_seconds=result.seconds,
                    metrics=result.metrics,
                    agreement=None if slot is reference or reference is None else {
                        "reference": reference.id, "top1": result.agreement,
                        "max_abs_prob_diff": result.max_abs_diff, "mean_abs_prob_diff": result.mean_abs_diff,
                    },
                    problems=result.problems,
                    latency_ms=latency,
                    worst_errors=worst_errors(result.probs, y_true, image_paths, labels, options.gallery_per_class),
                    trust=evaluate.trust(result.probs, y_true, getattr(slot.predictor, "review", None), reference_recall, len(labels)),
                    risk_coverage=_thinned(metrics.risk_coverage(result.probs, y_true)),
                )
                notes += [f"{slot.id}: {problem}" for problem in result.problems]
            entries.append(entry)
    _mark_pareto(entries)
    if not any(e["status"] == "ok" for e in entries):
        raise BccError("no artifact could be evaluated: " + "; ".join(f"{e['id']}: {e['error']}" for e in entries))
    return {
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "path": str(data), "split": options.split, "selection": chosen.selection, "count": int(len(y_true)),
            "labels": labels, "class_counts": np.bincount(y_true, minlength=len(labels)).tolist(),
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
        },
        "latency": {"batch": 1, "threads": 1, "images": min(options.latency_images, len(image_paths)), "passes": options.latency_passes, "statistic": "p50"},
        "artifacts": entries,
        "notes": notes,
    }


def _thinned(curve: dict, points: int = 200) -> dict:
    """At most `points` points of a risk-coverage curve (the JSON stays small for any data set)."""
    keep = np.unique(np.linspace(0, len(curve["coverage"]) - 1, min(points, len(curve["coverage"]))).astype(int))
    return {key: [round(values[i], 6) for i in keep] for key, values in curve.items()}


def _mark_pareto(entries: list[dict]) -> None:
    ok = [e for e in entries if e["status"] == "ok"]
    for e in ok:
        e["pareto"] = {"size": False, "latency": False}
    for name, cost in (("size", lambda e: e["bytes"]), ("latency", lambda e: e["latency_ms"] and e["latency_ms"]["invoke"]["p50"])):
        points = [e for e in ok if cost(e)]
        for e, on in zip(points, pareto_front([cost(e) for e in points], [e["metrics"]["accuracy"] for e in points])):
            e["pareto"][name] = on
