"""Export a training run as deployable artifacts (TFLite and ONNX, float and INT8), each
carrying its labels and preprocessing inside (`bcc_edge.metadata`), plus manifest.json.

The formats table is in `formats.py`; one module per format family builds its artifacts.
"""

from bcc_edge.export.context import ExportOptions
from bcc_edge.export.pipeline import ExportResult, export_run

__all__ = ["ExportOptions", "ExportResult", "export_run"]
