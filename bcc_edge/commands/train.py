"""`bcc-edge train`: a thin wrapper over bcc_edge.train.train / resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from bcc_edge.commands._common import user_errors
from bcc_edge.errors import BccError


def _model_kwargs(pairs: list[str]) -> dict[str, Any]:
    """`--model-arg width=1.25` -> {"width": 1.25} (values parsed as JSON when they can be)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BccError(f"--model-arg expects KEY=VALUE; got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _config_file(path: Path) -> dict[str, Any]:
    from bcc_edge.train import TrainConfig

    try:
        doc = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise BccError(f"--config {path} is not valid JSON ({exc})") from None
    known = set(TrainConfig.__dataclass_fields__)
    if not isinstance(doc, dict) or set(doc) - known:
        unknown = sorted(set(doc) - known) if isinstance(doc, dict) else "not an object"
        raise BccError(f"--config {path}: unknown settings {unknown}")
    return doc


@user_errors
def train_command(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="ImageFolder root (<root>/<class>/*) or a dataset folder with splits.csv."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Run directory to create."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Architecture (see `bcc-edge models`) \\[default: seed000-enhanced]."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run directory (accepts --epochs, --patience, --time-limit and runtime options)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="JSON file of training settings (e.g. configs/pbc-bcc-small.json); flags override it."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Square input side in pixels \\[default: the model's]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Global batch size \\[default: 16 for seed models, 64 for bcc-small]."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Epochs in total \\[default: 50]; on --resume may exceed the original."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping: epochs without val-accuracy gain \\[default: 10; 0 = off]. Best weights are kept."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adam, adamw or sgd \\[default: the model's recipe]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate \\[default: the model's recipe]."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="Learning-rate schedule after warm-up: constant or cosine."),
    warmup_epochs: Optional[float] = typer.Option(None, "--warmup-epochs", help="Linear warm-up length in epochs."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Decoupled weight decay (adamw, sgd)."),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", help="Label smoothing in [0, 1)."),
    class_weight: Optional[str] = typer.Option(None, "--class-weight", help="none or balanced (inverse class frequency) \\[default: none]."),
    augment: Optional[str] = typer.Option(None, "--augment", help="Augmentation preset: none, flip-rotate, dihedral-color, full \\[default: the model's]."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated subset of classes to train on."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Val share for data without splits.csv \\[default: 0.2]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for split, initialisation, shuffling and augmentation \\[default: 0]."),
    interpolation: Optional[str] = typer.Option(None, "--interpolation", help="Resize interpolation: area or bilinear \\[default: area]."),
    jpeg_draft: Optional[bool] = typer.Option(None, "--jpeg-draft/--no-jpeg-draft", help="Decode JPEGs with DCT downscaling (the device then does too) \\[default: on]."),
    model_arg: List[str] = typer.Option([], "--model-arg", help="Builder option KEY=VALUE, e.g. width=1.25 (repeatable)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Minutes of training at most; the cosine schedule anneals by then."),
    ema: Optional[float] = typer.Option(None, "--ema", help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); it is what is evaluated and saved."),
    teacher: Optional[List[str]] = typer.Option(None, "--teacher", help="A finished run of the same classes to distil from (repeatable: the teachers are averaged)."),
    distill: Optional[float] = typer.Option(None, "--distill", help="Weight of the teachers' predictions in the training targets \\[default: 0.5]."),
    resize_jitter: Optional[float] = typer.Option(None, "--resize-jitter", help="Share of training samples decoded at full size and resized bilinearly, as other clients resize \\[default: 0.0]."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Decoded-image cache \\[default: $BCC_EDGE_CACHE or ~/.cache/bcc-edge]."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Decode every image, read and write no cache."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="auto, default, mirrored (local GPUs) or multi-worker (TF_CONFIG) \\[default: auto]."),
    mixed_precision: Optional[str] = typer.Option(None, "--mixed-precision", help="auto (on with a GPU), on (float16), bf16 (bfloat16: faster VGG-style nets on CPUs with bfloat16 instructions) or off."),
    xla: Optional[str] = typer.Option(None, "--xla", help="auto (on with a GPU), on or off."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for TensorFlow \\[default: all]."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bars \\[default: only on a terminal]."),
) -> None:
    """Train a classifier into a run directory (config, labels, preprocessing, splits, history,
    checkpoints, best model, val metrics). Ctrl-C finishes the current step and saves a
    checkpoint (twice: stop at once); --resume continues it."""
    from bcc_edge import train as train_mod

    # Every TrainConfig field but data and out has a same-named option, three of them spelled
    # for the command line; those given override the config file and the model's recipe.
    options = {
        **locals(),
        "classes": [c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        "model_kwargs": _model_kwargs(model_arg) or None,
        "use_cache": False if no_cache else None,
    }
    given = {name: options[name] for name in train_mod.TrainConfig.__dataclass_fields__ if name not in ("data", "out") and options.get(name) is not None}

    if resume is not None:
        if data or out or config:
            raise BccError("--resume continues an existing run: leave out --data, --out and --config")
        train_mod.resume(resume, progress=progress, **given)
        return
    settings = _config_file(config) if config else {}
    settings.update({k: v for k, v in (("data", data), ("out", out)) if v is not None})
    settings.update(given)
    missing = [f"--{k}" for k in ("data", "out") if not settings.get(k)]
    if missing:
        raise BccError(f"missing {' and '.join(missing)} (or --resume RUN_DIR)")
    train_mod.train(train_mod.TrainConfig(**settings), progress=progress)
