"""Builds the C extension bcc_edge._kernels from csrc/ (everything else is in pyproject.toml).

The extension needs no third-party C library. OpenMP is used when the compiler can build and
link a test program with it (set BCC_EDGE_OPENMP=0 to build without); otherwise batches run
on one thread. The Cython-generated C goes to the build directory, never into the source tree.
"""

import os
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "csrc"))  # csrc/ is not a package; the cross build imports it alike
import cflags  # noqa: E402


def _openmp_works(compiler) -> bool:
    from setuptools.errors import CompileError, LinkError

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "omp_check.c"
        source.write_text("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objects = compiler.compile([str(source)], output_dir=tmp, extra_postargs=cflags.OPENMP_COMPILE_ARGS)
            compiler.link_executable(objects, "omp_check", output_dir=tmp, extra_postargs=cflags.OPENMP_LINK_ARGS)
        except (CompileError, LinkError):
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        from Cython.Build import cythonize

        if self.compiler.compiler_type == "unix":
            openmp = os.environ.get("BCC_EDGE_OPENMP", "1") != "0" and _openmp_works(self.compiler)
            print(f"bcc_edge._kernels: OpenMP {'on' if openmp else 'off (batches run on one thread)'}")
            for ext in self.extensions:
                ext.extra_compile_args += cflags.COMPILE_ARGS + (cflags.OPENMP_COMPILE_ARGS if openmp else [])
                ext.extra_link_args += cflags.LINK_ARGS + (cflags.OPENMP_LINK_ARGS if openmp else [])
        # Cythonize here rather than at import so the sdist ships the .pyx, not generated C.
        build_dir = os.path.join(self.build_temp, "cython")
        for ext in self.extensions:
            ext.sources = cythonize([ext], build_dir=build_dir, quiet=True)[0].sources
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "bcc_edge._kernels",
            sources=["csrc/_kernels.pyx", "csrc/bcc_preprocess.c", "csrc/bcc_plan.c", "csrc/bcc_target.c", "csrc/bcc_x86.c", "csrc/bcc_neon.c"],
            depends=["csrc/bcc_preprocess.h", "csrc/bcc_kernels.h", "csrc/cflags.py"],
            include_dirs=["csrc"],
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
