"""The model zoo: every architecture of the two seed projects, plus our edge model `bcc-small`.

All models are flat functional tf_keras models that quantization-aware training accepts:
Conv2D(use_bias=False) -> BatchNormalization -> ReLU (DepthwiseConv2D likewise), no nested
models and no preprocessing layers (inputs are already normalised by `bcc_edge.preprocess`),
ending in a float32 softmax so mixed precision keeps probabilities in float32.

Seed project 000 ("seed000-*", 8-class PBC, 224x224, batch 16, Adam, sparse CCE, BN after
every Conv2D, dropout 0.5 in the dense layers, ReLU/softmax) described four models by name and
accuracy only; seed project 004 ("seed004-*", 4 classes) gave layer counts and widths. Layer
details the seeds did not publish (kernel sizes, pooling, dense widths of seed000) are filled
in with the conventional choice and stated in each builder's docstring. Where a seed model
would flatten a large feature map (tens of millions of dense weights at 224 px),
GlobalAveragePooling is used instead, so the models train on a CPU and accept any input size.

`build(name, num_classes, input_size, **kwargs)` rebuilds a model from what a run's
config.json stores (nanoGPT style); `describe` gives parameters and FLOPs for `bcc-edge models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from bcc_edge.errors import BccError


# Training defaults (TrainConfig fields) of a model; a field left at None takes its recipe's.
SEED_RECIPE = MappingProxyType({
    # The seed projects: Adam at its default rate, constant, plain cross-entropy, batch 16.
    "batch_size": 16,
    "optimizer": "adam",
    "lr": 1e-3,
    "schedule": "constant",
    "warmup_epochs": 0.0,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
})
EDGE_RECIPE = MappingProxyType({
    # Measured on PBC (2 CPU cores): AdamW, short warm-up, cosine to zero (val accuracy swings
    # at high learning rates with BatchNorm), label smoothing; batch 64 keeps the CPU busy.
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 2e-3,
    "schedule": "cosine",
    "warmup_epochs": 2.0,
    "weight_decay": 0.05,
    "label_smoothing": 0.1,
})


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # "seed000", "seed004" or "ours"
    input_size: int  # default square input side
    augment: str  # default augmentation preset (bcc_edge.augment.PRESETS)
    summary: str
    builder: Callable[..., Any]
    recipe: Mapping[str, Any] = field(default_factory=lambda: SEED_RECIPE)  # read-only, shared


def _layers():
    from bcc_edge._tf import keras

    return keras.layers


# Keras' default BN momentum (0.99) averages over ~100 steps; at the high learning rates of
# early training the weights move faster than that, the moving statistics go stale and
# validation collapses to one class (measured on PBC: 14% val with moving statistics, 92% with
# fresh ones, after 2 epochs). 0.9 (PyTorch's default) tracks the weights within ~10 steps.
BN_MOMENTUM = 0.9


def batch_norm(x, name: str):
    return _layers().BatchNormalization(momentum=BN_MOMENTUM, name=name)(x)


def conv_bn_relu(x, filters: int, name: str, kernel: int = 3, strides: int = 1):
    layers = _layers()
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(x, f"{name}_bn")
    return layers.ReLU(name=f"{name}_relu")(x)


def separable_block(x, filters: int, name: str, strides: int = 1):
    """Depthwise 3x3 -> BN -> ReLU, pointwise 1x1 -> BN -> ReLU (MobileNetV1); a residual add
    when the shape is unchanged (helps the deeper stages train; Add quantises cleanly)."""
    layers = _layers()
    shortcut = x
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = batch_norm(x, f"{name}_dw_bn")
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = conv_bn_relu(x, filters, f"{name}_pw", kernel=1)
    if strides == 1 and shortcut.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def _inputs(input_size: int | tuple[int, int]):
    from bcc_edge._tf import keras

    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    return keras.Input((int(h), int(w), 3), name="image")


def _head(x, num_classes: int, dense: tuple[int, ...] = (), dropout: float = 0.5, pool: str = "gap"):
    """Pooling/flatten, ReLU dense layers each followed by dropout, float32 softmax."""
    layers = _layers()
    x = layers.GlobalAveragePooling2D(name="gap")(x) if pool == "gap" else layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense):
        x = layers.Dense(units, activation="relu", name=f"fc{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i + 1}_dropout")(x)
    if not dense and dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    return layers.Activation("softmax", dtype="float32", name="probs")(x)


LOGITS_LAYER = "logits"  # the last Dense layer of every registry model; a softmax follows it


def logits_layer(model):
    """The layer whose output feeds the model's final softmax layer: its logits (the
    registry's models: the Dense named LOGITS_LAYER)."""
    from bcc_edge._tf import keras

    last = model.layers[-1]
    is_softmax = isinstance(last, keras.layers.Softmax) or getattr(getattr(last, "activation", None), "__name__", "") == "softmax"
    inbound = last.inbound_nodes[0].inbound_layers if last.inbound_nodes else None
    if not is_softmax or isinstance(last, keras.layers.Dense) or not isinstance(inbound, keras.layers.Layer):
        raise BccError(f"model {model.name!r} does not end in a softmax layer whose input could be exported as its logits")
    return inbound


def logits_model(model):
    """The same model (sharing its weights) ending at its logits, before the softmax."""
    from bcc_edge._tf import keras

    return keras.Model(model.input, logits_layer(model).output, name=model.name)


def _model(inputs, outputs, name: str):
    from bcc_edge._tf import keras

    return keras.Model(inputs, outputs, name=name.replace("-", "_"))


def _vgg_blocks(x, widths: tuple[int, ...], convs_per_block: int):
    layers = _layers()
    for b, filters in enumerate(widths):
        for c in range(convs_per_block):
            x = conv_bn_relu(x, filters, f"block{b + 1}_{c + 1}")
        x = layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
    return x


# ----------------------------------------------------------------------------- seed 000 (8-class PBC)


def seed000_basic(num_classes: int, input_size=224, name: str = "seed000-basic"):
    """Basic CNN: 3 blocks of one 3x3 conv (32, 64, 128) + BN + ReLU + 2x2 max-pool, then
    global average pooling, Dense 128 ReLU, dropout 0.5, softmax."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (32, 64, 128), convs_per_block=1)
    return _model(inputs, _head(x, num_classes, dense=(128,)), name)


def seed000_aug(num_classes: int, input_size=224):
    """The basic CNN unchanged; the seed trained it with random flips and rotations, which is
    this entry's default augmentation preset ("flip-rotate")."""
    return seed000_basic(num_classes, input_size, name="seed000-aug")


def seed000_complex(num_classes: int, input_size=224):
    """Complex CNN: 4 blocks of two 3x3 convs (32, 64, 128, 256) each + BN + ReLU, 2x2
    max-pool per block, global average pooling, Dense 256 ReLU, dropout 0.5, softmax."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (32, 64, 128, 256), convs_per_block=2)
    return _model(inputs, _head(x, num_classes, dense=(256,)), "seed000-complex")


def seed000_enhanced(num_classes: int, input_size=224):
    """Enhanced complex CNN (the seed's best, 93.07%): 5 blocks of two 3x3 convs
    (32, 64, 128, 256, 256) with BN after every Conv2D, ReLU, 2x2 max-pool per block, global
    average pooling, Dense 512 and Dense 256 (ReLU) each followed by dropout 0.5, softmax.
    Its default augmentation is the seed's flip/rotation set: the seed's improvements built on
    one another, and the deepest net overfits most without it."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (32, 64, 128, 256, 256), convs_per_block=2)
    return _model(inputs, _head(x, num_classes, dense=(512, 256)), "seed000-enhanced")


# ----------------------------------------------------------------------------- seed 004 (4 classes)


def seed004_m1(num_classes: int, input_size=128):
    """M1: two 3x3 convs x 32 (+ BN + ReLU), each followed by 2x2 max-pool, flatten, softmax."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (32, 32), convs_per_block=1)
    return _model(inputs, _head(x, num_classes, dropout=0.0, pool="flatten"), "seed004-m1")


def seed004_m2(num_classes: int, input_size=128):
    """M2: four 3x3 convs x 64 (+ BN + ReLU), each followed by 2x2 max-pool, flatten,
    Dense 256 ReLU, dropout 0.5, softmax."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (64, 64, 64, 64), convs_per_block=1)
    return _model(inputs, _head(x, num_classes, dense=(256,), pool="flatten"), "seed004-m2")


def seed004_m3(num_classes: int, input_size=128):
    """M3: four 3x3 convs x 32 (+ BN + ReLU), each followed by 2x2 max-pool, flatten,
    Dense 64 ReLU, dropout 0.5, softmax."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (32, 32, 32, 32), convs_per_block=1)
    return _model(inputs, _head(x, num_classes, dense=(64,), pool="flatten"), "seed004-m3")


def seed004_m4(num_classes: int, input_size=128):
    """M4, VGG style: 3 blocks of two 3x3 convs (32, 64, 128) + BN + ReLU, 2x2 max-pool per
    block, global average pooling (a VGG flatten would put 4M weights in one dense layer at
    128 px), Dense 128 ReLU, dropout 0.5, softmax."""
    inputs = _inputs(input_size)
    x = _vgg_blocks(inputs, (32, 64, 128), convs_per_block=2)
    return _model(inputs, _head(x, num_classes, dense=(128,)), "seed004-m4")


# ----------------------------------------------------------------------------- ours

# (filters, stride) of the depthwise-separable stages after the stem.
BCC_SMALL_STAGES = ((64, 1), (96, 2), (96, 1), (160, 2), (160, 1), (256, 2), (256, 1), (256, 1), (320, 1))


def bcc_small(num_classes: int, input_size=128, width: float = 1.0, dropout: float = 0.2):
    """Edge model: 3x3 stride-2 conv stem (32), nine depthwise-separable blocks
    (MobileNetV1 style, strides 1,2,1,2,1,2,1,1,1; residual adds where the shape allows),
    global average pooling, dropout, softmax. 0.34M parameters (~0.4 MB as INT8)
    and 58M multiply-accumulates at 128 px. `width` scales every channel count."""

    def ch(c: int) -> int:
        return max(8, int(round(c * width / 8)) * 8)

    inputs = _inputs(input_size)
    x = conv_bn_relu(inputs, ch(32), "stem", strides=2)
    for i, (filters, strides) in enumerate(BCC_SMALL_STAGES):
        x = separable_block(x, ch(filters), f"sep{i + 1}", strides=strides)
    return _model(inputs, _head(x, num_classes, dropout=dropout), "bcc-small")


REGISTRY: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("seed000-basic", "seed000", 224, "none", "basic CNN, 3 conv blocks + Dense 128", seed000_basic),
        ModelInfo("seed000-aug", "seed000", 224, "flip-rotate", "basic CNN trained with flip/rotation augmentation", seed000_aug),
        ModelInfo("seed000-complex", "seed000", 224, "none", "complex CNN, 4 blocks of 2 convs + Dense 256", seed000_complex),
        ModelInfo("seed000-enhanced", "seed000", 224, "flip-rotate", "enhanced complex CNN (seed best, 93.07%), 5x2 convs + Dense 512/256", seed000_enhanced),
        ModelInfo("seed004-m1", "seed004", 128, "none", "M1: 2 conv x 32, flatten", seed004_m1),
        ModelInfo("seed004-m2", "seed004", 128, "none", "M2: 4 conv x 64 + Dense 256", seed004_m2),
        ModelInfo("seed004-m3", "seed004", 128, "none", "M3: 4 conv x 32 + Dense 64", seed004_m3),
        ModelInfo("seed004-m4", "seed004", 128, "none", "M4: VGG style, 3 blocks of 2 convs (32/64/128)", seed004_m4),
        ModelInfo("bcc-small", "ours", 128, "dihedral-color", "edge model: 9 depthwise-separable blocks, <1 MB INT8", bcc_small, EDGE_RECIPE),
    )
}
DEFAULT_MODEL = "seed000-enhanced"


def get(name: str) -> ModelInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BccError(f"unknown model {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def build(name: str, num_classes: int, input_size: int | tuple[int, int] | None = None, **kwargs):
    """A fresh tf_keras model. `input_size` (int side or (h, w)) defaults to the model's own."""
    info = get(name)
    if num_classes < 2:
        raise BccError(f"a classifier needs at least 2 classes; got {num_classes}")
    size = info.input_size if input_size is None else input_size
    sides = (size, size) if isinstance(size, int) else tuple(size)
    if min(sides) < 16:
        raise BccError(f"input size {size} is too small (16 pixels at least)")
    try:
        return info.builder(num_classes, input_size=size, **kwargs)
    except TypeError as exc:  # an option the builder does not take
        raise BccError(f"model {name}: {exc}") from None


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass through Conv2D, DepthwiseConv2D and Dense layers
    (BN, activations, pooling and adds are not counted; FLOPs = 2 x MACs)."""
    from bcc_edge._tf import keras

    layers = keras.layers
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):  # subclass of Conv2D: test it first
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * c
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * (layer.input.shape[-1] // layer.groups) * cout
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def describe(name: str, num_classes: int = 8, input_size: int | None = None) -> dict[str, Any]:
    """Name, source, input size, parameter count and FLOPs of one registry model."""
    info = get(name)
    model = build(name, num_classes, input_size)
    macs = count_macs(model)
    size = info.input_size if input_size is None else input_size
    return {
        "name": name,
        "source": info.source,
        "input_size": [size, size],
        "num_classes": num_classes,
        "params": int(model.count_params()),
        "macs": macs,
        "flops": 2 * macs,
        "augment": info.augment,
        "summary": info.summary,
    }
