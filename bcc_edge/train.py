"""Training: from a folder of images to a best-val float model and a complete run directory.

`train(TrainConfig(...))` starts a run, `resume(run_dir, epochs=...)` continues one. The loop
is a plain custom loop (nanoGPT style) over one tf.data pipeline that spans all epochs: the
uint8 images live in memory, every epoch draws a seeded permutation inside TensorFlow, and the
iterator is created once (re-creating it per epoch stalled for ~35 s on 2 cores).

Per epoch it writes history.csv, checkpoints/last.keras (model + optimizer) and
checkpoints/state.json; whenever val accuracy improves (ties: lower val loss), best.keras and
val_metrics.json. Ctrl-C or SIGTERM saves a mid-epoch checkpoint, which `resume` continues from
the exact batch it stopped at.

The learning rate is set every step from the config (warm-up, then constant or cosine to ~0),
so `resume` with more epochs simply stretches the schedule. With `time_limit` the cosine
follows whichever of step count and wall-clock time is further along, so a run always anneals
before its time is up.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bcc_edge import __version__, data, fileio, models, rundir
from bcc_edge.augment import PRESETS as AUGMENT_PRESETS
from bcc_edge.errors import BccError
from bcc_edge.forecast import Forecast
from bcc_edge.preprocess import INTERPOLATIONS, PreprocessSpec
from bcc_edge.progress import ProgressBar, format_duration
from bcc_edge.rundir import RunDir

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")
EVAL_BATCH = 64
# Settings that `resume` may change; everything else would make the run a different run.
RESUMABLE = ("epochs", "patience", "time_limit", "strategy", "mixed_precision", "xla", "threads", "cache_dir", "use_cache")


@dataclass
class TrainConfig:
    """Everything a run depends on. None means "the model's recipe default" (models.ModelInfo.recipe)."""

    data: str
    out: str
    model: str = models.DEFAULT_MODEL
    image_size: int | None = None  # square side; None: the model's default
    batch_size: int | None = None  # global batch (split across replicas)
    epochs: int = 50
    patience: int = 10  # early stopping on val accuracy; 0 disables
    optimizer: str | None = None
    lr: float | None = None
    schedule: str | None = None
    warmup_epochs: float | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    class_weight: str = "none"
    augment: str | None = None  # preset name; None: the model's default
    classes: list[str] | None = None  # train on these classes only
    val_fraction: float = 0.2  # ImageFolder data without a split file
    seed: int = 0
    interpolation: str = "area"
    jpeg_draft: bool = True
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # builder options (e.g. width)
    time_limit: float | None = None  # minutes of training (epoch loop) at most
    ema: float | None = None  # decay of an exponential moving average of the weights, which is evaluated and kept
    teacher: list[str] | None = None  # run directories whose models' predictions the training targets blend in
    distill: float = 0.5  # weight of the teachers' predictions in the targets (with teacher)
    resize_jitter: float = 0.0  # share of training samples decoded at full size and resized bilinearly
    cache_dir: str | None = None
    use_cache: bool = True
    strategy: str = "auto"
    mixed_precision: str = "auto"
    xla: str = "auto"
    threads: int | None = None  # CPU threads for TensorFlow ops; None: all

    def resolved(self) -> "TrainConfig":
        """A copy with every None default filled in from the model's recipe, validated."""
        info = models.get(self.model)
        recipe = info.recipe
        filled = {k: (recipe[k] if getattr(self, k) is None and k in recipe else getattr(self, k)) for k in _fields()}
        if filled["image_size"] is None:
            filled["image_size"] = info.input_size
        if filled["augment"] is None:
            filled["augment"] = info.augment
        cfg = TrainConfig(**filled)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise BccError(message)

        for name, kind in _NUMERIC.items():  # config files can hold anything
            value = getattr(self, name)
            ok = value is None or (not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int))
            check(ok, f"{name} must be {'a number' if kind is float else 'an integer'}; got {value!r}")
        check(self.classes is None or (isinstance(self.classes, list) and all(isinstance(c, str) for c in self.classes)), "classes must be a list of names")
        check(isinstance(self.model_kwargs, dict), "model_kwargs must be an object")

        check(self.image_size is None or self.image_size >= 16, f"--image-size must be at least 16; got {self.image_size}")
        check(self.batch_size is None or self.batch_size >= 1, f"--batch-size must be positive; got {self.batch_size}")
        check(self.epochs >= 1, f"--epochs must be at least 1; got {self.epochs}")
        check(self.patience >= 0, f"--patience must be 0 (off) or more; got {self.patience}")
        check(self.optimizer is None or self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        check(self.schedule is None or self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}")
        check(self.lr is None or self.lr > 0, f"--lr must be positive; got {self.lr}")
        check(self.warmup_epochs is None or self.warmup_epochs >= 0, "--warmup-epochs must be 0 or more")
        check(self.weight_decay is None or self.weight_decay >= 0, "--weight-decay must be 0 or more")
        check(self.label_smoothing is None or 0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)")
        check(self.class_weight in CLASS_WEIGHTS, f"--class-weight must be one of {', '.join(CLASS_WEIGHTS)}")
        check(self.augment is None or self.augment in AUGMENT_PRESETS, f"--augment must be one of {', '.join(AUGMENT_PRESETS)}")
        check(self.interpolation in INTERPOLATIONS, f"--interpolation must be one of {', '.join(INTERPOLATIONS)}")
        check(self.time_limit is None or self.time_limit > 0, "--time-limit must be positive (minutes)")
        check(self.threads is None or self.threads >= 1, "--threads must be positive")
        check(self.ema is None or 0 < self.ema < 1, "--ema must be a decay in (0, 1), e.g. 0.999")
        check(self.teacher is None or (isinstance(self.teacher, list) and all(isinstance(t, str) for t in self.teacher)), "teacher must be a list of run directories")
        check(0 <= self.distill <= 1, "--distill must be in [0, 1]")
        check(0 <= self.resize_jitter <= 1, "--resize-jitter must be in [0, 1]")


_NUMERIC = {
    **dict.fromkeys(("image_size", "batch_size", "epochs", "patience", "seed", "threads"), int),
    **dict.fromkeys(("lr", "warmup_epochs", "weight_decay", "label_smoothing", "val_fraction", "time_limit", "ema", "distill", "resize_jitter"), float),
}


def _fields() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quiet(message: str) -> None:
    """The log of workers other than the chief: one voice per cluster."""


# ----------------------------------------------------------------------------- entry points


def train(config: TrainConfig, *, log: Callable[[str], None] | None = None, progress: bool | None = None) -> RunDir:
    """Train a new run into `config.out` and return it. `progress`: bars on stderr (None:
    only on a terminal); `log` receives one line per epoch and per notable event."""
    log = log or _stderr
    cfg = config.resolved()
    out = Path(cfg.out).expanduser()

    from bcc_edge import distribute

    distribute.set_threads(cfg.threads)
    runtime = distribute.configure(cfg.strategy, cfg.mixed_precision, cfg.xla)
    log = log if runtime.is_chief else _quiet
    # Other workers of a cluster see the chief's files appear: only the chief checks.
    if runtime.is_chief and (out / rundir.CONFIG).exists():
        raise BccError(f"{out} already holds a run; continue it with --resume {out} or choose another --out")
    if out.exists() and not out.is_dir():
        raise BccError(f"--out {out} exists and is not a directory")
    arrays = _prepare_new_run(cfg, out, runtime, log, progress)
    return _fit(out, cfg, arrays, runtime, log, progress)


def resume(run_dir: str | os.PathLike, *, log: Callable[[str], None] | None = None, progress: bool | None = None, **changes) -> RunDir:
    """Continue an interrupted or finished run; `changes` may set RESUMABLE fields, e.g.
    epochs=80 to train further than first asked."""
    log = log or _stderr
    run = RunDir(run_dir)
    unknown = set(changes) - set(RESUMABLE)
    if unknown:
        raise BccError(f"cannot change {', '.join(sorted(unknown))} when resuming (only {', '.join(RESUMABLE)})")
    saved = {k: v for k, v in run.config.items() if k in _fields()}
    saved["model_kwargs"] = {k: v for k, v in run.config["model_kwargs"].items() if k not in ("num_classes", "input_size")}
    cfg = dataclasses.replace(TrainConfig(**saved), **{k: v for k, v in changes.items() if v is not None})
    cfg.validate()

    from bcc_edge import distribute

    distribute.set_threads(cfg.threads)
    runtime = distribute.configure(cfg.strategy, cfg.mixed_precision, cfg.xla)
    log = log if runtime.is_chief else _quiet
    spec = run.spec
    loaded = []
    for split in ("train", "val"):
        records = run.records(split)
        images, labels, bad = data.load_arrays(records, spec, cfg.cache_dir, use_cache=cfg.use_cache, progress=progress)
        if bad:
            raise BccError(f"{len(bad)} {split} file(s) of this run can no longer be read, e.g. {bad[0][0]}: {bad[0][1]}")
        loaded.append((images, labels))
    arrays = _Arrays(*loaded[0], *loaded[1], labels=run.labels, spec=spec)
    arrays = _extras(arrays, run.records("train"), run.path, cfg, runtime, log, progress)
    return _fit(run.path, cfg, arrays, runtime, log, progress)


# ----------------------------------------------------------------------------- data


@dataclass
class _Arrays:
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    labels: list[str]
    spec: PreprocessSpec
    train_alternative: np.ndarray | None = None  # train_x decoded the --resize-jitter way
    soft_targets: np.ndarray | None = None  # the teachers' predictions on train_x


def _alternative_spec(spec: PreprocessSpec) -> PreprocessSpec:
    """--resize-jitter's second decoding: full size, then bilinear without antialiasing, as
    MediaPipe and most OpenCV code resize (the run's own path is DCT-scaled and area-averaged)."""
    return dataclasses.replace(spec, interpolation="bilinear", jpeg_draft=False)


def _extras(arrays: _Arrays, records, out: Path, cfg: TrainConfig, runtime, log, progress) -> _Arrays:
    """The --resize-jitter images and the --teacher targets of the training images."""
    if cfg.resize_jitter > 0:
        alternative, _, bad = data.load_arrays(records, _alternative_spec(arrays.spec), cfg.cache_dir, use_cache=cfg.use_cache, progress=progress)
        if bad:
            raise BccError(f"{len(bad)} training file(s) cannot be decoded at full size for --resize-jitter, e.g. {bad[0][0]}: {bad[0][1]}")
        arrays.train_alternative = alternative
    if cfg.teacher:
        from bcc_edge.distill import TEACHER_TARGETS, teacher_targets

        arrays.soft_targets = teacher_targets(cfg.teacher, records, arrays.labels, out / TEACHER_TARGETS, runtime.is_chief, log, progress)
    return arrays


def _prepare_new_run(cfg: TrainConfig, out: Path, runtime, log, progress) -> _Arrays:
    """Index, hash, split, decode; write every file of the run except the training results."""
    index = data.discover(cfg.data, cfg.classes, cfg.val_fraction, cfg.seed)
    dup = index.duplicates
    if dup["removed_from_val"]:
        log(f"leakage guard: {len(dup['removed_from_val'])} val file(s) are byte-identical to training files; kept out of val")
    if dup["label_conflicts"]:
        log(f"{len(dup['label_conflicts'])} file content(s) appear under different labels; dropped (see data.json)")
    size = (cfg.image_size, cfg.image_size)
    spec = PreprocessSpec(size, cfg.interpolation, jpeg_draft=cfg.jpeg_draft)
    decoded = {}
    bad = []
    for split, records in (("train", index.train), ("val", index.val)):
        images, labels, split_bad = data.load_arrays(records, spec, cfg.cache_dir, use_cache=cfg.use_cache, progress=progress)
        decoded[split] = (images, labels)
        bad += split_bad
    index = index.without(bad)
    for path, reason in index.bad[:5]:
        log(f"skipped unreadable file {path}: {reason}")
    if len(index.bad) > 5:
        log(f"... and {len(index.bad) - 5} more unreadable files (all listed in {out / rundir.BAD_FILES})")
    if not index.train or not index.val:
        raise BccError(f"no readable {'training' if not index.train else 'validation'} images in {cfg.data}")
    mean, std = data.channel_stats(decoded["train"][0])
    spec = dataclasses.replace(spec, mean=mean, std=std)
    counts = {split: len(records) for split, records in (("train", index.train), ("val", index.val))}
    log(f"data: {len(index.labels)} classes, {counts['train']} train / {counts['val']} val images ({index.split_source}), {len(index.bad)} unreadable")

    if runtime.is_chief:
        info = models.get(cfg.model)
        config_doc = {
            "toolkit_version": __version__,
            **dataclasses.asdict(cfg),
            "model_kwargs": {"num_classes": len(index.labels), "input_size": list(size), **cfg.model_kwargs},
            "model_source": info.source,
            "data_root": str(index.root),
            "runtime": runtime.describe(),
        }
        fileio.write_text(out / rundir.SPLITS, index.splits_csv())
        fileio.write_json(out / rundir.LABELS, index.labels)
        fileio.write_json(out / rundir.PREPROCESS, spec.to_dict())
        fileio.write_json(out / rundir.DATA, {"fingerprint": index.fingerprint, **index.summary()})
        fileio.write_text(out / rundir.BAD_FILES, "".join(f"{p}\t{r}\n" for p, r in index.bad))
        fileio.write_json(out / rundir.CONFIG, config_doc)  # last: its presence marks a started run
    arrays = _Arrays(*decoded["train"], *decoded["val"], labels=index.labels, spec=spec)
    return _extras(arrays, index.train, out, cfg, runtime, log, progress)


# ----------------------------------------------------------------------------- the loop


def learning_rate(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up over `warmup_epochs`, then constant or cosine to zero."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - warmup) / max(1.0, total_steps - warmup)
    progress = min(1.0, max(progress, time_fraction))
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimizer(cfg: TrainConfig, runtime):
    from bcc_edge._tf import keras

    if cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay)
        # Decay only the conv/dense kernels: shrinking BN scales or biases only hurts.
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    elif cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=cfg.lr)
    else:
        opt = keras.optimizers.SGD(learning_rate=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay or None)
    # float16 needs loss scaling (its small range underflows gradients); bfloat16 has float32's range
    return keras.mixed_precision.LossScaleOptimizer(opt) if runtime.policy == "mixed_float16" else opt


def _class_weights(cfg: TrainConfig, labels: np.ndarray, num_classes: int) -> np.ndarray:
    if cfg.class_weight == "none":
        return np.ones(num_classes, np.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


def _train_dataset(arrays: _Arrays, cfg: TrainConfig, runtime, steps: int, start_epoch: int, skip_steps: int):
    """All remaining epochs as one distributed dataset of per-replica batches."""
    from bcc_edge._tf import tf

    n = len(arrays.train_x)
    load = data.batch_loader(
        arrays.train_x, arrays.train_y, arrays.spec, cfg.augment, cfg.seed,
        alternative=arrays.train_alternative, alternative_share=cfg.resize_jitter, soft_targets=arrays.soft_targets,
    )
    global_batch = cfg.batch_size

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        pipelines, pipeline = ctx.num_input_pipelines, ctx.input_pipeline_id
        local_batches = steps * (runtime.replicas // pipelines)  # per epoch, this pipeline

        def epoch_batches(epoch):
            # A seeded permutation per epoch, identical on every worker; each takes its share.
            order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.constant(cfg.seed, tf.int64), epoch])))
            share = tf.reshape(order[: steps * global_batch], [steps, pipelines, -1])[:, pipeline]
            indices = tf.reshape(share, [local_batches, per_replica])
            batch_seeds = (epoch * pipelines + pipeline) * local_batches + tf.range(local_batches, dtype=tf.int64)
            return tf.data.Dataset.from_tensor_slices((batch_seeds, indices))

        ds = tf.data.Dataset.range(start_epoch, cfg.epochs).flat_map(epoch_batches)
        ds = ds.skip(skip_steps * (runtime.replicas // pipelines))
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    return runtime.strategy.distribute_datasets_from_function(dataset_fn)


def _train_step(model, optimizer, runtime, num_classes: int, cfg: TrainConfig, class_weights: np.ndarray, ema_model=None):
    """One optimizer step on the next batch. Targets: the (smoothed) labels, blended with the
    teachers' predictions (weight cfg.distill) when the batches carry them; with `ema_model`,
    its weights then move towards the model's by the EMA decay (warmed up over the first
    steps as tf.train.ExponentialMovingAverage does, so early weights do not linger)."""
    from bcc_edge._tf import keras, tf

    loss_fn = keras.losses.CategoricalCrossentropy(reduction=keras.losses.Reduction.NONE)
    weights = tf.constant(class_weights)
    scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    smoothing, global_batch = cfg.label_smoothing, cfg.batch_size

    def replica_step(x, y, *soft):
        target = tf.one_hot(y, num_classes) * (1.0 - smoothing) + smoothing / num_classes
        if soft:
            target = (1.0 - cfg.distill) * target + cfg.distill * soft[0]
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = loss_fn(target, probs)
            loss = tf.reduce_sum(per_example * tf.gather(weights, y)) / global_batch
            objective = optimizer.get_scaled_loss(loss) if scaled else loss
        grads = tape.gradient(objective, model.trainable_variables)
        if scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y), tf.float32))
        return tf.reduce_sum(per_example), correct

    if runtime.xla:
        replica_step = tf.function(replica_step, jit_compile=True)
    strategy = runtime.strategy
    pairs = list(zip(ema_model.weights, model.weights)) if ema_model is not None else []

    @tf.function
    def step(iterator):
        loss_sum, correct = strategy.run(replica_step, args=next(iterator))
        if pairs:
            updates = tf.cast(optimizer.iterations, tf.float32)
            decay = tf.minimum(cfg.ema, (1.0 + updates) / (10.0 + updates))
            for average, value in pairs:
                average.assign(decay * average + (1.0 - decay) * tf.cast(value, average.dtype))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, loss_sum, axis=None), strategy.reduce(total, correct, axis=None)

    return step


def _evaluator(model, arrays: _Arrays, label_smoothing: float):
    """Val loss (same loss as training, unweighted) and accuracy of the current weights."""
    from bcc_edge._tf import tf

    val = data.make_dataset(arrays.val_x, arrays.val_y, arrays.spec, EVAL_BATCH, training=False)
    predict = tf.function(lambda x: model(x, training=False))
    num_classes = len(arrays.labels)

    def evaluate() -> tuple[float, float]:
        probs = np.concatenate([predict(x).numpy() for x, _ in val]).astype(np.float64)
        y = arrays.val_y
        target = np.full(probs.shape, label_smoothing / num_classes)
        target[np.arange(len(y)), y] += 1.0 - label_smoothing
        loss = -(target * np.log(np.clip(probs, 1e-7, 1.0 - 1e-7))).sum(axis=1).mean()
        return float(loss), float((probs.argmax(axis=1) == y).mean())

    return evaluate


class _Saver:
    """Model files of the run. In multi-worker training every worker must save (variables
    may be read collectively) but only the chief's copy is kept."""

    def __init__(self, out: Path, runtime):
        self.out = out
        self.chief = runtime.is_chief

    def save(self, model, name: str) -> None:
        """A .keras file; it holds the optimizer state when the model is compiled."""
        if self.chief:
            with fileio.atomic_path(self.out / name) as tmp:
                model.save(tmp)
        else:
            with tempfile.TemporaryDirectory() as scratch:
                model.save(Path(scratch) / Path(name).name)

    def write_json(self, name: str, obj) -> None:
        if self.chief:
            fileio.write_json(self.out / name, obj)

    def write_history(self, rows: list[dict]) -> None:
        if self.chief:
            text = fileio.csv_text(rundir.HISTORY_COLUMNS, ([_fmt(row[c]) for c in rundir.HISTORY_COLUMNS] for row in rows))
            fileio.write_text(self.out / rundir.HISTORY, text)


def _fmt(value) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _build_or_restore(out: Path, cfg: TrainConfig, arrays: _Arrays, runtime):
    """(model, optimizer, EMA model or None), from the run's checkpoints when there are some."""
    from bcc_edge import distribute
    from bcc_edge._tf import keras

    checkpoint = out / rundir.LAST_CHECKPOINT
    with distribute.precision_policy(runtime), runtime.strategy.scope():
        if checkpoint.is_file():
            model = keras.models.load_model(checkpoint, compile=True)
            optimizer = model.optimizer
        else:
            keras.utils.set_random_seed(cfg.seed)
            model = _build_model(cfg, len(arrays.labels))
            optimizer = _optimizer(cfg, runtime)
            model.compile(optimizer=optimizer)  # attaches the optimizer, so checkpoints carry its state
        ema = None
        if cfg.ema:
            ema = _build_model(cfg, len(arrays.labels))
            saved = out / rundir.EMA_CHECKPOINT
            ema.set_weights(keras.models.load_model(saved, compile=False).get_weights() if saved.is_file() else model.get_weights())
        return model, optimizer, ema


def _build_model(cfg: TrainConfig, num_classes: int):
    return models.build(cfg.model, num_classes, cfg.image_size, **cfg.model_kwargs)


def _inference_copy(model, cfg: TrainConfig, num_classes: int):
    """What best.keras holds: the weights in a fresh float32 model without optimizer state,
    whatever precision training used (export and QAT start from it)."""
    from bcc_edge._tf import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = _build_model(cfg, num_classes)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def _fit(out: Path, cfg: TrainConfig, arrays: _Arrays, runtime, log, progress) -> RunDir | None:
    """The epoch loop; returns the run (None on a cluster worker that cannot see its folder)."""
    from bcc_edge import distribute
    from bcc_edge._tf import meet_onednn_uint8_note

    global_batch = cfg.batch_size
    if global_batch % runtime.replicas:
        raise BccError(f"--batch-size {global_batch} must be a multiple of the {runtime.replicas} replicas")
    n_train = len(arrays.train_x)
    steps = n_train // global_batch
    if steps == 0:
        raise BccError(f"--batch-size {global_batch} is larger than the {n_train} training images")

    book = _Bookkeeping(out, cfg, _Saver(out, runtime), log)
    start_epoch, skip = book.state["epoch"], book.state["step_in_epoch"]
    if start_epoch >= cfg.epochs:
        log(f"run already trained {start_epoch} epoch(s); nothing to do (ask for more with --epochs)")
        return RunDir(out)

    model, optimizer, ema = _build_or_restore(out, cfg, arrays, runtime)
    kept = ema if ema is not None else model  # what is evaluated and saved as best.keras
    num_classes = len(arrays.labels)
    class_weights = _class_weights(cfg, arrays.train_y, num_classes)
    with distribute.precision_policy(runtime):
        step_fn = _train_step(model, optimizer, runtime, num_classes, cfg, class_weights, ema)
    evaluate = _evaluator(kept, arrays, cfg.label_smoothing)
    meet_onednn_uint8_note()
    iterator = iter(_train_dataset(arrays, cfg, runtime, steps, start_epoch, skip))
    total_steps = cfg.epochs * steps
    limit_s = cfg.time_limit * 60 if cfg.time_limit else None
    if not start_epoch and not skip:
        log(
            f"training {cfg.model} ({model.count_params():,} parameters) at {cfg.image_size}px for {cfg.epochs} epochs, "
            f"{steps} steps of {global_batch}; {runtime.kind} strategy x{runtime.replicas}"
            + (f" on {runtime.gpus} GPU(s)" if runtime.gpus else " on the CPU (no GPU found)")
            + (f", mixed precision ({runtime.policy.removeprefix('mixed_')})" if runtime.mixed_precision else "")
            + (", XLA" if runtime.xla else "")
        )

    epoch, step_in_epoch = start_epoch, skip
    forecast = Forecast(cfg, runtime, steps, cfg.epochs - start_epoch, log)
    bar = started = None
    lr = learning_rate(cfg, epoch * steps + step_in_epoch, total_steps, steps)
    stop = _StopRequest.install()
    try:
        while epoch < cfg.epochs:
            bar = ProgressBar(steps, f"epoch {epoch + 1}/{cfg.epochs}", items_per_step=global_batch, enabled=progress if runtime.is_chief else False)
            bar.done = step_in_epoch
            loss_sum = correct = 0.0
            seen = 0
            started = time.perf_counter()
            while step_in_epoch < steps:
                stop.check()
                global_step = epoch * steps + step_in_epoch
                fraction = (book.state["train_seconds"] + time.perf_counter() - started) / limit_s if limit_s else 0.0
                lr = learning_rate(cfg, global_step, total_steps, steps, fraction)
                optimizer.learning_rate = lr
                batch_loss, batch_correct = step_fn(iterator)
                loss_sum += batch_loss
                correct += batch_correct
                seen += global_batch
                step_in_epoch += 1
                forecast.step()
                bar.update(postfix=f"loss {float(loss_sum) / seen:.4f} acc {float(correct) / seen:.4f}" if bar.due() else None)
            seconds = time.perf_counter() - started
            bar.close()
            epoch += 1
            step_in_epoch = 0
            book.state["train_seconds"] += time.perf_counter() - started
            started = None
            row = {
                "epoch": epoch,
                # NaN when an interruption came between the last batch and the evaluation
                "loss": float(loss_sum) / seen if seen else math.nan,
                "accuracy": float(correct) / seen if seen else math.nan,
                **dict(zip(("val_loss", "val_accuracy"), evaluate())),
                "lr": lr,
                "seconds": seconds,
                "images_per_second": seen / seconds,
            }
            if book.end_epoch(row, model, ema, lambda: _inference_copy(kept, cfg, num_classes), limit_s):
                break
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if started is not None:  # the unfinished epoch's time counts towards --time-limit
            book.state["train_seconds"] += time.perf_counter() - started
        book.checkpoint(model, ema, epoch, step_in_epoch, interrupted=True)
        log(f"interrupted: checkpoint saved at epoch {epoch} + {step_in_epoch} steps; continue with: bcc-edge train --resume {out}")
        raise
    finally:
        stop.restore()
    best = book.state["best"]
    log(f"best val accuracy {best['accuracy']:.4f} (epoch {best['epoch']}); model: {out / rundir.BEST}")
    return RunDir(out) if out.is_dir() else None


class _Bookkeeping:
    """What the end of an epoch records and decides: the history, the best model so far, early
    stopping, the time limit, and the resume point (checkpoints/state.json + last.keras)."""

    def __init__(self, out: Path, cfg: TrainConfig, saver: "_Saver", log):
        run = RunDir(out) if out.is_dir() else None  # a worker of a new run may have no folder
        self.cfg, self.saver, self.log = cfg, saver, log
        self.state = (run and run.state) or {"epoch": 0, "step_in_epoch": 0, "best": None, "wait": 0, "train_seconds": 0.0}
        if self.state.get("stopped_early"):
            log(f"early stopping ended this run at epoch {self.state['epoch']}; continuing with the patience counter reset")
            self.state["wait"] = 0
        self.history = [row for row in (run.history() if run else []) if row["epoch"] <= self.state["epoch"]]

    def end_epoch(self, row: dict, model, ema, inference_copy, limit_s: float | None) -> bool:
        """Record a finished epoch (`row` of history.csv); True when training should stop."""
        cfg, state, epoch = self.cfg, self.state, row["epoch"]
        self.history.append(row)
        best = state["best"]
        val_acc, val_loss = row["val_accuracy"], row["val_loss"]
        improved = best is None or val_acc > best["accuracy"] or (val_acc == best["accuracy"] and val_loss < best["loss"])
        if improved:
            state["best"] = {"accuracy": val_acc, "loss": val_loss, "epoch": epoch}
            state["wait"] = 0
            self.saver.save(inference_copy(), rundir.BEST)
            self.saver.write_json(rundir.VAL_METRICS, state["best"])
        else:
            state["wait"] += 1
        self.saver.write_history(self.history)
        stop_early = bool(cfg.patience) and state["wait"] >= cfg.patience
        # Stop when one more epoch like this one would overrun the limit.
        out_of_time = limit_s is not None and state["train_seconds"] + row["seconds"] > limit_s
        self.checkpoint(model, ema, epoch, 0, stopped_early=stop_early, interrupted=False)
        self.log(
            f"epoch {epoch}/{cfg.epochs}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}  "
            f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  lr {row['lr']:.2e}  "
            f"{row['images_per_second']:.0f} img/s  {format_duration(row['seconds'])}" + ("  *best*" if improved else "")
        )
        if stop_early:
            self.log(f"early stopping: no val accuracy gain for {cfg.patience} epochs; best epoch {state['best']['epoch']}")
            return True
        if out_of_time and epoch < cfg.epochs:
            self.log(f"time limit of {cfg.time_limit:g} min reached after epoch {epoch}")
            return True
        return False

    def checkpoint(self, model, ema, epoch: int, step_in_epoch: int, **flags) -> None:
        self.saver.save(model, rundir.LAST_CHECKPOINT)
        if ema is not None:
            self.saver.save(ema, rundir.EMA_CHECKPOINT)
        self.state.update(epoch=epoch, step_in_epoch=step_in_epoch, epochs=self.cfg.epochs, **flags)
        self.saver.write_json(rundir.STATE, self.state)


class _StopRequest:
    """Ctrl-C or a scheduler's SIGTERM during training: the first one stops at the next step
    boundary, where the checkpoint is clean; a second one stops at once. A KeyboardInterrupt
    raised at an arbitrary point inside TensorFlow/Keras code can leave native state half
    updated (a SIGSEGV instead of a checkpoint was seen once, the signal landing as an epoch
    ended). Nothing is printed from the handler: it may run in the middle of a write to stderr."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    @classmethod
    def install(cls) -> "_StopRequest":
        """Handle the signals from now on (signal handlers can only be set on the main thread)."""
        import threading

        stop = cls()
        if threading.current_thread() is threading.main_thread():
            stop._previous = {sig: signal.signal(sig, stop._handle) for sig in cls._SIGNALS}
        return stop

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
