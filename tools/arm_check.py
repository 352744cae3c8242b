#!/usr/bin/env python
"""Prove the edge runtime on Arm (aarch64: Raspberry Pi 4/5, Jetson CPU) under qemu emulation.

    python tools/arm_check.py [--export EXPORT_DIR] [--cases N] [--cpu cortex-a72 ...]

Run from the project root with the project's dev install active. Steps:
  1. an aarch64 Debian CPython (the host's minor version) under qemu user-mode emulation,
     with aarch64 wheels of the base + [edge] dependencies pinned to the versions installed
     on the host (../shared/tools/aarch64/setup-sysroot.sh; reused while the pins match);
  2. `bcc_edge._kernels` cross-compiled from csrc/ with the release flags of csrc/cflags.py
     (x86-only flags dropped; csrc/bcc_neon.c holds the NEON row kernels, the rest is plain C);
  3. a tiny model trained and exported on the host (or --export), then on each emulated CPU:
     the C kernel against `reference_apply` and against the x86_64 kernel on random shapes,
     `EdgeClassifier` on every artifact against the x86_64 probabilities, and
     `python -m bcc_edge infer` on good and bad images against the x86_64 rows and exit code,
     also on a board without onnxruntime / ai-edge-litert, and `python -m bcc_edge selftest`
     on every artifact and on the bundled models (their golden vectors reproduced there).
Prints a table (check x CPU). Exit 0: every output identical or within tolerance;
1: a mismatch; 2: the emulated environment or the inputs could not be set up (never a skip).
Emulated run times say nothing about device speed and are not reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
TOOLS = PROJECT / "tools"
AARCH64_TOOLS = PROJECT.parent / "shared" / "tools" / "aarch64"
DEFAULT_ENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bcc-edge-aarch64"
# qemu -cpu model -> what it stands for. Never qemu's "max": its SME path breaks XNNPACK INT8.
CPUS = {"cortex-a72": "Cortex-A72 (Pi 4)", "cortex-a76": "Cortex-A76 (Pi 5)"}
# Debian packages the host needs: the cross compiler, the aarch64 libc headers, qemu.
HOST_DEBS = {"aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
             "/usr/aarch64-linux-gnu/include/stdio.h": "libc6-dev-arm64-cross",
             "qemu-aarch64-static": "qemu-user-static"}
FLOAT_TOLERANCE = 1e-5
GUEST_TIMEOUT_S = 900


class SetupError(Exception):
    """The emulated environment or the inputs could not be prepared (exit 2, never a skip)."""


def log(message: str) -> None:
    print(f"[arm_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_logged(cmd: list[str], what: str, log_path: Path, **kwargs) -> None:
    """Run `cmd` with its output in `log_path`; a failure becomes a SetupError quoting its tail."""
    with open(log_path, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kwargs)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise SetupError(f"{what} failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")


# ----------------------------------------------------------------------------- 1. guest env


def marker_environment(pyver: str) -> dict[str, str]:
    """PEP 508 marker values of the guest: Debian's CPython `pyver` on aarch64 Linux."""
    return {"python_version": pyver, "python_full_version": f"{pyver}.0", "implementation_version": f"{pyver}.0",
            "platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def resolve_pins(requirements: Iterable[str], env: dict[str, str],
                 installed: Callable[[str], str | None], requires: Callable[[str], list[str]]) -> dict[str, str]:
    """{distribution: version} for `requirements` and everything they pull in on the guest,
    each at the version `installed` on the host (so the guest runs what the host runs).

    `requires(name)` lists a distribution's own requirements; markers are evaluated for the
    guest `env` (with the extras asked for). A requirement the host does not satisfy is a
    SetupError: its version would be a guess.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    extras_done: dict[str, frozenset[str]] = {}
    queue = [(Requirement(r), frozenset()) for r in requirements]
    while queue:
        req, parent_extras = queue.pop(0)
        if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *parent_extras)):
            continue
        name = canonicalize_name(req.name)
        version = installed(req.name)
        if version is None:
            raise SetupError(f"{req.name} (needed on the device: {req}) is not installed on the host; "
                             "activate the project's dev install (pip install -e '.[all,dev]')")
        if not req.specifier.contains(version, prereleases=True):
            raise SetupError(f"host has {req.name} {version}, which does not satisfy {req}")
        if name in pins and req.extras <= extras_done[name]:
            continue
        pins[name] = version
        extras_done[name] = extras_done.get(name, frozenset()) | req.extras
        queue.extend((Requirement(r), frozenset(req.extras)) for r in requires(req.name))
    return pins


def _host_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def device_requirements(pyproject: Path, extras: tuple[str, ...] = ("edge",)) -> list[str]:
    """The project's base dependencies plus its `extras`, as written in pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SetupError("reading pyproject.toml on Python 3.10 needs tomli: pip install tomli") from None
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return reqs


def ensure_host_packages() -> None:
    """apt-get install the cross compiler, aarch64 libc headers and qemu when missing."""
    missing = [deb for probe, deb in HOST_DEBS.items()
               if not (Path(probe).exists() if probe.startswith("/") else shutil.which(probe))]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SetupError(f"missing host packages {' '.join(missing)}: apt-get install them (needs root)")
    log(f"apt-get install {' '.join(missing)}")
    apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (apt + ["update"], apt + ["install", "-y", "--no-install-recommends", *missing]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-800:]}")


@dataclass
class GuestEnv:
    path: Path
    pyver: str
    pins: dict[str, str]
    python: str = ""  # full version, once it has run

    @property
    def vars(self) -> dict[str, str]:
        """env.sh of setup-sysroot.sh: PY_CFLAGS, NUMPY_INCLUDE, ..."""
        out = {}
        for line in (self.path / "env.sh").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                out[key] = value.strip('"')
        return out

    def run(self, args: list[str], cpu: str, pythonpath: Iterable[Path], cwd: Path,
            timeout: float = GUEST_TIMEOUT_S) -> subprocess.CompletedProcess:
        """`python ARGS` on the emulated `cpu` (the guest's stdout/stderr captured as text)."""
        env = {**os.environ, "AARCH64_ENV": str(self.path), "AARCH64_CPU": cpu,
               "AARCH64_PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
        try:
            return subprocess.run([str(AARCH64_TOOLS / "run-aarch64.sh"), *args], env=env, cwd=cwd,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or "", f"timed out after {timeout:.0f} s")


def prepare_guest(env_dir: Path, pyver: str, work: Path) -> GuestEnv:
    """The emulated CPython with pinned aarch64 wheels (setup-sysroot.sh), reused while the pins,
    the script and the Python are unchanged and it still starts."""
    if platform.machine() != "x86_64":
        raise SetupError(f"this check emulates aarch64 on an x86_64 host and compares the two; this host is {platform.machine()}")
    setup = AARCH64_TOOLS / "setup-sysroot.sh"
    if not setup.is_file():
        raise SetupError(f"{setup} not found (the shared aarch64 tools sit next to the project)")
    ensure_host_packages()
    pins = resolve_pins(device_requirements(PROJECT / "pyproject.toml"), marker_environment(pyver),
                        _host_version, lambda name: metadata.requires(name) or [])
    extra_debs = f"libpython{pyver}-dev"  # Python.h for the cross compile
    wanted = {"pyver": pyver, "pins": pins, "extra_debs": extra_debs,
              "setup_sha256": hashlib.sha256(setup.read_bytes()).hexdigest()}
    stamp = env_dir / "arm_check.json"
    guest = GuestEnv(env_dir, pyver, pins)
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        try:
            guest.python = smoke_test(guest, work)
            log(f"reusing the aarch64 environment in {env_dir}")
            return guest
        except SetupError as exc:
            log(f"rebuilding the aarch64 environment: {exc}")
    stamp.unlink(missing_ok=True)  # a half-built environment must never look reusable
    log(f"building the aarch64 environment in {env_dir} (python{pyver}, {len(pins)} pinned wheels)")
    env = {**os.environ, "PYVER": pyver, "EXTRA_DEBS": extra_debs, "HOST_PYTHON": sys.executable}
    run_logged([str(setup), str(env_dir), *(f"{n}=={v}" for n, v in sorted(pins.items()))],
               "setup-sysroot.sh", work / "setup-sysroot.log", env=env)
    if not guest.vars.get("PY_CFLAGS"):
        raise SetupError(f"no Python headers in {env_dir}/sysroot (libpython{pyver}-dev)")
    guest.python = smoke_test(guest, work)
    stamp.write_text(json.dumps(wanted, indent=1))
    return guest


SMOKE = "import platform, numpy, PIL.Image, typer, ai_edge_litert.interpreter, onnxruntime; print(platform.machine(), platform.python_version())"


def smoke_test(guest: GuestEnv, work: Path) -> str:
    """The guest starts and imports every third-party wheel the runtime uses: its Python version."""
    proc = guest.run(["-c", SMOKE], "cortex-a76", [], work, timeout=300)
    words = proc.stdout.split()
    if proc.returncode != 0 or words[:1] != ["aarch64"]:
        raise SetupError(f"the emulated Python does not work (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return words[1]


@contextlib.contextmanager
def locked(env_dir: Path):
    """One arm_check at a time per environment: runs rebuild it and swap its /proc/cpuinfo."""
    env_dir.mkdir(parents=True, exist_ok=True)
    with open(env_dir.parent / f".{env_dir.name}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another arm_check using {env_dir}")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


# ----------------------------------------------------------------------------- 2. cross build

# Flags that only mean something to an x86 compiler: dropped (and reported) for aarch64.
# The rest of the policy (optimisation, -ffp-contract=off, OpenMP) carries over unchanged.
X86_ONLY_PREFIXES = ("-msse", "-mavx", "-mfma", "-mf16c", "-mbmi", "-mpopcnt", "-mlzcnt", "-mmovbe",
                     "-march=x86", "-march=i686", "-march=haswell", "-march=skylake", "-mtune=", "-mfpmath=", "-m64", "-m32")


def cross_flags(flags: Iterable[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped): the release flags an aarch64 compiler gets, and the x86-only ones."""
    kept, dropped = [], []
    for flag in flags:
        (dropped if flag.startswith(X86_ONLY_PREFIXES) else kept).append(flag)
    return kept, dropped


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def guest_sysconfig(guest: GuestEnv) -> dict:
    """The guest Python's build variables (CC, CFLAGS, LDSHARED, EXT_SUFFIX), as `pip install`
    on the board would use them, read from its _sysconfigdata without running it."""
    import ast

    libdir = guest.path / "sysroot" / "usr" / "lib" / f"python{guest.pyver}"
    for path in sorted(libdir.glob("_sysconfigdata_*aarch64-linux-gnu.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "build_time_vars":
                return ast.literal_eval(node.value)
    raise SetupError(f"no _sysconfigdata for aarch64 in {libdir}")


EXTENSION_SCRIPT = """
import json
from distutils.core import run_setup  # setuptools' copy on Python >= 3.12
(ext,) = [e for e in run_setup("setup.py", stop_after="init").ext_modules if e.name == "bcc_edge._kernels"]
print(json.dumps({"name": ext.name, "sources": ext.sources, "include_dirs": ext.include_dirs}))
"""


def project_extension() -> dict:
    """setup.py's Extension for bcc_edge._kernels (name, sources, include dirs): one definition
    serves both builds. Read in a child process: run_setup reconfigures logging and sys.path."""
    proc = subprocess.run([sys.executable, "-c", EXTENSION_SCRIPT], cwd=PROJECT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"cannot read the extension from setup.py (needs setuptools): {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class CrossBuild:
    library: Path
    compiler: str
    compile_flags: list[str]
    link_flags: list[str]
    dropped: list[str]
    vectorised_loops: int


def cross_build(guest: GuestEnv, work: Path) -> CrossBuild:
    """bcc_edge._kernels for aarch64: Cython on the host, then the cross compiler with the
    guest Python's own build flags plus csrc/cflags.py, exactly as setup.py composes them."""
    from Cython.Build import cythonize
    from setuptools import Extension

    cflags = _load_module("bcc_cflags", PROJECT / "csrc" / "cflags.py")
    ext = project_extension()
    sysvars = guest_sysconfig(guest)
    build = work / "cross"
    build.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(PROJECT)
    try:
        generated = cythonize([Extension(**ext)], build_dir=str(build / "cython"), quiet=True)[0]
        sources = [PROJECT / s for s in generated.sources]
    finally:
        os.chdir(cwd)
    release, dropped = cross_flags([*cflags.COMPILE_ARGS, *cflags.OPENMP_COMPILE_ARGS])
    link_release, link_dropped = cross_flags([*cflags.LINK_ARGS, *cflags.OPENMP_LINK_ARGS])
    # setuptools: CC CFLAGS CCSHARED -I... -c SRC -o OBJ EXTRA_COMPILE_ARGS; LDSHARED OBJS -o SO EXTRA_LINK_ARGS
    compiler = [*sysvars["CC"].split(), *sysvars["CFLAGS"].split(), *sysvars["CCSHARED"].split()]
    includes = [f"-I{PROJECT / d}" for d in ext["include_dirs"]] + guest.vars["PY_CFLAGS"].split()
    objects, vectorised = [], 0
    for source in sources:
        obj = build / (source.stem + ".o")
        proc = subprocess.run([*compiler, *includes, "-c", str(source), "-o", str(obj), *release,
                               "-fopt-info-vec-optimized"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"cross-compiling {source.name} failed:\n{proc.stderr[-2000:]}")
        if source.suffix == ".c" and source.parent == PROJECT / "csrc":
            vectorised += proc.stderr.count("loop vectorized")
        objects.append(str(obj))
    library = build / "bcc_edge" / f"_kernels{sysvars['EXT_SUFFIX']}"
    library.parent.mkdir(exist_ok=True)
    linker = sysvars["LDSHARED"].split()
    proc = subprocess.run([*linker, *objects, "-o", str(library), *link_release], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"linking {library.name} for aarch64 failed:\n{proc.stderr[-2000:]}")
    return CrossBuild(library, compiler[0], [*compiler[1:], *release], [*linker[1:], *link_release],
                      dropped + link_dropped, vectorised)


def stage_package(build: CrossBuild, work: Path) -> Path:
    """A guest import root: this checkout's pure-Python bcc_edge plus the aarch64 kernel
    (the checkout itself may hold an x86_64 kernel built in place)."""
    root = work / "guest"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(PROJECT / "bcc_edge", root / "bcc_edge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    shutil.copy2(build.library, root / "bcc_edge" / build.library.name)
    return root


# ----------------------------------------------------------------------------- 3. inputs


def make_kernel_cases(n: int, seed: int) -> dict[str, np.ndarray]:
    """`n` random preprocessing cases in arm_guest.kernel_outputs' format: small images of
    every accepted layout (HxW, 1/3/4 channels, uint8/uint16, strided views), both
    interpolations, every output dtype; every 10th case is a batch run on 2 OpenMP threads."""
    rng = np.random.default_rng(seed)
    cases: dict[str, np.ndarray] = {}
    for i in range(n):
        batch = i % 10 == 9
        output = str(rng.choice(["float32", "int8", "uint8"]))
        lo, hi = {"float32": (0, 0), "int8": (-128, 127), "uint8": (0, 255)}[output]
        spec = {"size": [int(v) for v in rng.integers(1, 33, 2)],
                "interpolation": str(rng.choice(["bilinear", "area"])),
                "mean": [float(v) for v in rng.uniform(0, 255, 3)],
                "std": [float(v) for v in rng.uniform(1, 128, 3)],
                "output": output,
                "scale": float(rng.uniform(0.004, 0.1)) if output != "float32" else 1.0,
                "zero_point": int(rng.integers(lo, hi + 1))}
        step = 2 if rng.random() < 0.15 else 1
        layout = [(), (1,), (3,), (3,), (4,)][int(rng.integers(5))]
        dtype = np.uint16 if rng.random() < 0.2 else np.uint8
        count = int(rng.integers(2, 5)) if batch else 1
        for j in range(count):
            side = 160 if rng.random() < 0.1 else 48  # mostly small: emulation is slow
            h, w = (int(v) for v in rng.integers(1, side + 1, 2))
            cases[f"image_{i:04d}_{j}"] = rng.integers(0, np.iinfo(dtype).max + 1, (h, w * step, *layout), dtype=dtype)
        cases[f"case_{i:04d}"] = np.array(json.dumps({"spec": spec, "images": count, "step": step,
                                                      "threads": 2 if batch else 1}))
    return cases


def write_images(root: Path) -> tuple[list[Path], list[Path]]:
    """A few decodable images (JPEG incl. a PBC-sized one, PNG, RGBA, greyscale) and a few
    that are not (empty, truncated, text): (good, bad)."""
    from PIL import Image

    from bcc_edge.synthetic import CLASSES, make_cell_image

    rng = np.random.default_rng(3)
    root.mkdir(parents=True, exist_ok=True)
    shapes = [(120, 120, "jpg", "RGB"), (363, 360, "jpg", "RGB"), (96, 130, "png", "RGB"),
              (110, 100, "png", "RGBA"), (128, 128, "jpg", "L"), (100, 90, "jpg", "RGB")]
    good = []
    for i, (h, w, ext, mode) in enumerate(shapes):
        path = root / f"cell_{i}.{ext}"
        Image.fromarray(make_cell_image(CLASSES[i % len(CLASSES)], rng, h, w)).convert(mode).save(path)
        good.append(path)
    bad = [root / "empty.jpg", root / "truncated.jpg", root / "notes.png"]
    bad[0].write_bytes(b"")
    bad[1].write_bytes(good[1].read_bytes()[:400])
    bad[2].write_text("not an image\n")
    return good, bad


# ~500 small steps: fewer leave BatchNorm's moving statistics near their initial values and the
# inference-mode model gives one constant output for every image, which would prove little.
MODEL_SCRIPT = """
import sys
from bcc_edge.export import ExportOptions, export_run
from bcc_edge.synthetic import write_image_folder
from bcc_edge.train import TrainConfig, train
data, run, out = sys.argv[1:]
write_image_folder(data, per_class=20, size=(64, 64))
train(TrainConfig(data=data, out=run, model="bcc-small", model_kwargs={"width": 0.5}, image_size=32,
                  batch_size=4, epochs=40, patience=0, seed=1))
export_run(run, out, ExportOptions(int8=True, qat_epochs=1))
"""
# File in manifest.json -> check name (two TFLite files are INT8, so the file tells them apart);
# the integer TFLite models must be bit-identical.
ARTIFACTS = {"model_int8.tflite": "INT8 TFLite", "model_uint8.tflite": "uint8 TFLite", "model_float.tflite": "float TFLite",
             "model_float.onnx": "float ONNX", "model_int8.onnx": "INT8 ONNX"}
BIT_IDENTICAL = {"INT8 TFLite", "uint8 TFLite"}


def build_model(work: Path) -> Path:
    """Train and export the tiny 32 px model on the host, in a separate process (TensorFlow)."""
    log("training + exporting a tiny 32 px model on the host (TensorFlow)")
    out = work / "export"
    run_logged([sys.executable, "-c", MODEL_SCRIPT, str(work / "data"), str(work / "run"), str(out)],
               "training/exporting the tiny model", work / "model.log",
               env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    return out


def artifacts(export: Path) -> dict[str, Path]:
    """{check name: path} of the five artifacts listed in EXPORT_DIR/manifest.json."""
    export = export.resolve()  # the guest runs in another directory
    try:
        manifest = json.loads((export / "manifest.json").read_text())
        found = {ARTIFACTS[a["file"]]: export / a["file"] for a in manifest["artifacts"] if a["file"] in ARTIFACTS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SetupError(f"cannot read the artifact list in {export}/manifest.json: {exc!r}") from None
    missing = sorted(set(ARTIFACTS.values()) - set(found))
    if missing:
        raise SetupError(f"{export} lacks {', '.join(missing)} (export with --int8)")
    return found


# ----------------------------------------------------------------------------- 4. comparisons


@dataclass
class Cell:
    ok: bool
    text: str


def diff_text(got: np.ndarray, want: np.ndarray) -> tuple[bool, float | None, str]:
    """(same_shape_and_dtype, max |got - want| or None when equal bytes, why not comparable)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return False, None, f"{got.dtype}{list(got.shape)} vs {want.dtype}{list(want.shape)}"
    if np.array_equal(got, want, equal_nan=got.dtype.kind == "f"):
        return True, None, ""
    if got.dtype.kind != "f":
        return True, float(np.abs(got.astype(np.int64) - want.astype(np.int64)).max()), ""
    return True, float(np.nanmax(np.abs(got.astype(np.float64) - want))), ""


def compare_cases(got: dict[str, np.ndarray], want: dict[str, np.ndarray], prefix_got: str, prefix_want: str) -> Cell:
    """Integer outputs byte-identical, float32 within FLOAT_TOLERANCE, over every case."""
    keys = sorted(k[len(prefix_want):] for k in want if k.startswith(prefix_want))
    bad, worst = [], 0.0
    for key in keys:
        a, b = got.get(prefix_got + key), want[prefix_want + key]
        if a is None:
            bad.append(f"{key}: missing")
            continue
        same_kind, diff, why = diff_text(a, b)
        if not same_kind:
            bad.append(f"{key}: {why}")
        elif diff is not None:
            if a.dtype.kind != "f" or diff > FLOAT_TOLERANCE:
                bad.append(f"{key}: {a.dtype} max|d| {diff:.3g}")
            worst = max(worst, diff)
    if bad:
        return Cell(False, f"FAIL {len(bad)}/{len(keys)} cases ({bad[0]})")
    return Cell(True, "identical" if worst == 0 else f"ok, float32 max|d| {worst:.1e}")


def compare_probs(got: np.ndarray | None, want: np.ndarray, bit_identical: bool) -> Cell:
    if got is None:
        return Cell(False, "FAIL: no output")
    same_kind, diff, why = diff_text(got, want)
    if not same_kind:
        return Cell(False, f"FAIL: {why}")
    if diff is None:
        return Cell(True, "bit-identical")
    if not bit_identical and diff <= FLOAT_TOLERANCE:
        return Cell(True, f"ok: max|d| {diff:.1e}")
    top1 = "same top-1" if np.array_equal(got.argmax(1), want.argmax(1)) else "top-1 differs"
    return Cell(False, f"FAIL: max|d| {diff:.1e}, {top1}")


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @classmethod
    def of(cls, proc: subprocess.CompletedProcess) -> "CliRun":
        return cls(proc.returncode, proc.stdout, proc.stderr)


def compare_cli(got: CliRun, want: CliRun) -> Cell:
    """Same rows (stdout) and exit code."""
    rows = got.stdout.splitlines()
    if got.code != want.code:
        first = (got.stderr.strip().splitlines() or [""])[-1][:120]
        return Cell(False, f"FAIL: exit {got.code}, x86_64 {want.code} ({first})")
    if rows != want.stdout.splitlines():
        differ = sum(a != b for a, b in zip(rows, want.stdout.splitlines())) + abs(len(rows) - len(want.stdout.splitlines()))
        return Cell(False, f"FAIL: {differ} of {len(rows)} rows differ")
    return Cell(True, f"ok: same {len(rows)} rows, exit {got.code}")


def check_selftest(run: CliRun) -> Cell:
    """The artifact's golden vectors reproduced stage by stage (exit 0, every check passed)."""
    try:
        report = json.loads(run.stdout)
    except ValueError:
        return Cell(False, f"FAIL: exit {run.code}: {(run.stderr.strip().splitlines() or [''])[-1][:120]}")
    if run.code != 0 or not report.get("passed"):
        return Cell(False, f"FAIL: {report.get('summary', '')[:150]}")
    statuses = {c["status"] for c in report["checks"]}
    return Cell(True, f"ok: {len(report['checks'])} stage checks, {' / '.join(sorted(statuses))}")


def check_missing_backend(refused: CliRun, package: str, other: CliRun, other_want: CliRun) -> Cell:
    """The format whose backend is missing: exit 2 naming the package; the other: same rows."""
    if refused.code != 2 or package not in refused.stderr or "Traceback" in refused.stderr:
        said = (refused.stderr.strip().splitlines() or [""])[-1][:120]
        return Cell(False, f"FAIL: exit {refused.code} ({said})")
    still = compare_cli(other, other_want)
    if not still.ok:
        return Cell(False, f"FAIL: other format: {still.text}")
    return Cell(True, "ok: exit 2 + hint; other: same rows")


# ----------------------------------------------------------------------------- 5. the run

ENVIRONMENT = "guest: aarch64 kernel + pinned wheels load"
KERNEL_VS_REFERENCE = "C kernel == reference_apply ({n} cases)"
KERNEL_VS_X86 = "C kernel == x86_64 kernel (same cases)"
# (format refused, format that must still run, modules made unimportable, package the error names)
MISSING_BACKENDS = (("INT8 ONNX", "INT8 TFLite", "onnxruntime", "onnxruntime"),
                    ("INT8 TFLite", "INT8 ONNX", "ai_edge_litert,tflite_runtime", "ai-edge-litert"))
CLI_MODELS = ("INT8 TFLite", "INT8 ONNX")
# The models a release ships (bcc-edge infer's default), selftested on each CPU as they are.
BUNDLED = {f"bundled {path.name}": path for path in sorted((PROJECT / "bcc_edge" / "assets").glob("model_*.*")) if path.suffix in (".tflite", ".onnx")}


def infer_args(model: Path) -> list[str]:
    """`bcc-edge infer` on the image folder (relative, so rows name the same paths everywhere)."""
    return ["infer", "images", "--model", str(model), "--format", "csv", "--top-k", "3"]


@dataclass
class Inputs:
    work: Path
    job: Path
    models: dict[str, Path]
    cases: int


def prepare_inputs(work: Path, models: dict[str, Path] | None, n_cases: int, seed: int) -> Inputs:
    """Kernel cases, images, the job file, and (without --export) the tiny model."""
    models = models or artifacts(build_model(work))
    np.savez(work / "cases.npz", **make_kernel_cases(n_cases, seed))
    good, _ = write_images(work / "images")
    job = work / "job.json"
    job.write_text(json.dumps({"cases": str(work / "cases.npz"), "images": [str(p) for p in good],
                               "models": {name: str(path) for name, path in models.items()}}))
    return Inputs(work, job, models, n_cases)


def host_side(inputs: Inputs) -> tuple[dict[str, np.ndarray], dict[str, CliRun]]:
    """The x86_64 outputs: arm_guest's functions in this process, the CLI as a subprocess."""
    import arm_guest

    env = arm_guest.environment()
    if env["kernel"] is None:
        raise SetupError("the x86_64 C kernel is not built: pip install -e . (or python setup.py build_ext --inplace)")
    import bcc_edge

    if Path(bcc_edge.__file__).resolve().parent != PROJECT / "bcc_edge":
        raise SetupError(f"the active bcc_edge ({bcc_edge.__file__}) is not this checkout's; use its dev install")
    outputs = arm_guest.outputs(json.loads(inputs.job.read_text()))
    cli = {}
    for name in CLI_MODELS:
        proc = subprocess.run([sys.executable, "-m", "bcc_edge", *infer_args(inputs.models[name])],
                              cwd=inputs.work, capture_output=True, text=True)
        cli[name] = CliRun.of(proc)
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            raise SetupError(f"bcc-edge infer with {name} fails on x86_64 (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return outputs, cli


def guest_side(guest: GuestEnv, cpu: str, stage: Path, inputs: Inputs, host: dict[str, np.ndarray],
               host_cli: dict[str, CliRun]) -> dict[str, Cell]:
    """Every check on one emulated CPU: {check name: cell}."""
    cells: dict[str, Cell] = {}
    out = inputs.work / f"outputs-{cpu}.npz"
    proc = guest.run([str(TOOLS / "arm_guest.py"), "outputs", str(inputs.job), str(out)], cpu, [stage], inputs.work)
    got: dict[str, np.ndarray] = {}
    if proc.returncode == 0:
        with np.load(out, allow_pickle=False) as f:
            got = dict(f)
        cells[ENVIRONMENT] = check_environment(json.loads(str(got["environment"])), guest, stage)
    else:
        tail = (proc.stderr.strip().splitlines() or [""])[-1][:150]
        cells[ENVIRONMENT] = Cell(False, f"FAIL: guest exit {proc.returncode}: {tail}")
    cells[KERNEL_VS_REFERENCE.format(n=inputs.cases)] = compare_cases(got, got, "kernel_", "reference_") if got else Cell(False, "FAIL: no output")
    cells[KERNEL_VS_X86] = compare_cases(got, host, "kernel_", "kernel_") if got else Cell(False, "FAIL: no output")
    for name in ARTIFACTS.values():
        cells[f"EdgeClassifier {name} probs == x86_64"] = compare_probs(got.get(f"probs_{name}"), host[f"probs_{name}"], name in BIT_IDENTICAL)
    for name in CLI_MODELS:
        run = CliRun.of(guest.run(["-m", "bcc_edge", *infer_args(inputs.models[name])], cpu, [stage], inputs.work))
        cells[f"bcc-edge infer {name}: rows, exit == x86_64"] = compare_cli(run, host_cli[name])
    for name, model in [*((n, inputs.models[n]) for n in ARTIFACTS.values()), *BUNDLED.items()]:
        run = CliRun.of(guest.run(["-m", "bcc_edge", "selftest", "--model", str(model), "--json"], cpu, [stage], inputs.work))
        cells[f"bcc-edge selftest {name}"] = check_selftest(run)
    for refused, other, modules, package in MISSING_BACKENDS:
        runs = {name: CliRun.of(guest.run([str(TOOLS / "arm_guest.py"), "without", modules, *infer_args(inputs.models[name])],
                                          cpu, [stage], inputs.work)) for name in (refused, other)}
        cells[f"no {package}: {refused} exits 2, {other} runs"] = check_missing_backend(
            runs[refused], package, runs[other], host_cli[other])
    return cells


def check_environment(env: dict, guest: GuestEnv, stage: Path) -> Cell:
    """The guest really is aarch64, runs the cross-built kernel and the pinned wheels."""
    if env["machine"] != "aarch64":
        return Cell(False, f"FAIL: machine {env['machine']}")
    if not env["kernel"] or not env["kernel"].startswith(str(stage)) or "aarch64" not in env["kernel"]:
        return Cell(False, f"FAIL: kernel {env['kernel']}")
    if env["simd"] != "neon":
        return Cell(False, f"FAIL: the kernel runs {env['simd']}, not its NEON path")
    from packaging.utils import canonicalize_name

    wrong = [f"{n} {v}" for n, v in env["versions"].items() if v != guest.pins.get(canonicalize_name(n))]
    if wrong:
        return Cell(False, f"FAIL: unpinned {', '.join(wrong)}")
    return Cell(True, f"ok: Python {env['python']}")


def table(rows: dict[str, dict[str, Cell]], cpus: list[str]) -> str:
    """check | one column per CPU, plain text."""
    heads = ["check", *(CPUS[c] for c in cpus)]
    body = [[check, *(cells[c].text if c in cells else "-" for c in cpus)] for check, cells in rows.items()]
    widths = [max(len(r[i]) for r in [heads, *body]) for i in range(len(heads))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(heads), line(["-" * w for w in widths]), *map(line, body)])


def model_source(inputs: Inputs) -> str:
    export = inputs.models["INT8 TFLite"].parent
    return "a tiny bcc-small (32 px, synthetic data) trained and exported for this check" if export.is_relative_to(inputs.work) else str(export)


def summary(guest: GuestEnv, build: CrossBuild, inputs: Inputs, host: dict[str, np.ndarray]) -> str:
    named = [n for n in ("numpy", "ai-edge-litert", "onnxruntime", "pillow", "simplejpeg", "typer") if n in guest.pins]
    dropped = " ".join(build.dropped) or "none"
    probs = host["probs_INT8 TFLite"]
    distinct = len({row.tobytes() for row in probs})
    return "\n".join([
        f"guest: Debian CPython {guest.python} aarch64 under qemu-user; wheels pinned to the host's versions: "
        f"{', '.join(f'{n} {guest.pins[n]}' for n in named)} (+{len(guest.pins) - len(named)} more)",
        f"model: {model_source(inputs)}; on {len(probs)} fixed images its INT8 TFLite gives {distinct} distinct "
        "outputs" + ("" if distinct > 1 else " (WARNING: constant output, the classifier rows prove little)"),
        f"bcc_edge._kernels cross-built: {build.compiler} {' '.join(build.compile_flags)}",
        f"  link: {' '.join(build.link_flags)}; x86-only flags dropped: {dropped}",
        "  vectorisation: NEON intrinsics (csrc/bcc_neon.c; Advanced SIMD is the aarch64 baseline, armv8-a), "
        f"and GCC auto-vectorised {build.vectorised_loops} loops of the plain C in csrc/",
    ])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", type=Path, default=DEFAULT_ENV, help=f"aarch64 environment dir [default: {DEFAULT_ENV}]")
    p.add_argument("--export", type=Path, help="reuse this EXPORT_DIR (from bcc-edge export --int8) instead of training a tiny model")
    p.add_argument("--cases", type=int, default=300, help="random preprocessing cases [default: 300]")
    p.add_argument("--cpu", action="append", choices=sorted(CPUS), help="emulated CPU (repeatable) [default: all]")
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--keep", action="store_true", help="keep the work directory (inputs, outputs, logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.cases < 1:
        print("arm_check: --cases must be at least 1", file=sys.stderr)
        return 2
    cpus = args.cpu or list(CPUS)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bcc-arm-check-"))
    pyver = sysconfig.get_python_version()
    try:
        with locked(args.env):
            try:
                given = artifacts(args.export) if args.export else None  # fail before the slow steps
                guest = prepare_guest(args.env, pyver, work)
                log("cross-compiling bcc_edge._kernels for aarch64")
                build = cross_build(guest, work)
                stage = stage_package(build, work)
                inputs = prepare_inputs(work, given, args.cases, args.seed)
                log("x86_64 reference outputs (this process)")
                host, host_cli = host_side(inputs)
            except SetupError as exc:
                print(f"arm_check: setup failed: {exc}", file=sys.stderr)
                args.keep = True
                return 2
            rows: dict[str, dict[str, Cell]] = {}
            for cpu in cpus:
                log(f"emulated {CPUS[cpu]}")
                for check, cell in guest_side(guest, cpu, stage, inputs, host, host_cli).items():
                    rows.setdefault(check, {})[cpu] = cell
        print(summary(guest, build, inputs, host))
        print()
        print(table(rows, cpus))
        failed = [check for check, cells in rows.items() if not all(c.ok for c in cells.values())]
        print()
        elapsed = time.monotonic() - started
        if failed:
            print(f"arm_check: FAILED {len(failed)} of {len(rows)} checks ({'; '.join(failed)})")
            args.keep = True
            return 1
        print(f"arm_check: all {len(rows)} checks pass on {' and '.join(CPUS[c] for c in cpus)} "
              f"({elapsed:.0f} s; emulated run times are not device timings)")
        return 0
    finally:
        if args.keep:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
