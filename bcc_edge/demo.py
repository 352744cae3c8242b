"""`bcc-edge demo`: the whole path from images to an edge model in a few minutes, offline.

Generates a small synthetic blood-smear image set (bcc_edge.synthetic), trains bcc-small on
it, exports INT8 TFLite/ONNX, verifies them against the float model, classifies a few images
with the edge runtime and writes the accuracy-vs-size report. Every step calls the same
function the matching `bcc-edge` command calls.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bcc_edge.errors import BccError

DEMO_PARTS = ("data", "run", "export", "report")


@dataclass(frozen=True)
class DemoSettings:
    per_class: int = 60
    image_size: int = 64
    epochs: int = 12
    qat_epochs: int = 1
    seed: int = 0


@dataclass
class DemoResult:
    out: Path
    verify_passed: bool
    int8_accuracy: float
    report_html: Path
    seconds: float


def prepare_out(out: Path, force: bool) -> None:
    """Refuse to mix with an earlier demo unless asked; --force only removes what a demo made."""
    existing = [out / part for part in DEMO_PARTS if (out / part).exists()]
    if out.exists() and not out.is_dir():
        raise BccError(f"{out} exists and is not a directory")
    if existing and not force:
        raise BccError(f"{out} already holds a demo ({', '.join(p.name for p in existing)}); use --force to replace it or choose --out")
    for path in existing:
        shutil.rmtree(path)
    out.mkdir(parents=True, exist_ok=True)


def run_demo(out: str | Path, settings: DemoSettings = DemoSettings(), force: bool = False,
             echo: Callable[[str], None] = print) -> DemoResult:
    from bcc_edge import synthetic
    from bcc_edge.export import ExportOptions, export_run
    from bcc_edge.report import make_report
    from bcc_edge.runtime import EdgeClassifier
    from bcc_edge.train import TrainConfig, train
    from bcc_edge.verify import format_report, verify_export

    out = Path(out)
    prepare_out(out, force)
    start = time.perf_counter()

    def step(n: int, text: str) -> None:
        echo(f"\n[{n}/6 {time.perf_counter() - start:5.0f}s] {text}")

    data = out / "data"
    step(1, f"generating {settings.per_class} synthetic images per class ({', '.join(synthetic.CLASSES)}) in {data}")
    synthetic.write_image_folder(data, settings.per_class, seed=settings.seed)

    step(2, f"bcc-edge train --data {data} --model bcc-small --image-size {settings.image_size} --epochs {settings.epochs} --out {out / 'run'}")
    run = train(
        TrainConfig(data=str(data), out=str(out / "run"), model="bcc-small", image_size=settings.image_size,
                    batch_size=16, epochs=settings.epochs, patience=0, seed=settings.seed),
        log=echo,
    )

    export = out / "export"
    step(3, f"bcc-edge export {run.path} --int8 --qat-epochs {settings.qat_epochs} --out {export}")
    export_run(run.path, export, ExportOptions(int8=True, qat_epochs=settings.qat_epochs, seed=settings.seed), log=echo)

    step(4, f"bcc-edge verify {export} --data {data}")
    verified = verify_export(export, data)
    echo(format_report(verified))

    step(5, f"bcc-edge infer --model {export / 'model_int8.tflite'} (one image per class)")
    classifier = EdgeClassifier(export / "model_int8.tflite", threads=1)
    samples = [sorted((data / kind).glob("*.jpg"))[-1] for kind in synthetic.CLASSES]
    for prediction in classifier.predict_paths(samples):
        echo(f"  {Path(prediction.path).parent.name + '/' + Path(prediction.path).name:<32} -> {prediction.label} ({prediction.score:.1%})")

    report_dir = out / "report"
    step(6, f"bcc-edge report {export} --data {data} --out {report_dir}")
    make_report([str(export)], str(data), report_dir, log=echo)

    int8 = next(a for a in verified.artifacts if a.file == "model_int8.tflite")
    seconds = time.perf_counter() - start
    echo(f"\ndone in {seconds:.0f}s: INT8 TFLite val accuracy {int8.result.accuracy:.1%}, "
         f"verify {'passed' if verified.passed else 'FAILED'}")
    echo(f"report: {report_dir / 'report.html'}")
    return DemoResult(out, verified.passed, int8.result.accuracy, report_dir / "report.html", seconds)
