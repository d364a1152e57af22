"""Lesson 05 -- angular distance (paper Eq. 1) and the triplet loss, derived and checked.

The paper measures how far apart two embeddings are by the angle between them, with an
absolute value:

    D(a, b) = 1 - |a . b| / (||a|| ||b||)                     (paper Eq. 1)

and pulls an anchor towards a positive and away from a negative with a triplet loss

    Lt(a, p, n) = mean_i max(0, D(a_i, p_i) - D(a_i, n_i) + m),   m = 0.05.

What you will see
-----------------
1. D on hand-picked vectors: D(a, a) = D(a, 3a) = D(a, -a) = 0, D(a, b) = 1 for b
   orthogonal to a; without the absolute value D(a, -a) would be 2.
2. The gradient (its derivation is exercise 04) checked: relative errors of about 4e-10 to
   7e-10 against centred differences (float64) for D and for the triplet loss. Two facts that
   follow from D ignoring lengths, before any formula, confirmed numerically: the gradient is
   orthogonal to a (a . dD/da at most about 4e-17), and it shrinks like 1/||a|| (scaling a by
   10 divides it by 10.0).
3. Why the absolute value, honestly: the paper does not say. For our network it changes
   nothing, since the embedding h is a ReLU output, so a . b >= 0 for every pair -- checked on
   MNIST pixels (also >= 0): 0 negative dot products out of about half a million pairs. It
   matters for signed features: a class may then sit on two *opposite* rays.
4. A toy: 60 signed 2-D vectors in 3 classes, moved by gradient descent on the triplet loss
   with hardest negatives. The loss falls from about 0.39 to about 0.03 in 200 steps; the
   picture (05_toy_triplets.png) shows each class gathered on a line through the origin -- on
   both of its opposite rays, which D cannot tell apart -- except 3 stragglers more than 10
   degrees off their line, the worst (56 degrees) trapped on the far side of another class's
   line: triplet losses have local minima.
5. Angular distances between raw MNIST pixel vectors: same class about 0.47 on average, other
   classes about 0.63, but with the hardest negative of each image about 92% of
   (image, random same-class image, hardest negative) triplets violate the margin. A network
   has to learn an embedding where they do not (lessons 06 and 07).

Runs in a few seconds (no network training). Figures: 05_toy_triplets.png,
05_pixel_distances.png.

Run:  python lessons/05_angular_distance_and_triplets.py [--fast] [--out DIR]
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
from tinyadv import data, layers, losses, objective, plots  # noqa: E402
from tinyadv.gradcheck import compare, numerical_gradient, numerical_gradient_array  # noqa: E402

OUT, FAST = lesson_options("Lesson 05: angular distance and the triplet loss",
                           default_out=os.path.join(HERE, "out"))
rng = np.random.default_rng(0)

# %% 1. Angular distance on vectors we can reason about
a = np.array([[3.0, 1.0, -2.0]])
b_orthogonal = np.array([[1.0, -1.0, 1.0]])  # 3 - 1 - 2 = 0
for name, b in [("a", a), ("3a", 3 * a), ("-a", -a), ("b orthogonal to a", b_orthogonal),
                ("a + small noise", a + 0.1 * rng.standard_normal(a.shape))]:
    d, _ = losses.angular_distance_forward(a, b)
    cos = float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    print(f"D(a, {name:<18}) = {d[0]:.4f}    (1 - cos, without |.|, would be {1 - cos:.4f})")
print("-> D ignores length and sign; it lies in [0, 1]; only the line through the origin counts.")

# %% 2. The gradient: what it must look like, before any formula
# Deriving dD/da is exercise 04 (lessons/exercises/04_angular_distance.py): do it first, and
# check it by running that file (python lessons/exercises/04_angular_distance.py).
# Two facts need no formula at all, only what D ignores. D(t a, b) = D(a, b) for every t > 0
# (D sees directions, not lengths). So
#   * moving a along itself changes nothing: the derivative of D(t a, b) in t is 0, and by
#     the chain rule that derivative is a . dD/da. The gradient is orthogonal to a: it only
#     ever rotates a, never stretches it;
#   * the same change of D needs a t times larger step at t a: the gradient at t a is the
#     gradient at a divided by t. The longer the embedding, the smaller the push.
# (A third comes from the |.|: D(-a, b) = D(a, b), so the gradient at -a is minus the one at a.)
# Below, the library's backward (losses.angular_distance_backward) is checked against
# centred differences, and both facts are measured on it.
rows = 5
A = rng.standard_normal((rows, 8))
B = rng.standard_normal((rows, 8))
dd = rng.standard_normal(rows)  # an arbitrary upstream gradient, one per distance

_, cache = losses.angular_distance_forward(A, B)
dA, dB = losses.angular_distance_backward(dd, cache)
print(compare("dD/da vs centred differences",
              dA, numerical_gradient_array(lambda: losses.angular_distance_forward(A, B)[0], A, dd)))
print(compare("dD/db vs centred differences",
              dB, numerical_gradient_array(lambda: losses.angular_distance_forward(A, B)[0], B, dd)))
print(f"a . dD/da for each row (should be 0): {np.abs(np.sum(A * dA, axis=1)).max():.1e} at most")
_, cache_10 = losses.angular_distance_forward(10 * A, B)
dA_10, _ = losses.angular_distance_backward(dd, cache_10)
print(f"|dD/da| for a, divided by |dD/da| for 10 a: {np.linalg.norm(dA) / np.linalg.norm(dA_10):.1f}")
print("-> D cannot control the length of h, and long embeddings get weak angular gradients: one "
      "reason a norm penalty (the paper's lambda3 term) sits next to the triplet terms.")

# %% 3. The triplet loss and its gradient
# Lt = mean_i max(0, D(a_i, p_i) - D(a_i, n_i) + m). Only "active" triplets (hinge > 0)
# contribute: a triplet whose negative is already far enough away exerts no force at all.
# The gradient itself is exercise 05 (lessons/exercises/05_triplet_loss.py); below, the
# library's losses.triplet_loss_backward is checked against centred differences.
P = A + 0.4 * rng.standard_normal(A.shape)  # positives: near the anchors
Nn = A + 0.4 * rng.standard_normal(A.shape)  # negatives: the first three about as near ...
Nn[3:] = rng.standard_normal((rows - 3, 8))  # ... the last two unrelated (far)
margin = 0.05
loss, t_cache = losses.triplet_loss_forward(A, P, Nn, margin)
active = t_cache[2]
hinge = (losses.angular_distance_forward(A, P)[0] - losses.angular_distance_forward(A, Nn)[0]
         + margin)
print(f"hinge D(a,p) - D(a,n) + m per triplet: {np.round(hinge, 3)} (all well away from the kink at 0)")
print(f"triplet loss {loss:.4f}, active triplets {int(active.sum())} of {rows} "
      f"(an inactive triplet already has D(a,n) >= D(a,p) + m and contributes nothing)")
grads = losses.triplet_loss_backward(1.0, t_cache)
for name, array, g in zip("apn", (A, P, Nn), grads):
    report = compare(f"dLt/d{name}", g,
                     numerical_gradient(lambda: losses.triplet_loss_forward(A, P, Nn, margin)[0], array))
    print(report)

# %% 4. Why the absolute value? What it does (the paper gives no reason)
# Our embedding h is the output of a ReLU, so every entry is >= 0 and a . b >= 0 for every pair:
# the |.| is then a no-op. MNIST pixels are >= 0 too -- count the negative dot products.
n_images = 300 if FAST else 1000
X_test, y_test = data.load_mnist("test")
X, y = X_test[:n_images], y_test[:n_images]
dots = X @ X.T  # (n, n)
pairs = n_images * (n_images - 1) // 2
print(f"negative dot products among {pairs} pairs of MNIST images: "
      f"{int(np.sum(np.triu(dots, 1) < 0))}")
# With *signed* features the |.| glues a vector and its opposite together. The toy below
# shows what that does to a class.

# %% 5. A toy: gradient descent on the triplet loss itself
# 60 signed 2-D vectors in 3 classes. Each step: a random positive from the same class, the
# hardest negative (the closest vector of another class, objective.hardest_negatives), the
# triplet loss and its gradient. V[pos] and V[neg] are gathers of rows of V (as the
# negatives in objective.objective), so their gradients are scatter-adds
# (layers.gather_rows_backward) back onto the vectors they came from.
n_toy, classes = 60, 3
toy_y = np.repeat(np.arange(classes), n_toy // classes)
V = rng.standard_normal((n_toy, 2))
V_start = V.copy()


def random_positives(y, rng):
    """For each vector, a random vector of the same class (a shuffle inside each class)."""
    pos = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):  # a loop over 3 classes, not over samples
        members = np.flatnonzero(y == c)
        pos[members] = rng.permutation(members)
    return pos


toy_losses = []
TOY_STEPS = 200
for step in range(TOY_STEPS):
    pos = random_positives(toy_y, rng)
    neg = objective.hardest_negatives(V, toy_y)
    V_pos, pos_cache = layers.gather_rows_forward(V, pos)
    V_neg, neg_cache = layers.gather_rows_forward(V, neg)
    loss, t_cache = losses.triplet_loss_forward(V, V_pos, V_neg, margin)
    da, dp, dn = losses.triplet_loss_backward(1.0, t_cache)
    grad = (da + layers.gather_rows_backward(dp, pos_cache)  # scatter-adds onto V's rows
            + layers.gather_rows_backward(dn, neg_cache))
    V -= 5.0 * grad  # a big step: the gradient carries 1/N = 1/60 (at 20 it overshoots)
    toy_losses.append(loss)
print(f"toy triplet loss: {toy_losses[0]:.3f} at the start, {toy_losses[-1]:.3f} after "
      f"{len(toy_losses)} steps")
angles = np.arctan2(V[:, 1], V[:, 0])
for c in range(classes):
    theta = angles[toy_y == c]
    # The class's line: average the *doubled* angles, where theta and theta + 180 deg coincide.
    line = 0.5 * np.arctan2(np.sin(2 * theta).mean(), np.cos(2 * theta).mean())
    off_line = np.degrees(np.abs(np.angle(np.exp(2j * (theta - line))))) / 2  # 0..90 deg
    far_ray = int(np.sum(np.cos(theta - line) < 0))
    print(f"class {c}: line at {np.degrees(line) % 180:.0f} deg; {int(np.sum(off_line <= 10))} of "
          f"{len(theta)} vectors within 10 deg of it ({far_ray} of them on the opposite ray), "
          f"stragglers at {np.round(np.sort(off_line[off_line > 10])).tolist()} deg")
print("-> a straggler sits on the far side of another class's line: the hinge pushes it away "
      "from that line, and the way home crosses it. Triplet losses have local minima.")

from matplotlib.patches import Circle  # noqa: E402

fig, axes = plots.figure(1, 3, figsize=(13, 4.6))  # constrained layout: no label touches a panel
for ax, (title, points) in zip(axes[:2], [("before", V_start), (f"after {TOY_STEPS} steps", V)]):
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    ax.add_patch(Circle((0, 0), 1, fill=False, color="lightgrey"))
    for c in range(classes):
        ax.scatter(unit[toy_y == c, 0], unit[toy_y == c, 1], s=18, label=f"class {c}",
                   color=plots.class_colour(c))  # class c: the colour of digit c in Figure 1
    ax.set_aspect("equal")
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.set_xlabel("first coordinate of v / ||v||")
    ax.set_ylabel("second coordinate of v / ||v||")
    ax.set_title(f"directions {title} (each vector scaled to length 1)", fontsize=10)
axes[0].legend(fontsize=8)
axes[2].plot(toy_losses, marker=".", color="black")
axes[2].set_xlabel("gradient step (all 60 vectors, step size 5)")
axes[2].set_ylabel(f"triplet loss (margin {margin}; D has no unit)")
axes[2].set_title("the loss", fontsize=10)
fig.suptitle(f"Lesson 05: gradient descent on the triplet loss of {n_toy} signed 2-D vectors in "
             f"{classes} classes, hardest negatives, seed 0\neach class gathers on a line through "
             f"0, on both of its rays: |cos| cannot tell them apart", fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "05_toy_triplets.png"))

# %% 6. Angular distances between MNIST images, in pixel space
# Every pair at once: normalise the rows, then D = 1 - |U U^T|.
unit = X / np.linalg.norm(X, axis=1, keepdims=True)
D_all = 1.0 - np.abs(unit @ unit.T)  # (n, n), paper Eq. 1 for every pair
same = (y[:, None] == y[None, :]) & ~np.eye(n_images, dtype=bool)
other = y[:, None] != y[None, :]
print(f"mean angular distance, same class: {D_all[same].mean():.3f}; other classes: "
      f"{D_all[other].mean():.3f}")
pos = random_positives(y, rng)
neg = objective.hardest_negatives(X, y)
loss, t_cache = losses.triplet_loss_forward(X, X[pos], X[neg], margin)
print(f"pixel-space triplets (random positive, hardest negative): loss {loss:.3f}, "
      f"{100 * t_cache[2].mean():.0f}% violate the margin of {margin}")
print("-> in raw pixels, many digits have a closer image of another class than a typical image "
      "of their own: the network's embedding has to fix that.")

fig, ax = plots.figure(figsize=(6.5, 3.8))
bins = np.linspace(0, 1, 51)
ax.hist(D_all[same], bins=bins, density=True, color="tab:cyan", alpha=0.7, label="same class")
ax.hist(D_all[other], bins=bins, density=True, histtype="step", color="black", lw=1.2,
        label="other classes")
ax.set_xlabel("angular distance D between two MNIST images' pixel vectors (no unit, 0 to 1)")
ax.set_ylabel("density (per unit of D)")
ax.legend()
ax.set_title(f"Lesson 05: angular distances between the pixels of {n_images} MNIST test "
             f"images,\npairs of the same class and of other classes", fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "05_pixel_distances.png"))
print(f"figures written to {OUT}")
