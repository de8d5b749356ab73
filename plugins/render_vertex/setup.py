"""Builds the compiled kernels of the ``vertex`` renderer (``csrc/kernels.cpp``) at install.

A plain C++17 shared library with a C ABI, loaded with ctypes (no Python or torch
headers: it compiles in seconds). ``-ffp-contract=off`` keeps IEEE rounding of every
product and sum, which the visibility step needs to equal the PyTorch rasteriser bit for
bit; ``-march=native`` because it is built on the machine that runs it.
"""

import os

from setuptools import Extension, setup

flags = ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno", "-pthread", "-Wno-psabi"]
if os.environ.get("NEXTFACE_PORTABLE_BUILD") != "1":
    flags.append("-march=native")

setup(
    ext_modules=[
        Extension(
            "nextface_render_vertex._kernels",
            sources=["nextface_render_vertex/csrc/kernels.cpp"],
            language="c++",
            extra_compile_args=flags,
            extra_link_args=["-pthread"],
            optional=True,  # without a compiler the plugin installs and renders with its PyTorch path
        )
    ]
)
