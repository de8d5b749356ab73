"""The renderer's hottest loop — the glossy SH radiance (9 bands, 81 monomials, per-point band
weights) at the 42256 covered pixels of the full face at 256² — in C++ (per point, and in the
kernels' 8-lane packets), NVIDIA Warp (CPU) and numba: process CPU time, one thread.

Run in a scratch venv (not the project's): ``pip install "numpy<2" warp-lang==1.19.* numba``,
``g++ -O3 -march=native -ffp-contract=off -fPIC -shared -Wno-psabi -o /tmp/glossy.so glossy.cpp``,
then ``python compare_technologies.py /tmp/glossy.so``. Prints one JSON line.
"""
import ctypes
import time
import os
import sys
import json
import numpy as np
M = 42256  # covered pixels of the full face at 256²
rng = np.random.default_rng(0)
d = rng.standard_normal((M, 3)).astype(np.float32); d /= np.linalg.norm(d, axis=1, keepdims=True)
rate = rng.random(M).astype(np.float32) * 0.2
# monomial tables for 9 bands (even block then odd block) as in the renderer
exps = [[(a, dd - c - a, c) for dd in range(p, 9, 2) for c in (0, 1) for a in range(dd - c + 1)] for p in (0, 1)]
off = (0, len(exps[0])); row = {(p, e): off[p] + i for p in (0, 1) for i, e in enumerate(exps[p])}
gen = []
for p in (0, 1):
    for (a, b, c) in exps[p]:
        if a + b + c == 0: continue
        par, ax = ((a, b, 0), 2) if c else (((a - 1, b, 0), 0) if a else ((0, b - 1, 0), 1))
        gen.append((a + b + c, row[(p, (a, b, c))], row[(1 - p, par)], ax))
gen = np.array([g[1:] for g in sorted(gen)], dtype=np.int32)
bs = lambda p, t: sum(2 * k + 1 for k in range(p, t + 1, 2))
brows = np.array([bs(l % 2, l) for l in range(9)], dtype=np.int32); bstart = np.array([off[l % 2] for l in range(9)], dtype=np.int32)
rows = 81
w = rng.standard_normal((9, rows, 3)).astype(np.float32)
def best(f, n=7):
    ts = []
    for _ in range(n):
        t = time.process_time(); f(); ts.append(time.process_time() - t)
    return round(min(ts) * 1000, 2)
res = {"points": M, "load": os.getloadavg()[0]}
lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else "/tmp/glossy.so")
out = np.zeros((M, 3), np.float32)
P = lambda a: a.ctypes.data_as(ctypes.c_void_p)
for name in ("glossy_scalar", "glossy_packets"):
    fn = getattr(lib, name)
    res[f"cpp_{name}_ms"] = best(lambda: fn(P(d), P(rate), P(w), P(gen), len(gen), rows, P(bstart), P(brows), 9, M, P(out)))
ref = out.copy()
# Warp
t0 = time.perf_counter()
import warp as wp
wp.config.quiet = True
wp.init()
res["warp_import_init_s"] = round(time.perf_counter() - t0, 2)
@wp.kernel
def glossy_wp(d: wp.array(dtype=wp.vec3), rate: wp.array(dtype=float), w: wp.array(dtype=wp.vec3, ndim=2),
              gen: wp.array(dtype=int, ndim=2), bstart: wp.array(dtype=int), brows: wp.array(dtype=int), out: wp.array(dtype=wp.vec3)):
    m = wp.tid()
    mono = wp.vector(dtype=float, length=81)
    mono[0] = 1.0
    dm = d[m]
    for g in range(gen.shape[0]):
        mono[gen[g, 0]] = mono[gen[g, 1]] * dm[gen[g, 2]]
    s = wp.vec3()
    for l in range(9):
        gl = wp.exp(-float(l * l) * rate[m])
        for j in range(bstart[l], bstart[l] + brows[l]):
            s += gl * mono[j] * w[l, j]
    out[m] = s
args = [wp.array(d, dtype=wp.vec3), wp.array(rate), wp.array(w, dtype=wp.vec3), wp.array(gen), wp.array(bstart), wp.array(brows)]
wout = wp.zeros(M, dtype=wp.vec3)
t0 = time.perf_counter()
wp.load_module(device="cpu")
res["warp_first_compile_s"] = round(time.perf_counter() - t0, 2)
res["warp_cache"] = wp.config.kernel_cache_dir or "default"
res["warp_ms"] = best(lambda: wp.launch(glossy_wp, dim=M, inputs=args + [wout], device="cpu"))
res["warp_max_err"] = float(np.abs(wout.numpy() - ref).max())
# numba
t0 = time.perf_counter()
import numba
@numba.njit(fastmath=False, cache=False)
def glossy_nb(d, rate, w, gen, bstart, brows, out):
    mono = np.empty(81, np.float32)
    for m in range(d.shape[0]):
        mono[0] = 1.0
        for g in range(gen.shape[0]):
            mono[gen[g, 0]] = mono[gen[g, 1]] * d[m, gen[g, 2]]
        s0 = np.float32(0); s1 = np.float32(0); s2 = np.float32(0)
        for l in range(9):
            gl = np.exp(np.float32(-l * l) * rate[m])
            for j in range(bstart[l], bstart[l] + brows[l]):
                s0 += gl * mono[j] * w[l, j, 0]; s1 += gl * mono[j] * w[l, j, 1]; s2 += gl * mono[j] * w[l, j, 2]
        out[m, 0] = s0; out[m, 1] = s1; out[m, 2] = s2
nout = np.zeros((M, 3), np.float32)
glossy_nb(d, rate, w, gen, bstart, brows, nout)
res["numba_import_first_compile_s"] = round(time.perf_counter() - t0, 2)
res["numba_ms"] = best(lambda: glossy_nb(d, rate, w, gen, bstart, brows, nout))
res["numba_max_err"] = float(np.abs(nout - ref).max())
res["load_end"] = os.getloadavg()[0]
print(json.dumps(res))
