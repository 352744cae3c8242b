"""tools/arm_check.py: the pure-Python parts (pins, flags, cases, comparisons) run fast here;
the full emulated check (minutes, needs root + network the first time) is `-m slow`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import arm_check  # noqa: E402
import arm_guest  # noqa: E402
from arm_check import Cell, CliRun, SetupError  # noqa: E402

GUEST = arm_check.marker_environment("3.11")


def fake_host(dists: dict[str, tuple[str, list[str]]]):
    """(installed, requires) callables over {name: (version, requirements)}."""
    return (lambda name: dists[name][0] if name in dists else None), (lambda name: dists[name][1])


def test_pins_follow_the_guest_markers_and_the_extras_asked_for():
    installed, requires = fake_host({
        "app": ("1.0", ["lib>=2", "winonly; sys_platform == 'win32'", "x86only; platform_machine == 'x86_64'",
                        "old; python_version < '3.8'", "opt; extra == 'fast'"]),
        "lib": ("2.5", ["tool[fast]"]),
        "tool": ("0.3", ["speedup; extra == 'fast'", "slowdown; extra == 'slow'"]),
        "speedup": ("9.9", []),
    })
    pins = arm_check.resolve_pins(["app"], GUEST, installed, requires)
    assert pins == {"app": "1.0", "lib": "2.5", "tool": "0.3", "speedup": "9.9"}


def test_pins_include_what_extras_asked_for_later_pull_in():
    installed, requires = fake_host({
        "app": ("1.0", ["tool", "lib"]), "lib": ("2.0", ["tool[fast]"]),
        "tool": ("0.3", ["speedup; extra == 'fast'"]), "speedup": ("9.9", []),
    })
    assert "speedup" in arm_check.resolve_pins(["app"], GUEST, installed, requires)


def test_pins_refuse_what_the_host_lacks_or_does_not_satisfy():
    installed, requires = fake_host({"app": ("1.0", ["lib"]), "old": ("1.0", [])})
    with pytest.raises(SetupError, match="lib"):
        arm_check.resolve_pins(["app"], GUEST, installed, requires)
    with pytest.raises(SetupError, match=r"old 1.0.*old>=2"):
        arm_check.resolve_pins(["old>=2"], GUEST, installed, requires)


def test_device_pins_cover_the_runtime_and_never_tensorflow():
    reqs = arm_check.device_requirements(arm_check.PROJECT / "pyproject.toml")
    pins = arm_check.resolve_pins(reqs, GUEST, arm_check._host_version, lambda n: arm_check.metadata.requires(n) or [])
    assert {"numpy", "pillow", "simplejpeg", "typer", "ai-edge-litert", "onnxruntime"} <= set(pins)
    assert not {name for name in pins if name.startswith(("tensorflow", "tf-keras", "keras"))}


def test_cross_flags_drop_only_x86_flags():
    kept, dropped = arm_check.cross_flags(["-O3", "-ffp-contract=off", "-mavx2", "-march=x86-64-v2", "-msse4.2", "-fopenmp"])
    assert kept == ["-O3", "-ffp-contract=off", "-fopenmp"]
    assert dropped == ["-mavx2", "-march=x86-64-v2", "-msse4.2"]


def test_release_flags_are_portable_and_keep_fma_contraction_off():
    cflags = arm_check._load_module("cflags_under_test", arm_check.PROJECT / "csrc" / "cflags.py")
    flags = [*cflags.COMPILE_ARGS, *cflags.OPENMP_COMPILE_ARGS, *cflags.LINK_ARGS, *cflags.OPENMP_LINK_ARGS]
    assert arm_check.cross_flags(flags)[1] == []
    assert "-ffp-contract=off" in cflags.COMPILE_ARGS  # aarch64 GCC fuses multiply-adds otherwise


def test_kernel_cases_are_reproducible_and_cover_every_layout():
    cases = arm_check.make_kernel_cases(60, seed=5)
    again = arm_check.make_kernel_cases(60, seed=5)
    assert cases.keys() == again.keys() and all(np.array_equal(cases[k], again[k]) for k in cases)
    meta = [json.loads(str(cases[k])) for k in sorted(cases) if k.startswith("case_")]
    images = [v for k, v in cases.items() if k.startswith("image_")]
    assert len(meta) == 60
    assert {m["spec"]["output"] for m in meta} == {"float32", "int8", "uint8"}
    assert {m["spec"]["interpolation"] for m in meta} == {"bilinear", "area"}
    assert {m["step"] for m in meta} == {1, 2} and {m["threads"] for m in meta} == {1, 2}
    assert {im.dtype for im in images} == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert {im.ndim for im in images} == {2, 3} and {im.shape[2] for im in images if im.ndim == 3} == {1, 3, 4}


def test_guest_code_runs_the_cases_through_kernel_and_oracle():
    cases = arm_check.make_kernel_cases(20, seed=1)
    out = arm_guest.kernel_outputs(cases)
    assert len(out) == 40
    assert arm_check.compare_cases(out, out, "kernel_", "reference_").ok


def _outputs(**arrays):
    return {k: np.asarray(v) for k, v in arrays.items()}


def test_compare_cases_integer_bytes_must_match():
    want = _outputs(kernel_0=np.array([1, 2], np.int8), kernel_1=np.array([0.5], np.float32))
    assert arm_check.compare_cases(want, want, "kernel_", "kernel_") == Cell(True, "identical")
    off_by_one = {**want, "kernel_0": np.array([1, 3], np.int8)}
    cell = arm_check.compare_cases(off_by_one, want, "kernel_", "kernel_")
    assert not cell.ok and "1/2 cases" in cell.text


@pytest.mark.parametrize("delta, ok", [(5e-6, True), (5e-5, False)])
def test_compare_cases_float_tolerance(delta, ok):
    want = _outputs(kernel_0=np.array([0.5, 1.0], np.float32))
    got = _outputs(kernel_0=np.array([0.5, 1.0 + delta], np.float32))
    assert arm_check.compare_cases(got, want, "kernel_", "kernel_").ok is ok


def test_compare_cases_missing_or_reshaped_outputs_fail():
    want = _outputs(kernel_0=np.zeros((2, 2), np.uint8), kernel_1=np.zeros(3, np.uint8))
    cell = arm_check.compare_cases({"kernel_0": np.zeros((2, 3), np.uint8)}, want, "kernel_", "kernel_")
    assert not cell.ok and "2/2 cases" in cell.text


def test_int8_tflite_probabilities_must_be_bit_identical_float_ones_within_tolerance():
    want = np.array([[0.25, 0.75]], np.float32)
    near = want + np.float32(1e-7)
    assert arm_check.compare_probs(want.copy(), want, bit_identical=True) == Cell(True, "bit-identical")
    assert not arm_check.compare_probs(near, want, bit_identical=True).ok
    assert arm_check.compare_probs(near, want, bit_identical=False).ok
    assert not arm_check.compare_probs(None, want, bit_identical=False).ok


def test_cli_runs_must_agree_on_rows_and_exit_code():
    x86 = CliRun(1, "label,score\nalpha,0.5\n", "")
    assert arm_check.compare_cli(CliRun(1, "label,score\nalpha,0.5\n", "other stderr"), x86).ok
    assert "exit 0" in arm_check.compare_cli(CliRun(0, x86.stdout, ""), x86).text
    assert not arm_check.compare_cli(CliRun(1, "label,score\nbeta,0.5\n", ""), x86).ok


def test_missing_backend_needs_exit_2_the_package_name_and_the_other_format_working():
    rows = CliRun(0, "alpha,0.5\n", "")
    refused = CliRun(2, "", "error: ... needs a runtime ...: pip install onnxruntime\n")
    assert arm_check.check_missing_backend(refused, "onnxruntime", rows, rows).ok
    assert not arm_check.check_missing_backend(CliRun(1, "", refused.stderr), "onnxruntime", rows, rows).ok
    assert not arm_check.check_missing_backend(CliRun(2, "", "Traceback ...\npip install onnxruntime"), "onnxruntime", rows, rows).ok
    assert not arm_check.check_missing_backend(refused, "onnxruntime", CliRun(2, "", ""), rows).ok


def test_table_has_one_column_per_cpu():
    rows = {"a check": {"cortex-a72": Cell(True, "identical"), "cortex-a76": Cell(False, "FAIL: x")}}
    lines = arm_check.table(rows, ["cortex-a72", "cortex-a76"]).splitlines()
    assert "Cortex-A72" in lines[0] and "Cortex-A76" in lines[0]
    assert lines[2].split() == ["a", "check", "identical", "FAIL:", "x"]


def test_hidden_package_fails_like_an_uninstalled_one(tmp_path):
    code = "import sys; sys.path.insert(0, sys.argv[1]); import arm_guest; sys.meta_path.insert(0, arm_guest.Absent(['onnxruntime'])); import onnxruntime.capi"
    proc = subprocess.run([sys.executable, "-c", code, str(TOOLS)], capture_output=True, text=True)
    assert "ModuleNotFoundError: No module named 'onnxruntime'" in proc.stderr


def test_setup_problems_exit_2_never_skip(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(arm_check.tempfile, "tempdir", str(tmp_path))  # the kept work dir lands here
    assert arm_check.main(["--export", str(tmp_path), "--env", str(tmp_path / "env")]) == 2
    assert "setup failed" in capsys.readouterr().err
    monkeypatch.setattr(arm_check, "AARCH64_TOOLS", tmp_path / "no-such-tools")
    assert arm_check.main(["--env", str(tmp_path / "env")]) == 2
    assert "no-such-tools" in capsys.readouterr().err


@pytest.mark.slow
def test_arm_check_passes_under_emulation(tiny_export):
    proc = subprocess.run([sys.executable, str(TOOLS / "arm_check.py"), "--export", str(tiny_export), "--cases", "40"],
                          capture_output=True, text=True, cwd=arm_check.PROJECT, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Cortex-A72" in proc.stdout and "Cortex-A76" in proc.stdout and "bit-identical" in proc.stdout
