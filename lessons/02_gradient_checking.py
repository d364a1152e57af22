"""Lesson 02 -- gradient checking: centred differences, float64, kinks, relative error.

Every backward in tinyadv is hand-written, so every one can be wrong. The referee is the
definition of the derivative, evaluated numerically. This lesson shows how to make that
referee trustworthy, and how to read its verdict.

What you will see
-----------------
1. The error of a finite difference as the step h shrinks (figure 02_step_size.png): the
   one-sided difference (f(x+h) - f(x)) / h is wrong by O(h), the centred one
   (f(x+h) - f(x-h)) / 2h by O(h^2); below some h rounding takes over. For a derivative of
   about -0.2: in float64 the centred difference is off by about 6e-11 at h = 1e-6 (the
   one-sided one by about 9e-9); in float32 the best it can do is about 1e-6 (at h = 1e-2),
   at h = 1e-6 it is off by about 8e-3, and below that z + h == z and it returns 0.
2. ``rel_error`` -- max|a - b| / max(|a| + |b|) -- and CS231n's rule of thumb: <= 1e-7 good;
   up to about 1e-4 acceptable only for a function with kinks (ReLU, a hinge), too high for a
   smooth one; 1e-4 to 1e-2 suspect; > 1e-2 wrong.
3. A whole MLP checked in float64: every parameter and the input gradient PASS with relative
   errors of about 3e-10 to 1e-9.
4. Kinks: a ReLU sitting exactly on 0 (zero biases and a black image, the classic trap) gives a
   relative error of about 8e-2 although the backward is correct -- in the "wrong" band, as
   large as a bug's: a kink *under the test point* is not the "near a kink" of the rule of
   thumb, and the cure is to move the point. Random non-zero biases bring it back to about
   7e-10. A triplet hinge within h of 0 fails the same way (about 0.3).
5. Two student bugs (a forgotten 1/N, a forgotten ReLU mask) caught: relative errors of about
   0.7 and 0.5, with the worst entry printed so the bug can be found.
6. The same correct MLP checked in float32 (even with its best step, h = 1e-3): relative error
   about 3e-4 -- in the "suspect" band, with no kink anywhere near: float32's rounding alone
   makes a correct gradient look like a bug. ``numerical_gradient`` refuses float32 inputs
   for that reason.
7. All of these in one picture (02_rel_errors.png): each case at its measured relative
   error, correct code and buggy code marked apart, over the four bands of the rule.

Runs in a few seconds (no training). Figures: 02_step_size.png, 02_rel_errors.png.
Exercises 01 and 02 (lessons/exercises/) come before this lesson: section 5 shows two
mistakes their checker catches, so write yours first.

Run:  python lessons/02_gradient_checking.py [--fast] [--out DIR]   (or open it as a notebook)
"""

# %% Setup
import os
import sys

# One BLAS thread (NumPy's matrix products) unless you set OPENBLAS_NUM_THREADS yourself: on
# a busy machine a second thread mostly waits for a core (the lesson then takes several times
# longer), and the last digit of a sum can change with the thread count. Set before NumPy is
# imported, or it has no effect.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
if os.path.isdir(os.path.join(HERE, "lessons")):  # a notebook started at the repository root
    HERE = os.path.join(HERE, "lessons")
sys.path.insert(0, os.path.dirname(HERE))  # the repository root: `import tinyadv` without installing
from tinyadv.lesson import lesson_options  # noqa: E402
from tinyadv import layers, losses, mlp, plots  # noqa: E402
from tinyadv.gradcheck import compare, numerical_gradient, rel_error  # noqa: E402

OUT, FAST = lesson_options("Lesson 02: gradient checking",
                           default_out=os.path.join(HERE, "out"))
rng = np.random.default_rng(0)


# %% 1. How small should the step h be? One-sided vs centred, float64 vs float32
# f(z) = softmax cross-entropy of a (4, 10) batch of logits; we differentiate w.r.t. z[0, 3].
# The exact derivative comes from the backward (which lesson 01 and section 3 trust).
labels = np.array([3, 1, 4, 1])
z64 = rng.standard_normal((4, 10))
exact = losses.softmax_cross_entropy_backward(1.0, losses.softmax_cross_entropy_forward(z64, labels)[1])[0, 3]


def loss_with_entry(z, value):
    """The loss with z[0, 3] replaced by ``value`` (z's dtype is kept: float32 stays float32)."""
    z = z.copy()
    z[0, 3] = value
    return losses.softmax_cross_entropy_forward(z, labels)[0]


steps = np.logspace(-1, -12, 23)
errors = {}
for dtype in (np.float64, np.float32):
    z = z64.astype(dtype)
    z0 = z[0, 3]
    one_sided = [(loss_with_entry(z, z0 + dtype(h)) - loss_with_entry(z, z0)) / h for h in steps]
    centred = [(loss_with_entry(z, z0 + dtype(h)) - loss_with_entry(z, z0 - dtype(h))) / (2 * h)
               for h in steps]
    errors[f"one-sided, {np.dtype(dtype).name}"] = np.abs(np.array(one_sided) - exact)
    errors[f"centred, {np.dtype(dtype).name}"] = np.abs(np.array(centred) - exact)

# Colour = the precision, line style = the formula, so each pair reads at a glance. The x-axis
# runs from large h to small (the way one shrinks it): truncation error on the left, rounding
# error on the right.
DTYPE_COLOURS = {"float64": "black", "float32": "tab:pink"}
fig, ax = plots.figure(figsize=(7.5, 4.4))
for label, err in errors.items():
    formula, dtype = label.split(", ")
    ax.loglog(steps, np.maximum(err, 1e-17), marker=".", label=label, color=DTYPE_COLOURS[dtype],
              ls="-" if formula == "centred" else "--")
ax.set_xlabel("step h (in the units of the logit z[0, 3]; shrinking to the right)")
ax.set_ylabel("|finite difference - exact derivative|")
ax.invert_xaxis()
ax.grid(alpha=0.3, which="both")
plots.legend_beside(ax)
ax.set_title(f"Lesson 02: error of a finite difference of dL/dz[0, 3] (exact {exact:.3f}) against "
             f"the step h\ntruncation on the left (large h), rounding on the right (small h)",
             fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "02_step_size.png"))

for label, err in errors.items():
    best = int(np.argmin(err))
    at_1e6 = err[int(np.argmin(np.abs(steps - 1e-6)))]
    print(f"{label:>20}: best h = {steps[best]:.0e} (error {err[best]:.1e}); at h = 1e-6 the error is {at_1e6:.1e}")
print(f"(the exact derivative is {exact:.6f}; in float32, z + h == z once h < about 1e-7 * |z|, "
      f"so the difference becomes 0)")
print("-> centred differences in float64 with h around 1e-6 are the referee; float32 cannot be.")

# %% 2. Comparing two gradients: the relative error
# An absolute difference means nothing without a scale: 1e-3 is tiny for a gradient of size
# 100 and huge for one of size 1e-4. rel_error = max|a - b| / max(|a| + |b|) is scale-free.
print(f"rel_error([100.0], [100.001]) = {rel_error([100.0], [100.001]):.1e}  (fine)")
print(f"rel_error([1e-4], [1.001e-4]) = {rel_error([1e-4], [1.001e-4]):.1e}  (same ratio: same verdict)")
print(f"rel_error([1e-4], [2e-4])    = {rel_error([1e-4], [2e-4]):.1e}  (a factor of 2: wrong)")
print("rule of thumb (CS231n): <= 1e-7 good; up to ~1e-4 acceptable only for a function with "
      "kinks; 1e-4 to 1e-2 suspect; > 1e-2 the gradient is wrong")

# %% 3. Check a whole MLP in float64
# A small net (20 -> 16 -> 12 -> 5) on 6 random inputs, so the numerical gradient (two forward
# passes per parameter) takes a fraction of a second. Biases get random non-zero values:
# with zero biases some pre-activations can be exactly 0, right on ReLU's kink (section 4).
sizes = [20, 16, 12, 5]
params = mlp.init_params(sizes, rng, dtype=np.float64, init="he")
for k in params:
    if k.startswith("b"):
        params[k] = rng.uniform(-0.5, 0.5, size=params[k].shape)
x = rng.uniform(0, 1, size=(6, sizes[0]))
y = rng.integers(0, sizes[-1], size=6)


def mlp_loss():
    """Cross-entropy of the MLP; reads params and x, which numerical_gradient perturbs in place."""
    return losses.softmax_cross_entropy_forward(mlp.forward(params, x)[0], y)[0]


def mlp_gradients(params, x):
    logits, _, cache = mlp.forward(params, x)
    dlogits = losses.softmax_cross_entropy_backward(1.0, losses.softmax_cross_entropy_forward(logits, y)[1])
    return mlp.backward(dlogits, None, cache)


grads, dx = mlp_gradients(params, x)
reports = [compare(k, grads[k], numerical_gradient(mlp_loss, params[k])) for k in sorted(params)]
reports.append(compare("x", dx, numerical_gradient(mlp_loss, x)))
for report in reports:
    print(report)
summary = {"correct MLP, float64 (7 arrays)": [r.rel_error for r in reports]}

# %% 4. Kinks: where a correct backward "fails"
# ReLU has no derivative at 0. The backward uses the subgradient 0 there, but the centred
# difference sees (relu(+h) - relu(-h)) / 2h = 1/2 -- half a slope. Zero biases and an input
# that is all zeros (a black image, or a dead unit feeding the next layer) put pre-activations
# *exactly* on 0.
kink_params = mlp.init_params(sizes, rng, dtype=np.float64, init="he")  # biases are zero
x_black = x.copy()
x_black[0] = 0.0  # first input: all black, so its first-layer pre-activations are exactly 0


def kink_loss():
    return losses.softmax_cross_entropy_forward(mlp.forward(kink_params, x_black)[0], y)[0]


kink_grads, _ = mlp_gradients(kink_params, x_black)
kink_report = compare("b1 (zero biases, black image)", kink_grads["b1"],
                      numerical_gradient(kink_loss, kink_params["b1"]))
print(kink_report)
kink_params["b1"] = rng.uniform(-0.5, 0.5, size=sizes[1])  # move every pre-activation off 0
kink_params["b2"] = rng.uniform(-0.5, 0.5, size=sizes[2])
kink_grads, _ = mlp_gradients(kink_params, x_black)
fixed_report = compare("b1 (random biases)", kink_grads["b1"],
                       numerical_gradient(kink_loss, kink_params["b1"]))
print(fixed_report)
print("-> same correct code; only the test point moved. Keep test inputs away from kinks.")

# The triplet hinge max(0, D(a,p) - D(a,n) + m) has the same kind of kink. Put one triplet's
# hinge at +1e-8: a step of h = 1e-6 on the anchor crosses 0, and that triplet's slope is
# counted half on, half off. (Lesson 05 explains the triplet loss itself.)
a, p, n = (rng.standard_normal((4, 8)) for _ in range(3))
d_ap, _ = losses.angular_distance_forward(a[:1], p[:1])
d_an, _ = losses.angular_distance_forward(a[:1], n[:1])
margin = float(d_an[0] - d_ap[0]) + 1e-8  # the first triplet's hinge sits at +1e-8
if margin < 0:  # the margin must be >= 0: swap positive and negative instead
    p[0], n[0] = n[0].copy(), p[0].copy()
    margin = float(d_ap[0] - d_an[0]) + 1e-8
_, t_cache = losses.triplet_loss_forward(a, p, n, margin)
da, _, _ = losses.triplet_loss_backward(1.0, t_cache)
hinge_report = compare("triplet anchor, hinge at +1e-8", da,
                       numerical_gradient(lambda: losses.triplet_loss_forward(a, p, n, margin)[0], a))
print(hinge_report)
summary["ReLU exactly at 0"] = [kink_report.rel_error]
summary["ReLU moved off 0"] = [fixed_report.rel_error]
summary["hinge within h of 0"] = [hinge_report.rel_error]

# %% 5. A check must also FAIL on a wrong gradient: two classic bugs
# Bug A: forgetting the 1/N of the batch mean in the cross-entropy backward.
logits, _, cache = mlp.forward(params, x)
probs = np.exp(logits - logits.max(axis=1, keepdims=True))
probs /= probs.sum(axis=1, keepdims=True)
dlogits_bug = probs.copy()
dlogits_bug[np.arange(len(y)), y] -= 1  # ... and no division by N
grads_a, _ = mlp.backward(dlogits_bug, None, cache)
report_a = compare("W3 with the 1/N forgotten", grads_a["W3"], numerical_gradient(mlp_loss, params["W3"]))
print(report_a)
print(f"   (all entries N = {len(y)} times too big: rel_error = (N-1)/(N+1) = {(len(y) - 1) / (len(y) + 1):.3f})")

# Bug B: a backward through the last hidden layer that forgets the ReLU mask.
dlogits = losses.softmax_cross_entropy_backward(1.0, losses.softmax_cross_entropy_forward(logits, y)[1])
(l1_cache, relu1_cache), (l2_cache, relu2_cache) = cache["hidden"]  # per hidden layer
dh, _, _ = layers.linear_backward(dlogits, cache["head"])
dz2 = dh  # BUG: should be layers.relu_backward(dh, relu2_cache)
_, dW2_bug, _ = layers.linear_backward(dz2, l2_cache)
report_b = compare("W2 with the ReLU mask forgotten", dW2_bug, numerical_gradient(mlp_loss, params["W2"]))
print(report_b)
unit = report_b.worst_index[1]
switched_off = int(np.sum(relu2_cache[:, unit] == 0))
print(f"   clue: the worst entry is in column {unit}, a hidden unit that the ReLU switched off for "
      f"{switched_off} of the {len(y)} inputs -- the gradient leaked through where it should be 0.")
summary["bug: 1/N forgotten"] = [report_a.rel_error]
summary["bug: ReLU mask forgotten"] = [report_b.rel_error]

# %% 6. Why float64: the same correct MLP checked in float32
# numerical_gradient refuses float32 on purpose:
try:
    numerical_gradient(mlp_loss, params["W1"].astype(np.float32))
except TypeError as err:
    print(f"numerical_gradient(float32 array) -> TypeError: {err}")

# Done by hand anyway, to see what would happen:
params32 = {k: v.astype(np.float32) for k, v in params.items()}
x32 = x.astype(np.float32)
grads32, _ = mlp_gradients(params32, x32)
h = np.float32(1e-3)  # the best float32 can do (section 1); 1e-6 would be far worse
W = params32["W2"]
numeric32 = np.zeros_like(W)
entries = [(i, j) for i in range(W.shape[0]) for j in range(W.shape[1])]
for i, j in entries:
    original = W[i, j]
    W[i, j] = original + h
    plus = losses.softmax_cross_entropy_forward(mlp.forward(params32, x32)[0], y)[0]
    W[i, j] = original - h
    minus = losses.softmax_cross_entropy_forward(mlp.forward(params32, x32)[0], y)[0]
    W[i, j] = original
    numeric32[i, j] = (plus - minus) / (2 * h)
report_32 = compare("W2 in float32 (correct code!)", grads32["W2"], numeric32)
print(report_32)
print("-> a correct gradient that would be flagged as buggy: check in float64, train in float32.")
summary["correct MLP, float32, h = 1e-3"] = [report_32.rel_error]

# %% 7. One picture of all the verdicts
# The rule of thumb as four bands, each case at the relative error it measured. The bands are
# the rule's verdict; the markers say what the code really was (correct or buggy), so a
# correct gradient judged "wrong" (a kink under the test point) or "suspect" (float32) shows.
BANDS = [(1e-7, "good", "tab:green"),
         (1e-4, "acceptable only with kinks", "tab:olive"),
         (1e-2, "suspect", "tab:orange"),
         (np.inf, "wrong", "tab:red")]
buggy = {"bug: 1/N forgotten", "bug: ReLU mask forgotten"}
fig, ax = plots.figure(figsize=(8.5, 4.2))
names = list(summary)
for row, name in enumerate(names):
    values = np.maximum(summary[name], 1e-16)
    ax.scatter(values, [row] * len(values), s=40, zorder=3, color="black",
               marker="X" if name in buggy else "o",
               facecolor="black" if name in buggy else "white")
ax.set_xscale("log")
ax.set_xlim(1e-11, 3.0)
ax.set_yticks(range(len(names)))
ax.set_yticklabels(names)
ax.set_ylim(len(names) - 0.4, -0.6)  # first row at the top
left = ax.get_xlim()[0]
for right, text, colour in BANDS:  # each band shaded and labelled above the axes
    right = min(right, ax.get_xlim()[1])
    ax.axvspan(left, right, color=colour, alpha=0.12, lw=0)
    ax.text(np.sqrt(left * right), 1.01, text, transform=ax.get_xaxis_transform(), ha="center",
            va="bottom", fontsize=8, color=colour)
    if right < ax.get_xlim()[1]:
        ax.axvline(right, color=plots.REFERENCE_COLOUR, ls="--", lw=0.8)
    left = right
ax.set_xlabel("relative error between the analytic and the numerical gradient "
              "(rel_error, no unit)")
ax.grid(alpha=0.3, axis="x")
from matplotlib.lines import Line2D  # noqa: E402

plots.legend_beside(ax, handles=[
    Line2D([], [], ls="", marker="o", color="black", mfc="white", label="correct code"),
    Line2D([], [], ls="", marker="X", color="black", label="buggy code")])
ax.set_title("Lesson 02: where each gradient check lands, against CS231n's thresholds\n"
             "(float64 and h = 1e-6 unless the row says otherwise)", fontsize=10, pad=16)
plots.save_figure(fig, os.path.join(OUT, "02_rel_errors.png"))
print(f"figures written to {OUT}")
