"""`bcc-edge selftest`: does this device reproduce the export? (no TensorFlow)"""

from __future__ import annotations

import json

import typer

from bcc_edge.commands import _options as o
from bcc_edge.commands._common import user_errors


@user_errors
def selftest_command(
    model: o.Model = None,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    backend: o.Backend = "auto",
    provider: o.Provider = "cpu",
) -> None:
    """Run the golden images stored in the model through this device's decode, preprocess and
    invoke, exactly as `bcc-edge infer` does, and compare each stage with the export's.

    Exit code: 0 every stage reproduced (exactly, or floats within tolerance), 1 a mismatch,
    2 an unusable model (or one without golden vectors).
    """
    from bcc_edge.device.selftest import run
    from bcc_edge.errors import BccError
    from bcc_edge.runtime import EdgeClassifier, default_model

    classifier = EdgeClassifier(model or default_model(), threads=1, backend=backend, provider=provider)
    report = run(classifier)
    if not report.available:
        raise BccError(f"{classifier.path}: {report.summary()}")
    if as_json:
        typer.echo(json.dumps({"model": str(classifier.path), "backend": classifier.backend, **report.to_dict()}, indent=2))
    else:
        typer.echo(f"selftest of {classifier.path} ({classifier.backend}, {classifier.precision})")
        typer.echo(f"{'image':<36} {'decode':<17} {'preprocess':<17} {'invoke':<17}")
        by_image: dict[str, dict[str, str]] = {}
        for check in report.checks:
            by_image.setdefault(check.image, {})[check.stage] = check.status
        for image, stages in by_image.items():
            typer.echo(f"{image[:36]:<36} " + " ".join(f"{stages.get(stage, '-'):<17}" for stage in ("decode", "preprocess", "invoke")))
        for check in report.checks:
            if check.status != "exact" and check.detail:
                typer.echo(f"  {check.image} {check.stage}: {check.status}: {check.detail}")
        typer.echo(report.summary())
    if not report.passed:
        raise typer.Exit(1)
