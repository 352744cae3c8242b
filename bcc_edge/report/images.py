"""Which labelled images a report evaluates on (`--data`, `--split`), in the models' label order.

- The data folder is the one a run was trained on: that run's saved split (its splits.csv),
  so "val" really is the images the model never trained on. Several such runs (e.g. seeds
  with different splits): only images in the split of every one of them.
- Another dataset with a splits.csv: its own split.
- Another plain ImageFolder: all of its images (there is no split to honour); the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from bcc_edge import data as data_mod
from bcc_edge.errors import BccError
from bcc_edge.data import Record
from bcc_edge.rundir import RunDir

SPLITS = ("val", "train", "all")


@dataclass
class EvalImages:
    records: list[Record]  # .index is the position in the models' labels
    selection: str  # one sentence for the report
    notes: list[str] = field(default_factory=list)


def _split_of(records_by_split: dict[str, list[Record]], split: str) -> list[Record]:
    return records_by_split["train"] + records_by_split["val"] if split == "all" else records_by_split[split]


def _from_runs(runs: Sequence[RunDir], split: str) -> EvalImages:
    per_run = [_split_of({s: run.records(s) for s in ("train", "val")}, split) for run in runs]
    common = set.intersection(*({r.path for r in records} for records in per_run))
    records = [r for r in per_run[0] if r.path in common]
    if len(runs) == 1:
        return EvalImages(records, f"the '{split}' images of the run's saved split ({runs[0].path / 'splits.csv'})")
    notes = []
    if any(len(r) != len(records) for r in per_run):
        notes.append(f"the runs' '{split}' splits differ: only the {len(records)} images in all of them are used, so no model is scored on images it trained on")
    return EvalImages(records, f"the '{split}' images shared by the saved splits of runs {', '.join(str(r.path) for r in runs)}", notes)


def select_images(data: str | Path, split: str, runs: Sequence[RunDir], labels: Sequence[str]) -> EvalImages:
    """The labelled images to evaluate on; BccError when none, or when their classes are not the models'."""
    if split not in SPLITS:
        raise BccError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    data = Path(data).expanduser()
    if not data.is_dir():
        raise BccError(f"data folder not found: {data}")
    # a dataset with splits.csv may keep its images under images/ (data.discover's layout)
    roots = {data.resolve(), (data / "images").resolve()}
    trained_here = [run for run in runs if run.data_root.resolve() in roots]
    if trained_here:
        chosen = _from_runs(trained_here, split)
    else:
        index = data_mod.discover(data)
        if index.split_source == "splits.csv":
            chosen = EvalImages(_split_of({"train": index.train, "val": index.val}, split), f"the '{split}' images of {data}/splits.csv")
        else:
            chosen = EvalImages(index.train + index.val, f"all images of {data} (no splits.csv, and no run was trained on it)")
            if split != "all":
                chosen.notes.append(f"--split {split} ignored: {data} has no splits.csv and no compared run was trained on it")
    chosen.records = data_mod.relabel(chosen.records, labels, data)
    if not chosen.records:
        raise BccError(f"no images to evaluate: {chosen.selection} is empty")
    missing = sorted(set(labels) - {r.label for r in chosen.records})
    if missing:
        chosen.notes.append(f"no images of class(es) {', '.join(missing)}: their recall is 0 and they are left out of balanced accuracy")
    return chosen
