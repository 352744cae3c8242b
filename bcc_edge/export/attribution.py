"""Who made a model and what its training data asks of anyone who passes it on: written into
the metadata other tools show (TFLite Metadata, ONNX doc_string and metadata_props).

This is the one home of the PBC citation; bcc_edge/assets/provenance.json repeats it for the
shipped model and a test holds the two equal. The default attribution is PBC's because it is
the data set bcc-edge models are trained on; an export of a model trained on other data passes
its own `Attribution` (ExportOptions.attribution).
"""

from __future__ import annotations

from dataclasses import dataclass

AUTHOR = "bcc-edge developers"
PBC_CITATION = (
    "Acevedo A., Merino A., Alférez S., Molina Á., Boldú L., Rodellar J. A dataset of microscopic "
    "peripheral blood cell images for development of automatic recognition systems. Data in Brief 30 "
    "(2020) 105474, doi:10.17632/snkd93bnjr.1 (Mendeley Data, V1), doi:10.1016/j.dib.2020.105474. "
    "Licence: CC BY 4.0."
)
PBC_LICENCE = "CC BY 4.0: the weights are derived from the PBC data set; anyone who redistributes them must carry its citation."


@dataclass(frozen=True)
class Attribution:
    author: str = AUTHOR
    licence: str = PBC_LICENCE
    citation: str = PBC_CITATION
