"""Kernel micro-benchmarks, conv layers' GFLOP/s, and NumPy's float32 matmul ceiling.

Each numbanet @njit kernel is timed against a vectorised NumPy version of the same
op (stride tricks, reshapes, ``np.add.at``) on the shapes of the workloads, after
checking that both give the same result. Conv layers (numbanet's differentiable
``conv2d``, forward and forward+backward) are reported in achieved GFLOP/s beside
(a) NumPy's matmul on the very same GEMM shapes and (b) the matmul ceiling, a
large square float32 product, measured in this process (OPENBLAS_CORETYPE as set
in the environment) and in subprocesses with OPENBLAS_CORETYPE unset and
=SkylakeX (the latter only where the CPU has AVX-512).

    python -m benchmarks.kernels [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback

import numpy as np

from .timing import time_call

# ------------------------------------------------------------ NumPy versions
def np_im2col(x, KH, KW, SH, SW, PT, PB, PL, PR):
    """(N, H, W, C) -> (N, OH, OW, KH, KW, C) with as_strided on the padded input, then one copy."""
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0))) if (PT or PB or PL or PR) else x
    N, H, W, C = xp.shape
    OH, OW = (H - KH) // SH + 1, (W - KW) // SW + 1
    s = xp.strides
    view = np.lib.stride_tricks.as_strided(xp, (N, OH, OW, KH, KW, C),
                                           (s[0], s[1] * SH, s[2] * SW, s[1], s[2], s[3]), writeable=False)
    return np.ascontiguousarray(view)


def np_col2im(col, H, W, SH, SW, PT, PL):
    """(N, OH, OW, KH, KW, C) -> (N, H, W, C): one strided slice-add per kernel tap, then crop."""
    N, OH, OW, KH, KW, C = col.shape
    HP = max(H + PT, (OH - 1) * SH + KH)
    WP = max(W + PL, (OW - 1) * SW + KW)
    gx = np.zeros((N, HP, WP, C), col.dtype)
    for ki in range(KH):
        for kj in range(KW):
            gx[:, ki:ki + (OH - 1) * SH + 1:SH, kj:kj + (OW - 1) * SW + 1:SW, :] += col[:, :, :, ki, kj, :]
    return np.ascontiguousarray(gx[:, PT:PT + H, PL:PL + W, :])


def np_pool_fwd(x, K):
    """2-D max pool, window = stride = K, "valid": (y, window arg-max (N, OH, OW, C))."""
    N, H, W, C = x.shape
    OH, OW = H // K, W // K
    win = x[:, :OH * K, :OW * K].reshape(N, OH, K, OW, K, C).transpose(0, 1, 3, 5, 2, 4).reshape(N, OH, OW, C, K * K)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], -1)[..., 0], arg


def np_pool_bwd(gy, arg, H, W, K):
    N, OH, OW, C = gy.shape
    onehot = (np.arange(K * K) == arg[..., None]) * gy[..., None]           # (N, OH, OW, C, K*K)
    g = onehot.reshape(N, OH, OW, C, K, K).transpose(0, 1, 4, 2, 5, 3).reshape(N, OH * K, OW * K, C)
    gx = np.zeros((N, H, W, C), gy.dtype)
    gx[:, :OH * K, :OW * K] = g
    return gx


def np_up_fwd(x, S):
    N, H, W, C = x.shape
    return np.broadcast_to(x[:, :, None, :, None, :], (N, H, S, W, S, C)).reshape(N, H * S, W * S, C)


def np_up_bwd(gy, S):
    N, OH, OW, C = gy.shape
    return gy.reshape(N, OH // S, S, OW // S, S, C).sum(axis=(2, 4))


def np_scatter(ids, gy, V):
    gW = np.zeros((V, gy.shape[1]), gy.dtype)
    np.add.at(gW, ids, gy)
    return gW


# ----------------------------------------------------------------- cases
def kernel_cases(quick):
    """(name, shape text, numbanet fn, numpy fn, compare) on the workloads' shapes."""
    rng = np.random.default_rng(0)
    cases = []

    def im2col_case(label, N, H, W, C, K, pad):
        from numbanet.fast.kernels.im2col import col2im, im2col
        x = rng.random((N, H, W, C), dtype=np.float32)
        p = (K - 1) // 2 if pad == "same" else 0
        q = K - 1 - p if pad == "same" else 0
        args = (K, K, 1, 1, p, q, p, q)
        col = im2col(x, *args)
        cases.append((f"im2col {label}", f"x {x.shape}, k{K} {pad} -> {col.shape}",
                      lambda: im2col(x, *args), lambda: np_im2col(x, *args)))
        gcol = rng.random(col.shape, dtype=np.float32)
        cases.append((f"col2im {label}", f"col {col.shape} -> {x.shape}",
                      lambda: col2im(gcol, H, W, 1, 1, p, p), lambda: np_col2im(gcol, H, W, 1, 1, p, p)))

    def pool_case(label, N, H, W, C):
        from numbanet.fast.kernels.pooling import max_pool_backward, max_pool_forward
        x = rng.random((N, H, W, C), dtype=np.float32)
        OH, OW = H // 2, W // 2
        y, arg = max_pool_forward(x, 2, 2, 2, 2, 0, 0, OH, OW)
        _, warg = np_pool_fwd(x, 2)
        gy = rng.random(y.shape, dtype=np.float32)
        cases.append((f"max-pool fwd {label}", f"x {x.shape} -> {y.shape}",
                      lambda: max_pool_forward(x, 2, 2, 2, 2, 0, 0, OH, OW)[0], lambda: np_pool_fwd(x, 2)[0]))
        cases.append((f"max-pool bwd {label}", f"gy {gy.shape} -> {x.shape}",
                      lambda: max_pool_backward(gy, arg, 2, 2, 2, 2, 0, 0, H, W), lambda: np_pool_bwd(gy, warg, H, W, 2)))

    def up_case(label, N, H, W, C):
        from numbanet.fast.kernels.upsample import upsample_nearest_backward, upsample_nearest_forward
        x = rng.random((N, H, W, C), dtype=np.float32)
        gy = rng.random((N, 2 * H, 2 * W, C), dtype=np.float32)
        cases.append((f"upsample fwd {label}", f"x {x.shape} -> {gy.shape}",
                      lambda: upsample_nearest_forward(x, 2, 2), lambda: np_up_fwd(x, 2)))
        cases.append((f"upsample bwd {label}", f"gy {gy.shape} -> {x.shape}",
                      lambda: upsample_nearest_backward(gy, 2, 2), lambda: np_up_bwd(gy, 2)))

    def embed_case(label, M, V, D):
        from numbanet.fast.kernels.embedding import embedding_backward_array
        ids = rng.integers(0, V, M).astype(np.intp)
        gy = rng.random((M, D), dtype=np.float32)
        cases.append((f"embedding scatter-add {label}", f"{M} rows of {D} into ({V}, {D})",
                      lambda: embedding_backward_array(ids, gy, V), lambda: np_scatter(ids, gy, V)))

    builders = [
        (im2col_case, ("W2 conv1", 64, 28, 28, 1, 3, "valid")),
        (im2col_case, ("W2 conv2", 64, 13, 13, 32, 3, "valid")),
        (im2col_case, ("W3 conv1", 256, 28, 28, 1, 3, "same")),
        (im2col_case, ("W3 dec conv16", 256, 16, 16, 8, 3, "valid")),
        (pool_case, ("W2 pool1", 64, 26, 26, 32)),
        (pool_case, ("W2 pool2", 64, 11, 11, 64)),
        (pool_case, ("W3 pool1", 256, 28, 28, 16)),
        (up_case, ("W3 up3", 256, 14, 14, 16)),
        (up_case, ("W3 up1", 256, 4, 4, 4)),
        (embed_case, ("W5", 64 * 20, 2000, 256)),
        (embed_case, ("W5L", 256 * 20, 7001, 256)),
    ]
    if quick:
        builders = builders[:2] + builders[4:5] + builders[7:8] + builders[9:10]
    out = []
    for build, a in builders:
        try:
            cases.clear()
            build(*a)
            out.extend(cases)
        except Exception:
            out.append((f"{build.__name__} {a[0]}", "", None, traceback.format_exc(limit=2)))
    return out


def bench_kernels(quick, repeats):
    rows = []
    for name, shape, fn, ref in kernel_cases(quick):
        if fn is None:
            rows.append({"kernel": name, "error": ref})
            continue
        try:
            np.testing.assert_allclose(fn(), ref(), rtol=1e-5, atol=1e-5)
            t_nb = time_call(fn, repeats, 0.02 if quick else 0.1)
            t_np = time_call(ref, repeats, 0.02 if quick else 0.1)
            rows.append({"kernel": name, "shape": shape, "numbanet_s": t_nb, "numpy_s": t_np,
                         "speedup": t_np["median"] / t_nb["median"]})
            print(f"  {name:<30} numbanet {t_nb['median'] * 1e6:9.1f} us   numpy {t_np['median'] * 1e6:9.1f} us"
                  f"   x{t_np['median'] / t_nb['median']:.2f}   [{shape}]")
        except Exception:
            rows.append({"kernel": name, "shape": shape, "error": traceback.format_exc(limit=3)})
    return rows


# ----------------------------------------------------------- conv GFLOP/s
CONV_LAYERS = [  # (label, N, H, W, C, F, K, padding, input needs grad)
    ("W2 conv1 32x3x3", 64, 28, 28, 1, 32, 3, "valid", False),
    ("W2 conv2 64x3x3", 64, 13, 13, 32, 64, 3, "valid", True),
    ("W3 conv1 16x3x3 same", 256, 28, 28, 1, 16, 3, "same", False),
    ("W3 dec conv16 valid", 256, 16, 16, 8, 16, 3, "valid", True),
    ("W3 out conv1 same", 256, 28, 28, 16, 1, 3, "same", True),
]


def bench_conv(quick, repeats):
    rows = []
    layers = CONV_LAYERS[:2] if quick else CONV_LAYERS
    rng = np.random.default_rng(0)
    for label, N, H, W, C, F, K, pad, need_gx in layers:
        try:
            import numbanet as nb
            from numbanet.engine.functional import conv2d
            x = nb.Tensor(rng.random((N, H, W, C), dtype=np.float32), requires_grad=need_gx)
            Wt = nb.Tensor((rng.random((K, K, C, F), dtype=np.float32) - 0.5) * 0.2, requires_grad=True)
            b = nb.Tensor(np.zeros(F, np.float32), requires_grad=True)
            y = conv2d(x, Wt, b, padding=pad)
            OH, OW = y.shape[1:3]
            gy = rng.random(y.shape, dtype=np.float32)
            M, Kd = N * OH * OW, K * K * C
            gemm = 2.0 * M * Kd * F
            fwd_flops, fb_flops = gemm, gemm * (3 if need_gx else 2)

            def fwd():
                return conv2d(x, Wt, b, padding=pad)

            def fwd_bwd():
                Wt.grad = b.grad = x.grad = None
                conv2d(x, Wt, b, padding=pad).backward(gy)

            A = rng.random((M, Kd), dtype=np.float32)
            B = rng.random((Kd, F), dtype=np.float32)
            t_f = time_call(fwd, repeats, 0.05 if quick else 0.2)
            t_fb = time_call(fwd_bwd, repeats, 0.05 if quick else 0.2)
            t_mm = time_call(lambda: A @ B, repeats, 0.05 if quick else 0.2)
            row = {"layer": label, "gemm": f"({M}, {Kd}) @ ({Kd}, {F})",
                   "fwd_s": t_f, "fwd_bwd_s": t_fb, "same_shape_matmul_s": t_mm,
                   "fwd_gflops": fwd_flops / t_f["median"] / 1e9,
                   "fwd_bwd_gflops": fb_flops / t_fb["median"] / 1e9,
                   "same_shape_matmul_gflops": gemm / t_mm["median"] / 1e9}
            rows.append(row)
            print(f"  {label:<24} fwd {row['fwd_gflops']:6.1f} GFLOP/s  fwd+bwd {row['fwd_bwd_gflops']:6.1f}  "
                  f"same-shape matmul {row['same_shape_matmul_gflops']:6.1f}  [{row['gemm']}]")
        except Exception:
            rows.append({"layer": label, "error": traceback.format_exc(limit=3)})
    return rows


CEILING_CODE = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
threadpool_limits(int(sys.argv[1]))
out = {}
for n in (1024, 2048):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    ts = []
    for _ in range(int(sys.argv[2])):
        t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
    ts.sort()
    out[str(n)] = {"gflops_median": 2 * n**3 / ts[len(ts) // 2] / 1e9, "gflops_best": 2 * n**3 / ts[0] / 1e9}
out["openblas"] = [{k: i.get(k) for k in ("version", "architecture", "num_threads")}
                   for i in threadpool_info() if i.get("internal_api") == "openblas"]
print(json.dumps(out))
"""


def matmul_ceiling(threads, repeats):
    """float32 square matmul GFLOP/s in fresh processes, per OPENBLAS_CORETYPE setting."""
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        flags = []
    orig = os.environ.get("BENCH_ORIGINAL_OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE", ""))
    candidates = [("in the environment before the harness", orig or None),
                  ("as set for this run", os.environ.get("OPENBLAS_CORETYPE")),
                  ("unset (OpenBLAS autodetects)", None)]
    if "avx512f" in flags:
        candidates.append(("SkylakeX (AVX-512 kernels)", "SkylakeX"))
    settings = {}
    for label, value in candidates:               # one run per distinct value, all its labels kept
        settings[value] = settings[value] + "; " + label if value in settings else label
    settings = [(label, value) for value, label in settings.items()]
    rows = []
    for label, value in settings:
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        if value is not None:
            env["OPENBLAS_CORETYPE"] = value
        try:
            p = subprocess.run([sys.executable, "-c", CEILING_CODE, str(threads), str(repeats)], env=env,
                               capture_output=True, text=True, timeout=300)
            res = json.loads(p.stdout.strip().splitlines()[-1])
            res.update({"setting": label, "OPENBLAS_CORETYPE": value})
            rows.append(res)
            print(f"  matmul ceiling, OPENBLAS_CORETYPE {label} ({value}): "
                  f"{res['2048']['gflops_median']:.1f} GFLOP/s (2048^2), {res['1024']['gflops_median']:.1f} (1024^2); "
                  f"OpenBLAS core {res['openblas'][0]['architecture'] if res['openblas'] else '?'}")
        except Exception:
            rows.append({"setting": label, "OPENBLAS_CORETYPE": value, "error": traceback.format_exc(limit=2)})
    return {"avx512f": "avx512f" in flags, "env_OPENBLAS_CORETYPE": orig or None,
            "run_OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "runs": rows}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    p.add_argument("--tune-malloc", action="store_true")
    p.add_argument("--numbanet-serial", action="store_true")
    args = p.parse_args(argv)
    from .threads import limit_in_process, tune_malloc
    thread_mode = limit_in_process(args.threads, "numbanet", not args.numbanet_serial).get("numbanet_mode")
    malloc = tune_malloc("numbanet") if args.tune_malloc else "glibc defaults"
    repeats = 3 if args.quick else 7
    out = {"malloc": malloc, "threads": thread_mode, "kernels": bench_kernels(args.quick, repeats)}
    out["conv"] = bench_conv(args.quick, repeats)
    out["ceiling"] = matmul_ceiling(args.threads, 3 if args.quick else 7)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
