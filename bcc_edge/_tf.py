"""The one place TensorFlow is imported.

tfmot only works with Keras 2, so the legacy tf-keras must be selected before TensorFlow
is first imported. Every training/export module imports `tf` and `keras` from here.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bcc_edge import native_log  # noqa: E402

with native_log.dropping(native_log.TENSORFLOW_NOISE):
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    # The first device query prints cuInit's failure on a CPU-only machine; meet it here. (It
    # does not start the runtime: threads and logical devices can still be configured.)
    tf.config.list_physical_devices("GPU")

__all__ = ["tf", "keras", "meet_onednn_uint8_note"]


def meet_onednn_uint8_note() -> None:
    """On CPUs without AVX-512, oneDNN prints a one-time "E0000 ... supports DT_UINT8 only"
    note the first time a uint8 tensor is transposed (the augmentation's quarter turns, in the
    middle of a training log). Trigger it here, where it is dropped; the runtime must already
    be configured (this runs an op)."""
    with native_log.dropping(native_log.TENSORFLOW_NOISE):
        tf.transpose(tf.zeros((1, 1, 1, 1), tf.uint8), [0, 2, 1, 3])
