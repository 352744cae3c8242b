"""Train and export every seed architecture on PBC with its own recipe, then compare them.

    python benchmarks/pbc_zoo.py --data ../shared/data/pbc --work runs/zoo [--image-size 128]
        [--mixed-precision bf16] [--bcc-small-run RUN --bcc-small-export EXPORT]

- seed000 (8 classes): Adam 1e-3, batch 16, early stopping at patience 10, at most 50 epochs,
  the seed's augmentation per model (models.REGISTRY);
- seed004 (4 classes: eosinophil, lymphocyte, monocyte, neutrophil): the same recipe, as the
  seed describes it;
- at --image-size (128 px: 224 px is beyond 2 CPU cores for the VGG-style nets), every run
  until early stopping or its epoch ceiling: the training budget is what convergence took,
  recorded per run (epochs, minutes) in WORK/budgets.json;
- each exported twice: INT8 by QAT (WORK/exports/NAME) and by PTQ (WORK/exports/NAME-ptq);
- one `bcc-edge report` per class set (a report compares models of the same classes):
  WORK/report-8 (seed000 and bcc-small) and WORK/report-4 (seed004).
Finished runs, exports and reports are reused, so the script can be interrupted and restarted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bcc_edge import models
from bcc_edge.export import ExportOptions, export_run
from bcc_edge.report import ReportOptions, make_report
from bcc_edge.rundir import CONFIG, RunDir
from bcc_edge.train import TrainConfig, resume, train

SEED004_CLASSES = ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
# The seed projects' recipe (models.SEED_RECIPE holds the optimiser settings).
EPOCHS, PATIENCE = 50, 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/pbc")
    parser.add_argument("--work", default="runs/zoo", help="folder for the seed runs, exports and reports")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--mixed-precision", default="off", help="off, or bf16 on a CPU with bfloat16 instructions (1.7x for these nets)")
    parser.add_argument("--only", nargs="*", help="train only these registry models")
    parser.add_argument("--bcc-small-run", help="a finished bcc-small run directory to include in the 8-class report")
    parser.add_argument("--bcc-small-export", help="its export directory (made from the run when missing)")
    args = parser.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    budgets_path = work / "budgets.json"
    budgets = json.loads(budgets_path.read_text()) if budgets_path.exists() else {}
    exports: dict[int, list[str]] = {8: [], 4: []}
    for name, info in models.REGISTRY.items():
        if info.source == "ours" or (args.only and name not in args.only):
            continue
        classes = SEED004_CLASSES if info.source == "seed004" else None
        run = work / "runs" / name
        if not (run / CONFIG).exists():
            print(f"== train {name}", flush=True)
            train(TrainConfig(data=args.data, out=str(run), model=name, image_size=args.image_size, epochs=EPOCHS,
                              patience=PATIENCE, classes=classes, mixed_precision=args.mixed_precision))
        else:
            state = RunDir(run).state
            if state is None or state.get("interrupted") or (not state.get("stopped_early") and state["epoch"] < EPOCHS):
                print(f"== resume {name}", flush=True)
                resume(run)
        state = RunDir(run).state
        budgets[name] = dict(
            image_size=args.image_size, epochs=state["epoch"], best_epoch=state["best"]["epoch"],
            stopped_early=bool(state.get("stopped_early")), precision=args.mixed_precision,
            train_minutes=round(state["train_seconds"] / 60, 1),
        )
        budgets_path.write_text(json.dumps(budgets, indent=2) + "\n")
        for suffix, options in (("", ExportOptions(int8=True)), ("-ptq", ExportOptions(int8=True, ptq=True))):
            export = work / "exports" / f"{name}{suffix}"
            if not (export / "manifest.json").exists():
                print(f"== export {name}{suffix}", flush=True)
                export_run(run, export, options, log=print)
            exports[4 if classes else 8].append(str(export))
    if args.bcc_small_run:
        export = Path(args.bcc_small_export or work / "exports" / "bcc-small")
        if not (export / "manifest.json").exists():
            print("== export bcc-small", flush=True)
            export_run(args.bcc_small_run, export, ExportOptions(int8=True), log=print)
        exports[8].append(str(export))
    for classes, paths in exports.items():
        if paths:
            print(f"== report of the {classes}-class models", flush=True)
            make_report(paths, args.data, work / f"report-{classes}", ReportOptions(), log=print)
            print(f"report: {work / f'report-{classes}' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
