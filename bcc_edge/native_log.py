"""Native libraries' log lines on file descriptor 2 that tell a bcc-edge user nothing.

TensorFlow prints its startup notes through absl before logging is set up, so
TF_CPP_MIN_LOG_LEVEL cannot silence them, and a CPU-only machine gets an "E0000 ... failed call
to cuInit" line that reads like an error; the TFLite converter prints its quantiser settings.
Output is captured around the calls that print them and passed on less the known lines:
anything else (real diagnostics, other threads' output) still reaches stderr, only later.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

_ABSL = rb"[IWE]\d{4} [\d:. ]+\s+\d+ "
TENSORFLOW_NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|" + _ABSL + rb"port\.cc:\d+\] oneDNN custom operations are on"
    rb"|" + _ABSL + rb"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"
    rb"|" + _ABSL + rb"cuda_platform\.cc:\d+\] failed call to cuInit: .*UNKNOWN ERROR \(303\)"
    rb"|" + _ABSL + rb"util\.cc:\d+\] oneDNN supports DT_UINT8 only on platforms with AVX-512"
    rb"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$"
)
# LiteRT, once per process: noise on a command whose stderr carries the run's own messages.
XNNPACK_NOTICE = re.compile(rb"INFO: Created TensorFlow Lite XNNPACK delegate")


@contextmanager
def dropping(noise: re.Pattern[bytes]) -> Iterator[None]:
    """Pass on what native code writes to fd 2 meanwhile, less the lines `noise` matches."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (closed, or embedded)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not noise.match(line)]
            if kept:
                os.write(2, b"".join(kept))
