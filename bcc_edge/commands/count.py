"""`bcc-edge count`: the differential count of one sample, or of each folder (no TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from bcc_edge.commands import _options as o
from bcc_edge.commands._common import user_errors
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError


@user_errors
def count_command(
    inputs: List[str] = typer.Argument(..., metavar="INPUT", help="Image files, directories (recursive), glob patterns, or - to read paths from stdin."),
    by_folder: bool = typer.Option(False, "--by-folder", help="Each directory that holds images is a sample (default: all inputs are one)."),
    model: o.Model = None,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the counts to FILE (complete or not at all) instead of stdout."),
    threads: o.Threads = None,
    batch: o.Batch = None,
    backend: o.Backend = "auto",
    provider: o.Provider = "cpu",
    invoke_timeout: o.InvokeTimeout = DEFAULT_INVOKE_TIMEOUT,
    review_threshold: o.ReviewThreshold = None,
    no_review: o.NoReview = False,
    no_guard: o.NoGuard = False,
    skip_selftest: o.SkipSelftest = False,
) -> None:
    """Per sample: cells, accepted, referred for review, errors; per class the count and percentage
    of the accepted cells with a 95% Wilson interval (and with the referred cells' provisional
    labels); a drift warning when many images do not look like the training images.

    Exit code: 0 counted (even with unreadable files, which are counted as errors), 2 usage or
    model error.
    """
    from bcc_edge.device import count as counting
    from bcc_edge.device.selftest import open_checked
    from bcc_edge.infer import gather_inputs, open_output
    from bcc_edge.preprocess import usable_cpus
    from bcc_edge.runtime import default_model, iter_predictions

    if fmt not in counting.FORMATS:
        raise BccError(f"unknown --format {fmt!r}; choose one of {', '.join(counting.FORMATS)}")
    classifier = open_checked(
        model or default_model(), selftest=not skip_selftest, **o.classifier_options(backend, provider, review_threshold, no_review, no_guard)
    )
    paths, _ = gather_inputs(inputs)
    predictions = iter_predictions(classifier, paths, batch_size=batch, workers=threads or usable_cpus(), timeout=invoke_timeout)
    doc = counting.count(predictions, classifier, by_folder)
    with open_output(str(output) if output else None, sys.stdout) as stream:
        counting.write(doc, fmt, stream)
