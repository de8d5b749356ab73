#!/usr/bin/env python
"""Run NextFace benchmarks: ``python benchmarks/run.py [NAME ...] [--json] [--quick]``.

A benchmark NAME lives in ``benchmarks/bench_NAME.py`` and exposes
``run(quick: bool = False) -> dict[str, object]`` returning its figures (numbers, booleans
and short strings, ratios against a baseline measured in the same run included). With no
NAME every benchmark runs, in name order. The output is a table of figures per benchmark,
or with ``--json`` one JSON object per benchmark per line:
``{"benchmark": NAME, "seconds": wall time, "figures": {...}}`` (``"error"`` instead of
``"figures"`` when it failed). Exit status: 0, 1 when a benchmark failed, 2 for an unknown
NAME or bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

FOLDER = Path(__file__).resolve().parent
PREFIX = "bench_"


def discover(folder: Path = FOLDER) -> dict[str, Path]:
    """``{NAME: path}`` of every ``bench_NAME.py`` in ``folder``, sorted by name."""
    return {p.stem[len(PREFIX) :]: p for p in sorted(folder.glob(f"{PREFIX}*.py"))}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"nextface_benchmark_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_figures(name: str, figures: object) -> dict[str, object]:
    """The figures a benchmark returned, or TypeError saying what is wrong with them."""
    if not isinstance(figures, dict):
        raise TypeError(f"bench_{name}.run() returned {type(figures).__name__}, expected dict[str, number | str]")
    for key, value in figures.items():
        if not isinstance(key, str) or not isinstance(value, (bool, int, float, str)):
            raise TypeError(f"bench_{name}.run() figure {key!r} is {type(value).__name__}, expected a number or a string")
    return figures


def run_one(name: str, path: Path, quick: bool) -> dict[str, object]:
    """Import and run one benchmark → ``{"benchmark", "seconds", "figures" | "error"}``."""
    start = time.perf_counter()
    try:
        run = getattr(_load(name, path), "run", None)
        if not callable(run):
            raise TypeError(f"{path.name} has no run(quick: bool = False) function")
        result: dict[str, object] = {"figures": _check_figures(name, run(quick=quick))}
    except Exception as exc:  # one failing benchmark must not stop the others
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return {"benchmark": name, "seconds": round(time.perf_counter() - start, 3), **result}


def _format(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def print_table(record: dict[str, object]) -> None:
    """One benchmark's figures as aligned ``key  value`` rows under a header line."""
    print(f"== {record['benchmark']}  ({record['seconds']:.1f} s)")
    if "error" in record:
        print(f"   FAILED: {record['error']}")
        return
    figures = record["figures"]
    assert isinstance(figures, dict)
    width = max((len(k) for k in figures), default=0)
    for key, value in figures.items():
        print(f"   {key:<{width}}  {_format(value)}")


def main(argv: list[str] | None = None, folder: Path = FOLDER) -> int:
    """The command line; ``folder`` holds the ``bench_*.py`` files. Returns the exit status."""
    available = discover(folder)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], prog="benchmarks/run.py")
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(available)})"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per benchmark per line")
    parser.add_argument("--quick", action="store_true", help="small inputs: a smoke run, not figures to report")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in available]
    if unknown:
        print(
            f"error: unknown benchmark {', '.join(repr(n) for n in unknown)}; available: {', '.join(available) or 'none'}",
            file=sys.stderr,
        )
        return 2
    failed = False
    for name in args.names or list(available):
        record = run_one(name, available[name], args.quick)
        failed |= "error" in record
        if "traceback" in record:
            print(record.pop("traceback"), file=sys.stderr, end="")
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            print_table(record)
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
