"""Train and export every registry model on PBC, then compare them all in one `bcc-edge report`.

    python benchmarks/pbc_zoo.py --data ../shared/data/pbc --work runs/zoo \
        --bcc-small-run runs/pbc-bcc-small --bcc-small-export exports/pbc-bcc-small

The seed models get a CPU budget (reduced image size and a wall-clock training limit, PTQ
instead of QAT); bcc-small is taken from its full run (configs/pbc-bcc-small.json) when given.
Finished runs and exports are reused, so the script can be interrupted and restarted.
The budgets are printed and recorded in WORK/budgets.json for the README table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bcc_edge import models
from bcc_edge.export import ExportOptions, export_run
from bcc_edge.report import ReportOptions, make_report
from bcc_edge.train import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/pbc")
    parser.add_argument("--work", default="runs/zoo", help="folder for the seed runs, exports and the report")
    parser.add_argument("--image-size", type=int, default=64, help="input size for the seed models (their own: 224/128)")
    parser.add_argument("--minutes", type=float, default=2.5, help="training time limit per seed model")
    parser.add_argument("--epochs", type=int, default=30, help="epoch ceiling per seed model")
    parser.add_argument("--bcc-small-run", help="a finished bcc-small run directory to include")
    parser.add_argument("--bcc-small-export", help="its export directory (made from the run when missing)")
    args = parser.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    budgets, exports = {}, []
    for name in models.REGISTRY:
        if name == "bcc-small":
            continue
        run, export = work / "runs" / name, work / "exports" / name
        budgets[name] = {"image_size": args.image_size, "time_limit_min": args.minutes, "epochs": args.epochs, "int8": "ptq"}
        if not (run / "best.keras").exists():
            print(f"== train {name}", flush=True)
            train(TrainConfig(data=args.data, out=str(run), model=name, image_size=args.image_size, epochs=args.epochs,
                              time_limit=args.minutes, patience=0))
        if not (export / "manifest.json").exists():
            print(f"== export {name}", flush=True)
            export_run(run, export, ExportOptions(int8=True, ptq=True), log=print)
        exports.append(str(export))
    if args.bcc_small_run:
        export = Path(args.bcc_small_export or work / "exports" / "bcc-small")
        if not (export / "manifest.json").exists():
            print("== export bcc-small", flush=True)
            export_run(args.bcc_small_run, export, ExportOptions(int8=True), log=print)
        budgets["bcc-small"] = {"config": "configs/pbc-bcc-small.json", "int8": "qat"}
        exports.append(str(export))
    (work / "budgets.json").write_text(json.dumps(budgets, indent=2) + "\n")

    print("== report", flush=True)
    start = time.perf_counter()
    make_report(exports, args.data, work / "report", ReportOptions(), log=print)
    print(f"report: {work / 'report' / 'report.md'} ({time.perf_counter() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
