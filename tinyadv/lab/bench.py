"""python -m tinyadv.bench -- how fast is one training step, and how close to the machine's limit?

    python -m tinyadv.bench [--json] [--sizes 784,256,256,10] [--batch 128] [--steps 100]
                            [--preset paper-4d] [--arch cnn] [--compare OTHER.json]

On random data of MNIST shape (float32 pixels in [0, 1], labels 0..9), after a warm-up, it
times

* the **baseline** step (train.MODELS["baseline"]): FGSM on the batch, cross-entropy on
  clean + FGSM images through one concatenated forward/backward, Adam update;
* the **full** step (train.MODELS["baseline+mls+mli"]): the same plus the invariance
  positives, the hardest in-batch negatives, both triplets and the feature norm -- all
  through one concatenated forward/backward of [x; x'; x''];
* the **invariance generator** (fast/nearest.py's label_flip) on 10,000 images against
  60,000 references (reported as None if that module cannot be imported);
* a float32 2048^3 matrix product: what BLAS reaches on this machine, the ceiling.

Each step is timed on its own with time.perf_counter; we report the median over --steps
steps and the 10th-90th percentile spread (other processes share the CPU, so single
timings are noisy -- the median is robust to that, the spread shows how noisy it was).

How the FLOPs are counted
-------------------------
Only matrix products, analytically: a product of an (m, k) by a (k, n) matrix costs
2*m*k*n floating-point operations (one multiply and one add per term). Elementwise work
(ReLU, softmax, triplet and norm terms, Adam, sign, clip) is O(m*n) per layer -- about 1-2%
of the operations here -- and is not counted, so the GFLOP/s we print are *useful* matrix
FLOPs per second, the same count one would use for any framework. (That 1-2% of the
operations is not 1-2% of the time: it is memory-bound and runs on one core, while BLAS
uses both; see the README's benchmark section.) With layer widths s_0 .. s_L
(s_0 = 784 pixels, s_L = 10 classes) and r rows, write P(r) = sum_l 2 * r * s_{l-1} * s_l,
the cost of pushing r rows through every layer once. Then

* a forward pass of r rows:                       x @ W for every layer       P(r)
* weight gradients dW = x.T @ dout:                one product per layer       P(r)
* input gradients dx = dout @ W.T:                 one product per layer       P(r)
  (training skips layer 1's dx -- nobody needs d loss / d pixels -- so P(r) minus
  2 * r * s_0 * s_1 there; FGSM needs dx all the way down but no dW)

    FGSM on N images             = P(N) forward + P(N) input gradient            = 2 P(N)
    baseline objective, r = 2N   = P(2N) + P(2N) + (P(2N) - 2*2N*s_0*s_1)
    full objective,     r = 3N   = the same with 3N rows
                                   + 2 * N * N * s_{L-1} for the N x N cosine matrix
                                     of the hardest-negative search
    step = FGSM + objective      (the Adam update has no matrix product)

For 784-256-256-10 and N = 128: P(N) = 68.8 MFLOP; baseline step = 447.7 MFLOP,
full step = 611.2 MFLOP. These are the steps as specified -- what a framework computes for
them (the PyTorch and JAX steps the README times beside ours) -- and the GFLOP/s and share
of the ceiling we print use them.

tinyadv's step (the lab's, fast/step.py) performs fewer: the anchors' forward serves both
FGSM and the objective (fast/mlp.py: stack_forwards), so the objective pushes only the other
groups through the network -- P(N) less, 378.9 and 542.4 MFLOP. ``performed_flops`` counts those; the report
shows both.

With the paper-4d preset the baseline's cross-entropy is on FGSM images only and no triplet
needs the anchors, so its objective pushes only [x'] through the network (r = N; nothing to
share with FGSM); the counts use the 784-256-256-4-10 widths of that preset.

    python -m tinyadv.bench --preset paper-4d    # a 4-unit embedding, CE on FGSM

times the same steps with another preset (lab/configs.py). Set
OPENBLAS_NUM_THREADS=1 to time the single-thread step the reproduction's workers run.

The CNN
-------
    python -m tinyadv.bench --preset paper-4d --arch cnn

times the same two steps on the paper's authors' CNN (fast/cnn.py, TrainConfig.arch = "cnn";
--sizes does not apply). Its FLOPs are counted the same way, with each layer's multiply-adds
per image in place of s_{l-1} * s_l: a 5 x 5 convolution from C to F channels with an
Ho x Wo output does Ho * Wo * F * 25 * C of them (conv1: 24*24*32*25 = 460,800; conv2:
8*8*64*800 = 3,276,800), the dense layers fan_in * fan_out (1024*256, 256*256, 256*4, 4*10):
4,066,344 an image, so P(128) = 1,040,984,064 FLOP. These are a direct convolution's
operations, what a framework is asked for; tinyadv's second convolution computes its
backward through Fourier transforms with about 5 times fewer (fast/conv.py), which the
count ignores, so the CNN's GFLOP/s are useful operations per second, not what ran.

    python -m tinyadv.bench --preset paper-4d --arch cnn --compare pytorch.json

prints another implementation's timings of the same two steps beside tinyadv's: OTHER.json
holds {"baseline_ms_per_step": ..., "full_ms_per_step": ..., "label": "..."} (measured
elsewhere, for instance by a PyTorch script outside this repository, which tinyadv never
imports).
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np

from .. import network
from ..fast.memory import keep_freed_memory
from ..fast.nearest import label_flip
from ..fast.objective import trained_groups
from ..optim import make_optimizer
from ..train import draw_batch
from .configs import model_config, preset_config
from .experiments import parse_preset

__all__ = ["run", "main", "format_report", "step_flops", "performed_flops", "pass_flops",
           "gemm_gflops", "summary", "peak_rss_mb", "CNN_LAYER_MACS", "read_comparison"]

GEMM_SIZE = 2048  # n for the n x n x n ceiling product: large enough for BLAS to peak


# Multiply-adds per image of each of the CNN's layers with weights, in order (docstring).
CNN_LAYER_MACS = (24 * 24 * 32 * 1 * 25, 8 * 8 * 64 * 32 * 25, 1024 * 256, 256 * 256, 256 * 4,
                  4 * 10)
CNN_EMBEDDING_WIDTH = 4


# --- FLOP counting -------------------------------------------------------------------------

def pass_flops(sizes, rows):
    """P(r): FLOPs of pushing ``rows`` rows through every linear layer once (2 m k n each)."""
    return sum(2 * rows * fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def _layer_macs(sizes, config):
    """Multiply-adds per image of each layer: the CNN's, or the MLP's widths s_{l-1} * s_l."""
    if config.arch == "cnn":
        return list(CNN_LAYER_MACS)
    return [fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]


def objective_groups(config):
    """How many groups of N rows the objective pushes through the network for a step with this
    config: the image groups that carry a gradient (objective.eq2_terms says which) --
    [x; x'; x''] for the full step; [x; x'] for the baseline, or only [x'] when the
    cross-entropy is on FGSM images alone and no triplet needs the anchors (the paper-4d
    preset's baseline)."""
    return len(trained_groups(config.terms()))


def mines_hardest_negatives(config):
    """Does a step with this config search the batch for each anchor's hardest negative?"""
    return (config.negatives == "hardest"
            and any("neg" in term.groups for term in config.terms()))


def step_flops(sizes, batch, config):
    """Matrix-product FLOPs of one training step (see the module docstring for the list)."""
    macs = _layer_macs(list(sizes), config)
    one_pass = 2 * sum(macs)  # P(r) / r
    fgsm = 2 * one_pass * batch if config.adversarial else 0  # forward + input gradient
    rows = objective_groups(config) * batch
    first_dx = 2 * rows * macs[0]  # skipped in training
    step = fgsm + 3 * one_pass * rows - first_dx  # forward, dW, dx (but layer 1's)
    if mines_hardest_negatives(config):
        width = CNN_EMBEDDING_WIDTH if config.arch == "cnn" else sizes[-2]
        step += 2 * batch * batch * width  # hardest negatives: (N, K) @ (K, N)
    return step


def performed_flops(sizes, batch, config):
    """Matrix-product FLOPs tinyadv computes for the step: one forward of the N anchors less
    than ``step_flops`` when the objective trains on the anchors' rows, since FGSM and the
    objective share that forward; the same as ``step_flops`` when it does not."""
    shares = config.adversarial and "anchor" in trained_groups(config.terms())
    one_pass = 2 * sum(_layer_macs(list(sizes), config)) * batch  # P(N)
    return step_flops(sizes, batch, config) - (one_pass if shares else 0)


# --- timing ---------------------------------------------------------------------------------

def time_calls(fn, repeats, warmup):
    """Seconds per call of fn(), each call timed on its own, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.array(times)


def summary(seconds):
    """Median and 10th/90th percentiles of a set of timings, in milliseconds."""
    p10, median, p90 = np.percentile(np.asarray(seconds) * 1e3, [10, 50, 90])
    return {"median_ms": float(median), "p10_ms": float(p10), "p90_ms": float(p90)}


def gemm_gflops(n=GEMM_SIZE, repeats=7, rng=None):
    """GFLOP/s of a float32 (n, n) @ (n, n) product: median and best of ``repeats`` runs."""
    rng = rng or np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    times = time_calls(lambda: np.matmul(a, b, out=out), repeats, warmup=1)
    flops = 2.0 * n ** 3
    return {"median": flops / np.median(times) / 1e9, "best": flops / times.min() / 1e9}


def machine_busy_seconds():
    """CPU-seconds the whole machine has spent busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            # user nice system idle iowait irq softirq, in clock ticks
            ticks = [int(v) for v in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Cores that *other* processes kept busy while a measurement ran (None if unknown).

    Machine-wide busy time (/proc/stat) minus this process's own CPU time, over the wall
    time: 0 on a quiet machine, 1 if another process kept one core busy throughout. Timings
    taken with other load > ~0.2 cores are not this code's speed, they are a shared machine's.
    """

    def __enter__(self):
        self.busy, self.own = machine_busy_seconds(), time.process_time()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy = machine_busy_seconds()
        wall = time.perf_counter() - self.wall
        if busy is None or self.busy is None or wall <= 0:
            self.cores = None
        else:
            self.cores = max(0.0, (busy - self.busy) - (time.process_time() - self.own)) / wall
        return False


def minor_page_faults():
    """Page faults this process has taken so far (memory handed back by the OS and re-touched)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_mb():
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the machine ----------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info():
    """Which BLAS NumPy uses: threadpoolctl's view if installed, else numpy.show_config."""
    try:
        import threadpoolctl  # optional; not a dependency
        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = pools[0]
            return f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
    except ImportError:
        pass
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no mode="dicts"
        return "unknown"


def machine_info():
    threads = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
               if k in os.environ}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "thread_env": threads,
        "load_average_1min": os.getloadavg()[0],  # > cores means someone else is busy too
    }


# --- the benchmarks -------------------------------------------------------------------------

def random_mnist_like(n, rng):
    """n random images (float32 in [0, 1], shape (n, 784)) with random labels 0..9."""
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, size=n)


def bench_step(model, sizes, batch, steps, warmup, seed=0, preset="default", arch="mlp"):
    """Seconds per training step of one Table 1 row, on random data of MNIST shape: the step
    the lab trains with (fast/step.py; the authors' under the authors-code preset).

    Returns (seconds of each timed step, page faults per timed step).
    """
    keep_freed_memory()  # as the reproduction's worker processes do when they start
    rng = np.random.default_rng(seed)
    base = preset_config(preset, sizes=tuple(sizes), batch_size=batch, seed=seed, arch=arch)
    config = model_config(model, base)
    pool = max(8 * batch, 1024)  # enough distinct batches that nothing is trivially cached
    X, y = random_mnist_like(pool, rng)
    # Invariance examples: any images within [0, 1] cost the same as real ones.
    x_inv = np.clip(X + rng.uniform(-0.3, 0.3, size=X.shape).astype(np.float32), 0, 1)
    x_inv = x_inv if config.uses_invariance else None
    params = network.init_params(config.train, rng)
    opt = make_optimizer(config.optimizer, params, config.lr)
    batches = [rng.choice(pool, size=batch, replace=False) for _ in range(16)]
    counter = iter(range(10 ** 12))
    step = config.training_step()

    def one_step():
        idx = batches[next(counter) % len(batches)]
        step(params, opt, config.train, draw_batch(config.train, idx, X, y, x_inv), rng)

    time_calls(one_step, warmup, warmup=0)
    faults = minor_page_faults()
    times = time_calls(one_step, steps, warmup=0)
    return times, (minor_page_faults() - faults) / steps


def bench_invariance(n_queries, n_refs, eps=0.3, seed=0):
    """Seconds for label_flip of n_queries images against n_refs references."""
    rng = np.random.default_rng(seed)
    x, y = random_mnist_like(n_queries, rng)
    ref_x, ref_y = random_mnist_like(n_refs, rng)
    label_flip(x[:64], y[:64], ref_x[:640], ref_y[:640], eps)  # warm-up: imports, page faults
    start = time.perf_counter()
    label_flip(x, y, ref_x, ref_y, eps)
    return time.perf_counter() - start


def run(sizes=(784, 256, 256, 10), batch=128, steps=100, warmup=10, inv_queries=10_000,
        inv_refs=60_000, gemm_size=GEMM_SIZE, preset="default", arch="mlp", compare=None):
    """Every measurement, as one flat dict (the --json line). ``compare``: another
    implementation's timings (read_comparison), reported beside tinyadv's."""
    sizes = [int(s) for s in sizes]
    result = {"sizes": sizes, "batch": batch, "steps": steps, "preset": preset, "arch": arch}
    result["machine"] = machine_info()
    with OtherLoad() as load:
        gemm = gemm_gflops(gemm_size)
    other = [load.cores]
    # Count what the timed steps' config does: the paper-4d preset inserts a linear
    # embed_dim-unit layer before the head, and its baseline trains CE on FGSM images only.
    base = preset_config(preset, sizes=tuple(sizes), arch=arch)
    embed_dim = base.embed_dim
    widths = sizes[:-1] + [embed_dim, sizes[-1]] if embed_dim else sizes
    for name, model in (("baseline", "baseline"), ("full", "baseline+mls+mli")):
        config = model_config(model, base)
        with OtherLoad() as load:
            times, faults = bench_step(model, sizes, batch, steps, warmup, preset=preset,
                                       arch=arch)
        result[f"{name}_other_load_cores"] = load.cores
        result[f"{name}_page_faults_per_step"] = faults  # a handful, unless memory is returned
        stats = summary(times)
        flops = step_flops(widths, batch, config)
        result[f"{name}_ms_per_step"] = stats["median_ms"]
        result[f"{name}_ms_p10"] = stats["p10_ms"]
        result[f"{name}_ms_p90"] = stats["p90_ms"]
        result[f"{name}_mflop_per_step"] = flops / 1e6
        result[f"{name}_mflop_performed"] = performed_flops(widths, batch, config) / 1e6
        result[f"{name}_gflops"] = flops / (stats["median_ms"] * 1e-3) / 1e9
    # The ceiling is measured again after the steps; the larger median is reported.
    with OtherLoad() as load:
        gemm_after = gemm_gflops(gemm_size)
    other.append(load.cores)
    result["gemm_other_load_cores"] = None if None in other else max(other)
    result["gemm_size"] = gemm_size
    result["gemm_gflops"] = max(gemm["median"], gemm_after["median"])
    result["gemm_gflops_best"] = max(gemm["best"], gemm_after["best"])
    for name in ("baseline", "full"):
        result[f"{name}_fraction_of_gemm"] = result[f"{name}_gflops"] / result["gemm_gflops"]
    if inv_queries > 0:
        with OtherLoad() as load:
            seconds = bench_invariance(inv_queries, inv_refs)
        result["invariance_other_load_cores"] = load.cores
        result["invariance_queries"] = inv_queries
        result["invariance_refs"] = inv_refs
        # Linear in the number of queries, so scale to 10,000 for a comparable figure.
        result["invariance_s_per_10k"] = None if seconds is None else seconds * 10_000 / inv_queries
    else:
        result["invariance_s_per_10k"] = None
    result["peak_rss_mb"] = peak_rss_mb()
    if compare is not None:
        result["compare"] = {**compare, **{
            f"{name}_ratio": result[f"{name}_ms_per_step"] / compare[f"{name}_ms_per_step"]
            for name in ("baseline", "full")}}
    return result


def read_comparison(path):
    """Another implementation's timings of the two steps, from a JSON file with (at least)
    baseline_ms_per_step and full_ms_per_step, positive numbers; "label" names it."""
    try:
        with open(path) as f:
            other = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"--compare: cannot read {path}: {err}") from err
    if not isinstance(other, dict):
        raise ValueError(f"--compare: expected a JSON object in {path}, got {type(other).__name__}")
    for key in ("baseline_ms_per_step", "full_ms_per_step"):
        value = other.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"--compare: {path} needs {key}, a positive number; got {value!r}")
    other.setdefault("label", os.path.basename(path))
    return other


def _load_note(cores):
    """A warning when other processes were busy during a measurement."""
    if cores is None or cores < 0.2:
        return ""
    return f"  [other processes kept {cores:.1f} cores busy: noisy]"


def format_report(r):
    m = r["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, NumPy {m['numpy']}, "
        f"BLAS {m['blas']}, load average {m['load_average_1min']:.2f}"
        + (f", {m['thread_env']}" if m["thread_env"] else ""),
        f"network {_network_text(r)}, batch {r['batch']}, float32, preset "
        f"{r.get('preset', 'default')}, {r['steps']} timed steps each (median, 10th-90th "
        f"percentile)",
        f"float32 GEMM {r['gemm_size']}^3: {r['gemm_gflops']:.1f} GFLOP/s median "
        f"(best {r['gemm_gflops_best']:.1f}) -- the ceiling"
        f"{_load_note(r.get('gemm_other_load_cores'))}",
    ]
    for name in ("baseline", "full"):
        lines.append(
            f"{name:8s} step: {r[name + '_ms_per_step']:7.2f} ms  "
            f"[{r[name + '_ms_p10']:.2f}-{r[name + '_ms_p90']:.2f}]  "
            f"{r[name + '_mflop_per_step']:.1f} MFLOP -> {r[name + '_gflops']:.1f} GFLOP/s "
            f"= {100 * r[name + '_fraction_of_gemm']:.0f}% of the ceiling "
            f"(tinyadv performs {r[name + '_mflop_performed']:.1f} of those MFLOP), "
            f"{r[name + '_page_faults_per_step']:.0f} page faults/step"
            f"{_load_note(r.get(name + '_other_load_cores'))}")
    inv = r["invariance_s_per_10k"]
    if inv is None:
        lines.append("invariance generator: not measured (tinyadv.invariance not importable, "
                     "or --inv-queries 0)")
    else:
        lines.append(f"invariance generator: {inv:.1f} s per 10,000 images against "
                     f"{r['invariance_refs']:,} references (measured on "
                     f"{r['invariance_queries']:,}; 70,000 images -> ~{7 * inv:.0f} s)"
                     f"{_load_note(r.get('invariance_other_load_cores'))}")
    lines.append(f"peak memory (max RSS) of this process: {r['peak_rss_mb']:.0f} MB")
    other = r.get("compare")
    if other is not None:
        for name in ("baseline", "full"):
            lines.append(
                f"{name:8s} step beside {other['label']}: tinyadv {r[name + '_ms_per_step']:.2f} "
                f"ms, {other['label']} {other[name + '_ms_per_step']:.2f} ms -> "
                f"{other[name + '_ratio']:.2f} times its time")
    return "\n".join(lines)


def _network_text(r):
    if r.get("arch", "mlp") == "cnn":
        return "the authors' CNN (cnn.py)"
    return "-".join(map(str, r["sizes"]))


def parse_sizes(text):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes: expected integers like 784,256,256,10, got {text!r}")
    if len(sizes) < 3 or sizes[0] != 784 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes: expected 784,hidden...,classes, got {text!r}")
    return sizes


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyadv.bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    parser.add_argument("--sizes", type=parse_sizes, default=[784, 256, 256, 10])
    parser.add_argument("--batch", type=positive_int, default=128)
    parser.add_argument("--steps", type=positive_int, default=100, help="timed steps per benchmark")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--inv-queries", type=int, default=10_000,
                        help="images for the invariance generator (0 skips it)")
    parser.add_argument("--inv-refs", type=positive_int, default=60_000)
    parser.add_argument("--gemm-size", type=positive_int, default=GEMM_SIZE)
    parser.add_argument("--preset", type=parse_preset, default="default",
                        help="preset of the timed steps (lab/configs.py: default, paper-4d, "
                             "authors-code)")
    parser.add_argument("--arch", choices=network.ARCHS, default="mlp",
                        help="the network: an MLP of --sizes, or the authors' CNN")
    parser.add_argument("--compare", metavar="FILE.json", default=None,
                        help="another implementation's timings to print beside tinyadv's")
    args = parser.parse_args(argv)
    compare = None
    if args.compare is not None:
        try:
            compare = read_comparison(args.compare)
        except ValueError as err:
            parser.error(str(err))
    if args.sizes[-1] != 10:
        parser.error(f"--sizes: the last width is the number of classes, 10; got {args.sizes[-1]}")
    result = run(sizes=args.sizes, batch=args.batch, steps=args.steps, warmup=max(0, args.warmup),
                 inv_queries=max(0, args.inv_queries), inv_refs=args.inv_refs,
                 gemm_size=args.gemm_size, preset=args.preset, arch=args.arch,
                 compare=compare)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
