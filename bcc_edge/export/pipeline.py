"""`export_run`: a training run directory -> a complete export directory, or nothing at all.

Everything is built in a temporary directory beside `out` and renamed into place only after
the self-check passed, so a failure (bad input, unquantisable model, broken artifact, Ctrl-C)
leaves `out` as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bcc_edge import __version__
from bcc_edge.errors import BccError
from bcc_edge.export import formats as _formats
from bcc_edge.export import manifest as _manifest
from bcc_edge.export import trust
from bcc_edge.export.context import ExportContext, ExportOptions
from bcc_edge.export.selfcheck import CheckedArtifact, self_check
from bcc_edge.keras_predictor import KerasPredictor
from bcc_edge.rundir import RunDir

CALIBRATION_FILE = "calibration.csv"


@dataclass
class ExportResult:
    out: Path
    manifest: dict[str, Any]
    checks: list[CheckedArtifact]


def export_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
    log: Callable[[str], None] = lambda message: None,
) -> ExportResult:
    """Build the artifacts `options` asks for from `run_dir` into the directory `out`."""
    options.check()
    selected = _formats.select(options.formats, options.int8)
    out = Path(out)
    if out.exists() and not options.force:
        raise BccError(f"{out} already exists; use --force to replace it")
    run = RunDir(run_dir)
    _check_run(run)
    ctx = ExportContext(run, options, log)
    cset = ctx.calibration
    log(f"calibration: {len(cset.records)} images from {cset.source} {cset.per_class()}")
    missing = sorted(set(ctx.labels) - set(cset.per_class()))
    if missing:
        log(f"warning: the calibration set has no images of {', '.join(missing)}; their activation ranges may be too narrow")
    ctx.calib_images  # noqa: B018  (decode now: a bad image fails the export before any conversion)
    if options.int8 and not options.ptq:
        from bcc_edge import qat

        problems = qat.unsupported_layers(ctx.float_model)  # every offending layer, before minutes of work
        if problems:
            raise BccError(f"cannot quantise model {ctx.float_model.name!r}: " + "; ".join(problems))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        built = []
        for fmt in selected:
            log(f"building {fmt.file}")
            fmt.build(ctx, staging / fmt.file)
            built.append(fmt)
        (staging / CALIBRATION_FILE).write_text(cset.text, encoding="utf-8")
        log(f"self-check on {len(ctx.calib_images)} calibration images")
        float_reference = KerasPredictor(ctx.float_model, ctx.spec, ctx.labels)
        references = {f.file: ctx.calibrated_reference if f.calibrated_in_graph else float_reference for f in built}
        checks = self_check([(staging / f.file, f.precision, references[f.file]) for f in built], ctx.calib_images)
        for check in checks:
            log("  " + check.line())
        broken = [c for c in checks if c.problems]
        if broken:
            raise BccError("export refused, broken artifact(s): " + " | ".join(f"{c.file}: {'; '.join(c.problems)}" for c in broken))
        log(f"calibration, review policy, input guard and golden vectors from {len(ctx.heldout[2])} held-back images")
        for fmt in built:
            log("  " + trust.complete(ctx, fmt, staging / fmt.file))
        manifest = _manifest_dict(run, ctx, cset.describe(), [(staging / f.file, f) for f in built])
        (staging / _manifest.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, manifest, checks)


def _check_run(run: RunDir) -> None:
    """Read everything export needs up front, so a partial run fails before minutes of work."""
    for attribute in ("config", "labels", "spec", "fingerprint", "float_val_accuracy", "best_model_path"):
        try:
            getattr(run, attribute)
        except (KeyError, TypeError, ValueError) as exc:
            raise BccError(f"{run.path} is not a complete bcc-edge run: cannot read its {attribute} ({type(exc).__name__}: {exc})") from None


def _manifest_dict(run: RunDir, ctx: ExportContext, calibration: dict, files) -> dict[str, Any]:
    calibration = {**calibration, "file": CALIBRATION_FILE, "data_root": str(ctx.options.calib_root or run.data_root)}
    return {
        "toolkit_version": __version__,
        "run_dir": str(run.path.resolve()),
        "model_name": ctx.model_name,
        "quantization": ctx.quantization,
        "io": ctx.options.io if ctx.options.int8 else None,
        "calibration": calibration,
        "float_val_accuracy": run.float_val_accuracy,
        "artifacts": [_manifest.artifact_entry(path, f.format, f.precision) for path, f in files],
    }


def _replace_dir(staging: Path, out: Path) -> None:
    """Move the finished export into place; an old `out` (only with --force) goes last."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.replace(out, old / "previous")
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old / "previous", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
