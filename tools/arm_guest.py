"""The half of tools/arm_check.py that runs inside the emulated aarch64 CPython.

The same functions also run in the x86_64 host process, so both sides compute their
outputs with identical code on identical inputs; only the machine differs. Inputs and
outputs travel as .npz files (no pickle: the two Pythons need not share anything else).

    python arm_guest.py outputs JOB.json OUT.npz        kernel cases + classifier probabilities
    python arm_guest.py without MODULE[,MODULE...] ARGS   `python -m bcc_edge ARGS` with those
                                                        modules impossible to import (a board
                                                        without that wheel)

Only the standard library, numpy and bcc_edge are used here: the guest has nothing else.
"""

from __future__ import annotations

import importlib.abc
import json
import platform
import runpy
import sys
from importlib import metadata

import numpy as np

# Distributions whose versions the host checks against the pins it asked for.
REPORTED_DISTRIBUTIONS = ("numpy", "pillow", "ai-edge-litert", "onnxruntime", "typer")


def environment() -> dict:
    """What this interpreter is: machine, Python, key wheels, where the C kernel came from."""
    from bcc_edge import preprocess

    versions = {}
    for name in REPORTED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
        "kernel": preprocess._kernels.__file__ if preprocess.KERNEL_AVAILABLE else None,
        "simd": preprocess._kernels.simd() if preprocess.KERNEL_AVAILABLE else None,
    }


def kernel_outputs(cases: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For each case `i`: `kernel_i` from the C kernel and `reference_i` from the numpy oracle.

    A case is `case_i` (JSON: spec, images, step, threads) plus its images `image_i_j`.
    `step` > 1 hands the kernel a strided (non-contiguous) view; `threads` > 1 goes through
    apply_batch's OpenMP path.
    """
    from bcc_edge.preprocess import PreprocessSpec, reference_apply

    out = {}
    for key in sorted(k for k in cases if k.startswith("case_")):
        i = key[len("case_"):]
        case = json.loads(str(cases[key]))
        spec = PreprocessSpec.from_dict(case["spec"])
        images = [cases[f"image_{i}_{j}"][:, :: case["step"]] for j in range(case["images"])]
        out[f"kernel_{i}"] = spec.apply_batch(images, threads=case["threads"])
        out[f"reference_{i}"] = np.stack([reference_apply(spec, image) for image in images])
    return out


def classifier_outputs(models: dict[str, str], images: list[str]) -> dict[str, np.ndarray]:
    """`probs_<name>`: EdgeClassifier probabilities for each model on the decoded images."""
    from bcc_edge.runtime import EdgeClassifier

    out = {}
    for name, path in models.items():
        classifier = EdgeClassifier(path, threads=1)
        out[f"probs_{name}"] = classifier.predict_proba([classifier.load(p) for p in images])
    return out


def outputs(job: dict) -> dict[str, np.ndarray]:
    """Everything the host compares, for one job (see arm_check.write_job)."""
    with np.load(job["cases"], allow_pickle=False) as cases:
        result = kernel_outputs(dict(cases))
    result.update(classifier_outputs(job["models"], job["images"]))
    result["environment"] = np.array(json.dumps(environment()))
    return result


class Absent(importlib.abc.MetaPathFinder):
    """Makes packages unimportable the way an uninstalled wheel is: ModuleNotFoundError
    "No module named 'x'" for x and its submodules."""

    def __init__(self, names: list[str]):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in self.names:
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        return None


def run_without(modules: list[str], args: list[str]) -> None:
    """`python -m bcc_edge ARGS` on an interpreter where `modules` cannot be imported."""
    sys.meta_path.insert(0, Absent(modules))
    sys.argv = ["bcc-edge", *args]
    runpy.run_module("bcc_edge", run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "outputs":
        with open(argv[1], encoding="utf-8") as f:
            job = json.load(f)
        np.savez(argv[2], **outputs(job))
        return 0
    if len(argv) >= 2 and argv[0] == "without":
        run_without(argv[1].split(","), argv[2:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
