"""bcc-edge: blood-cell image classification from training to the edge device."""

__version__ = "0.1.0"
