"""The one place TensorFlow is imported.

tfmot only works with Keras 2, so the legacy tf-keras must be selected before TensorFlow
is first imported. Every training/export module imports `tf` and `keras` from here.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
