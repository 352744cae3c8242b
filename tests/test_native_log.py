"""native_log.dropping: known native noise lines go, everything else reaches stderr."""

from __future__ import annotations

import os

import pytest

from bcc_edge import native_log

# Verbatim from TensorFlow 2.21 on a CPU-only machine (timestamps and thread ids vary).
TF_STARTUP = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1795466331.961748    7180 port.cc:153] oneDNN custom operations are on. You may see "
    b"slightly different numerical results due to floating-point round-off errors.\n",
    b"I0000 00:00:1795466331.962095    7180 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n",
    b"E0000 00:00:1795466339.321108    7180 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    b"Failed call to cuInit: UNKNOWN ERROR (303)\n",
    b"E0000 00:00:1795466339.494077    7180 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512. "
    b"Falling back to the default Eigen-based implementation if present.\n",
]
KEPT = [
    b"E0000 00:00:1795466339.321108    7180 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE\n",
    b"F0000 00:00:1795466339.494077    7180 check.cc:10] Check failed: something real\n",
    b"ERROR: something real\n",
]


@pytest.mark.parametrize(
    "noise, dropped",
    [(native_log.TENSORFLOW_NOISE, TF_STARTUP), (native_log.XNNPACK_NOTICE, [b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"])],
    ids=["tensorflow", "xnnpack"],
)
def test_only_the_known_lines_are_dropped(capfd, noise, dropped):
    with native_log.dropping(noise):
        for line in [*dropped, *KEPT]:
            os.write(2, line)
    assert capfd.readouterr().err.encode() == b"".join(KEPT)


def test_output_survives_an_exception(capfd):
    with pytest.raises(RuntimeError):
        with native_log.dropping(native_log.TENSORFLOW_NOISE):
            os.write(2, b"before the failure\n")
            raise RuntimeError
    assert capfd.readouterr().err == "before the failure\n"


def test_tensorflow_startup_notes_do_not_reach_stderr():
    """Importing TF, asking for GPUs and transposing uint8 (what `train` and `export` do first)
    print none of the known notes: they are dropped where they are triggered."""
    import subprocess
    import sys

    code = (
        "from bcc_edge._tf import tf, meet_onednn_uint8_note\n"
        "tf.config.list_physical_devices('GPU')\n"
        "meet_onednn_uint8_note()\n"
        "tf.transpose(tf.zeros((2, 3, 4, 1), tf.uint8), [0, 2, 1, 3])\n"
        "import sys; print('done', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    lines = proc.stderr.splitlines(keepends=True)
    assert lines[-1] == b"done\n"
    assert not [line for line in lines if native_log.TENSORFLOW_NOISE.match(line)]
