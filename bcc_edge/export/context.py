"""What every artifact builder needs from a run, computed once and only when asked for:
the float models, the calibration images, the quantisation-trained models, the metadata.

Two model inputs exist: the run's normalised input (what Keras trained on), and grey levels
0..255 with the normalisation as the model's first layer ("raw", `export.normalize`), which
clients that know nothing of our spec can feed."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bcc_edge import __version__
from bcc_edge import calib as _calib
from bcc_edge.errors import BccError, first_line
from bcc_edge.export import normalize
from bcc_edge.export.attribution import Attribution
from bcc_edge.export.standard_metadata import About
from bcc_edge.export.trust import DEFAULT_REVIEW_TARGET, GUARD_PERCENTILE
from bcc_edge.metadata import FORMAT_VERSION
from bcc_edge.preprocess import PreprocessSpec
from bcc_edge.rundir import RunDir

# Input/output of model_int8.tflite. Not uint8: model_uint8.tflite is the raw-bytes model, and a
# uint8 model_int8.tflite with normalised quantisation would invite clients to feed it raw bytes.
IO_TYPES = ("int8", "float32")


@dataclass(frozen=True)
class ExportOptions:
    """How `export_run` builds artifacts; the CLI flags map one to one."""

    int8: bool = False
    io: str = "int8"  # input/output type of the INT8 TFLite model
    formats: tuple[str, ...] | None = None  # None: every format family ("tflite", "onnx")
    qat_epochs: int = 2
    ptq: bool = False  # post-training quantisation instead of QAT
    qat_lr: float = 1e-4
    calib: str | None = None  # calibration manifest; None: derived from the run's train split
    calib_root: str | None = None  # data root the manifest's paths are relative to (default: the run's)
    calib_per_class: int = _calib.DEFAULT_PER_CLASS
    force: bool = False
    seed: int = 0
    opset: int = 17
    attribution: Attribution = Attribution()  # author, licence and data citation other tools show
    review_target: float = DEFAULT_REVIEW_TARGET  # accuracy the review policy keeps on the accepted images
    guard_percentile: float = GUARD_PERCENTILE  # held-back images' distance percentile that flags an input

    def check(self) -> None:
        if self.io not in IO_TYPES:
            raise BccError(f"--io must be one of {', '.join(IO_TYPES)} (got {self.io!r})")
        if self.ptq and not self.int8:
            raise BccError("--ptq chooses how INT8 models are made; it needs --int8")
        if self.int8 and not self.ptq and self.qat_epochs < 1:
            raise BccError(f"--qat-epochs must be at least 1 (got {self.qat_epochs}); use --ptq for no training")
        if not (self.qat_lr > 0 and math.isfinite(self.qat_lr)):
            raise BccError(f"--qat-lr must be a positive number (got {self.qat_lr})")
        if not 0.0 < self.review_target < 1.0:
            raise BccError(f"--review-target must be an accuracy in (0, 1) (got {self.review_target})")
        if not 50.0 <= self.guard_percentile < 100.0:
            raise BccError(f"--guard-percentile must be in [50, 100) (got {self.guard_percentile})")


class ExportContext:
    def __init__(self, run: RunDir, options: ExportOptions, log: Callable[[str], None]):
        self.run = run
        self.options = options
        self.log = log
        self.spec = run.spec.with_output("float32")
        self.raw_spec = self.spec.resized_only().with_output("float32")
        self.labels = run.labels
        self.model_name = str(run.config.get("model", "model"))

    # ------------------------------------------------------------------ inputs

    @functools.cached_property
    def float_model(self):
        try:
            return self.run.load_best_model()
        except (OSError, ValueError, TypeError) as exc:  # what tf_keras raises for damaged files
            raise BccError(f"cannot load the float model {self.run.best_model_path}: {first_line(exc)}") from None

    @functools.cached_property
    def calibration(self) -> _calib.CalibrationSet:
        opts = self.options
        if opts.calib is None:
            records = _calib.select(self.run.records("train"), opts.calib_per_class, seed=opts.seed)
            return _calib.from_records(records, self.run.data_root, "train split of the run")
        return _calib.load(opts.calib, opts.calib_root or self.run.data_root, self.labels)

    @functools.cached_property
    def calib_images(self) -> np.ndarray:
        """Calibration images decoded and resized (uint8), as every predictor receives them."""
        from bcc_edge.data import load_arrays

        cset = self.calibration
        images, _, bad = load_arrays(list(cset.records), self.spec, **self.cache_options)
        if bad:
            path, reason = bad[0]
            raise BccError(f"calibration set ({cset.source}): {len(bad)} unreadable image(s), e.g. {path}: {reason}")
        return images

    @property
    def cache_options(self) -> dict[str, Any]:
        """Decode through the run's image cache, as training did (export then skips JPEG decoding)."""
        return {"cache_dir": self.run.config.get("cache_dir"), "use_cache": bool(self.run.config.get("use_cache", True))}

    @functools.cached_property
    def calib_inputs(self) -> np.ndarray:
        """Calibration images as float model inputs: the same preprocessing as the float model."""
        return self.spec.apply_batch(self.calib_images)

    def representative_batches(self):
        """Single-image float32 batches (what the TFLite and onnxruntime calibrators step through)."""
        for x in self.calib_inputs:
            yield x[None]

    # ------------------------------------------------------------------ quantisation

    @property
    def quantization(self) -> str | None:
        if not self.options.int8:
            return None
        return "ptq" if self.options.ptq else "qat"

    @functools.cached_property
    def logits_model(self):
        """The float model ending at its logits: what bcc-edge's own artifacts compute (the
        device calibrates and softmaxes them; an 8-bit softmax would put every probability
        on a 1/256 grid)."""
        from bcc_edge.models import logits_model

        return logits_model(self.float_model)

    @functools.cached_property
    def qat_model(self):
        """The logits model fine-tuned with fake quantisation on the run's train split."""
        return self._quantization_trained(self.logits_model, raw=False)

    @functools.cached_property
    def raw_qat_model(self):
        """`raw_float_model` fine-tuned the same way, its input range pinned to [0, 255]."""
        return self._quantization_trained(self.raw_float_model, raw=True)

    def _quantization_trained(self, model, raw: bool):
        from bcc_edge import qat
        from bcc_edge._tf import keras
        from bcc_edge.data import load_arrays, make_dataset

        opts = self.options
        keras.utils.set_random_seed(opts.seed)
        wrapped = qat.quantize_for_training(model)
        from_logits = not raw  # the raw-input model keeps its softmax for clients other than bcc-edge
        images, labels, _ = load_arrays(self.run.records("train"), self.spec, **self.cache_options)
        if len(images) == 0:
            raise BccError(f"{self.run.path}: the train split has no readable images to fine-tune on")
        batch = int(self.run.config.get("batch_size", 32))
        dataset = make_dataset(images, labels, self.spec, batch, training=True, augment=self.run.config.get("augment", True), seed=opts.seed)
        if raw:
            normalize.prepare_qat(wrapped)
            dataset = dataset.map(normalize.to_grey_levels(self.spec))
        what = "the model with the normalisation inside" if raw else "the model"
        self.log(f"QAT of {what}: {opts.qat_epochs} epoch(s) on {len(images)} train images, lr {opts.qat_lr:g} cosine to 0")
        qat.finetune(
            wrapped,
            dataset.repeat(),
            opts.qat_epochs,
            steps_per_epoch=math.ceil(len(images) / batch),
            lr=opts.qat_lr,
            label_smoothing=float(self.run.config.get("label_smoothing", 0.0)),
            log=self.log,
            from_logits=from_logits,
        )
        return wrapped

    @property
    def int8_keras_model(self):
        """What the TFLite converter quantises: the QAT model, or the logits model for PTQ."""
        return self.logits_model if self.options.ptq else self.qat_model

    @property
    def raw_int8_keras_model(self):
        """What the TFLite converter quantises for the uint8-input model."""
        return self.raw_float_model if self.options.ptq else self.raw_qat_model

    @functools.cached_property
    def raw_float_model(self):
        """The float model taking grey levels 0..255, its normalisation as the first layer."""
        return normalize.with_input_normalization(self.float_model, self.spec.mean, self.spec.std)

    @functools.cached_property
    def int8_float_weights_model(self):
        """A plain float model for converters that quantise by themselves (onnxruntime):
        with QAT, the float architecture carrying the QAT-fine-tuned weights."""
        if self.options.ptq:
            return self.logits_model
        from bcc_edge import qat

        return qat.transfer_weights(self.qat_model, self.logits_model)

    # ------------------------------------------------------------------ held-back images

    @functools.cached_property
    def heldout(self) -> tuple[list, np.ndarray, np.ndarray]:
        """(records, uint8 images, labels) of the run's val split: what calibration, the
        review policy, the guard's threshold and the golden vectors are fitted on (never
        training images)."""
        from bcc_edge.data import load_arrays

        records = self.run.records("val")
        images, labels, bad = load_arrays(records, self.spec, **self.cache_options)
        gone = {path for path, _ in bad}
        return [r for r in records if r.path not in gone], images, labels

    @functools.cached_property
    def float_logits(self) -> np.ndarray:
        """The float model's logits on the held-back images."""
        from bcc_edge.keras_predictor import KerasPredictor

        return KerasPredictor(self.logits_model, self.spec, self.labels).predict_proba(self.heldout[1])

    @functools.cached_property
    def guard_train_images(self) -> np.ndarray:
        """Up to trust.GUARD_TRAIN_IMAGES training images (a seeded sample): the input guard's reference."""
        from bcc_edge.data import load_arrays
        from bcc_edge.export.trust import GUARD_TRAIN_IMAGES

        records = self.run.records("train")
        chosen = np.random.default_rng(self.options.seed).permutation(len(records))[:GUARD_TRAIN_IMAGES]
        images, _, _ = load_arrays([records[i] for i in sorted(chosen)], self.spec, **self.cache_options)
        return images

    @functools.cached_property
    def float_temperature(self) -> float:
        """The temperature calibrating the float model's logits on the held-back images."""
        from bcc_edge.export.trust import fit_temperature

        return fit_temperature(self.float_logits, self.heldout[2])

    @functools.cached_property
    def calibrated_raw_float_model(self):
        """`raw_float_model` with `float_temperature` folded into its last Dense layer (logits / T
        exactly, and the softmax stays the plain one every client's kernel runs the same way)."""
        from bcc_edge._tf import keras

        from bcc_edge.models import logits_layer

        model = keras.models.clone_model(self.raw_float_model)
        model.set_weights(self.raw_float_model.get_weights())
        dense = logits_layer(model)
        dense.set_weights([w / self.float_temperature for w in dense.get_weights()])
        return model

    @property
    def calibrated_reference(self):
        """`calibrated_raw_float_model` as a predictor (it takes grey levels)."""
        from bcc_edge.keras_predictor import KerasPredictor

        return KerasPredictor(self.calibrated_raw_float_model, self.raw_spec, self.labels)

    @functools.cached_property
    def golden_images(self):
        from bcc_edge.export.trust import pick_golden

        records, _, labels = self.heldout
        return pick_golden(records, self.float_logits.argmax(axis=1) == labels)

    # ------------------------------------------------------------------ metadata

    def metadata(self, precision: str, input_q: dict[str, Any], output_q: dict[str, Any], spec: PreprocessSpec | None = None, logits: bool = False) -> dict[str, Any]:
        """The `bcc_edge` document for one artifact (schema in ARCHITECTURE.md). `spec`: what
        the artifact takes, `self.spec` or `self.raw_spec`; for the latter the normalisation
        inside the model is recorded too (for information: `preprocess` is what to feed)."""
        int8 = precision == "int8"
        spec = spec or self.spec
        h, w = spec.size
        inp = {**input_q, "shape": [1, h, w, 3]}
        if spec == self.raw_spec:
            inp["normalization_in_model"] = {"mean": list(self.spec.mean), "std": list(self.spec.std)}
        return {
            "format_version": FORMAT_VERSION,
            "toolkit_version": __version__,
            "model_name": self.model_name,
            "labels": list(self.labels),
            "preprocess": spec.to_dict(),
            "input": inp,
            "output": {**output_q, "activation": "logits" if logits else "softmax"},
            "quantization": self.quantization if int8 else None,
            "data_fingerprint": self.run.fingerprint,
            "float_val_accuracy": self.run.float_val_accuracy,
            "calibration": self.calibration.describe() if int8 else None,
        }

    def about(self) -> About:
        """The model-level fields of the standard TFLite metadata."""
        who = self.options.attribution
        classes = ", ".join(self.labels)
        return About(
            name=self.model_name,
            description=(
                f"Classifies a microscope image of one blood cell into {len(self.labels)} classes: {classes}. "
                f"Exported by bcc-edge {__version__}; bcc-edge reads its own 'bcc_edge' metadata entry. "
                f"Training data: {who.citation}"
            ),
            version=f"bcc-edge {__version__}, data {self.run.fingerprint[:12]}",
            author=who.author,
            license=who.licence,
        )


def quant_record(dtype: str, scale: float = 1.0, zero_point: int = 0) -> dict[str, Any]:
    """An input/output entry; float tensors get scale 1, zero point 0 (the runtime's convention)."""
    if dtype == "float32":
        scale, zero_point = 1.0, 0
    return {"dtype": dtype, "scale": float(scale), "zero_point": int(zero_point)}

