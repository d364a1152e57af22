"""Lesson 07 -- embeddings, PCA, and the paper's Figure 1.

The triplet terms of Eq. 2 act on the embedding h (the last hidden layer), not on the
predictions. So the place to look for their effect is the embedding itself. The paper's
Figure 1 shows a 2-D PCA of the embeddings of FGSM test images for a model trained without
(a) and with (b) the invariance term, and says the classes are grouped more tightly in (b).

What you will see (default: three 784-128-128-10 MLPs -- Baseline, + MLS, + MLS + MLI -- on
8,000 training images for 3 epochs, one seed; 1,000 test images; about 6 s on an idle 2-core
machine, about 14 s on a busy one)
-----------------------------------------------------------------------------------------
1. PCA by the SVD, written out: centre, decompose, project; it matches plots.pca_2d exactly,
   and the first two components keep only about 50% of the (Baseline) embedding's variance
   (ten keep about 98%) -- a 2-D picture hides half of the geometry. These are embeddings of
   clean test images; Figure 1 (section 3) shows FGSM images, one PCA per panel, so its axes
   quote each panel's own shares, which differ a little.
2. What the triplet terms were trained to do, measured on test images (07_distances.png).
   The mean angular distance D(h(x), h(x')) to the image's own FGSM image: about 0.019 for
   the Baseline, 0.023 with + MLS, 0.026 with + MLS + MLI. To its own invariance image: about
   0.028, 0.042, 0.046 -- neither term brings the attacked image closer in absolute terms;
   here both move it a little further. But the triplet loss is relative (beat the hardest
   negative by the margin), and there both terms help: FGSM triplets violating the margin
   drop from about 81-82% to 52% (+ MLS) and 45% (+ MLS + MLI); invariance triplets from
   about 91-92% to 68% and 62%.
3. Figure 1 (07_figure1.png): PCA of the embeddings of FGSM test images for the three models,
   each with the within-class / between-class scatter ratio computed in the full 128-d space
   (smaller = tighter classes): about 1.38 (Baseline), 1.37 (+ MLS), 1.41 (+ MLS + MLI). At
   this small scale and one seed the invariance term does NOT tighten the classes; the
   paper's claim needs the full reproduction (python -m tinyadv.reproduce), and even there a
   ratio from one seed is a single draw.

``--fast`` (500 images, 1 epoch, 200 test images) runs the same code in seconds.
Figures: 07_figure1.png, 07_distances.png.

Run:  python lessons/07_embeddings_figure1.py [--fast] [--out DIR]
"""

# %% Setup
import os
import sys
import time

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
from tinyadv import attacks, data, invariance, losses, mlp, objective, plots  # noqa: E402
from tinyadv.train import TrainConfig, model_config, train  # noqa: E402

OUT, FAST = lesson_options("Lesson 07: embeddings and Figure 1",
                           default_out=os.path.join(HERE, "out"))

N_TRAIN, EPOCHS, N_TEST = (500, 1, 200) if FAST else (8000, 3, 1000)
X_train, y_train = data.load_mnist("train")
X_test, y_test = data.load_mnist("test")
X_train, y_train = X_train[:N_TRAIN], y_train[:N_TRAIN]
INV_EPS = 0.4  # the invariance examples' budget (the lab's default, lab/configs.py)
X_test, y_test = X_test[:N_TEST], y_test[:N_TEST]
# lr and batch size are pinned so this lesson's numbers stay put if the library's defaults move.
base = TrainConfig(sizes=(784, 128, 128, 10), lr=2e-3, batch_size=128,
                   epochs=EPOCHS, seed=0)
x_inv_train, y_flip_train = invariance.label_flip(X_train, y_train, X_train, y_train, INV_EPS,
                                                  exclude_self=True)
x_inv_test, _ = invariance.label_flip(X_test, y_test, X_train, y_train, INV_EPS)

# %% Train the three rows of Table 1 whose embeddings we compare
MODEL_NAMES = ["baseline", "baseline+mls", "baseline+mls+mli"]
models = {}
for name in MODEL_NAMES:
    start = time.perf_counter()
    models[name], _ = train(model_config(name, base), X_train, y_train, x_inv_train, y_flip_train,
                            log=None)
    print(f"trained {name:<17} in {time.perf_counter() - start:5.1f}s")

# %% 1. PCA by hand: centre, SVD, project
params = models["baseline"]
h = mlp.embed(params, X_test).astype(np.float64)  # (N, 128) penultimate activations
centred = h - h.mean(axis=0)  # PCA is about variance, so remove the mean first
U, S, Vt = np.linalg.svd(centred, full_matrices=False)  # centred = U diag(S) Vt
coords_by_hand = centred @ Vt[:2].T  # (N, 2): coordinates along the top two directions
explained = S ** 2 / np.sum(S ** 2)  # variance along each direction, as a fraction
coords_lib, explained_lib = plots.pca_2d(h)
# Each principal direction is defined only up to its sign, so compare absolute values.
print(f"PCA by hand vs plots.pca_2d: largest difference {np.abs(np.abs(coords_by_hand) - np.abs(coords_lib)).max():.1e}")
print(f"variance kept by the first two components: {100 * explained[0]:.1f}% + {100 * explained[1]:.1f}% "
      f"= {100 * explained[:2].sum():.1f}%; ten components keep {100 * explained[:10].sum():.1f}%")
print("   (the Baseline's embeddings of CLEAN test images; Figure 1 below shows each model's FGSM "
      "images, each panel with its own PCA, so its axes quote that panel's own shares)")
print(f"dead units (zero on every test image): {int(np.sum(h.max(axis=0) == 0))} of {h.shape[1]}")

# %% 2. What the triplet terms pull together, measured
# For each model: the mean angular distance between the embedding of a clean test image and
# the embedding of (a) its own FGSM image, (b) its own invariance image. MLS trains (a) to be
# small; MLI in the paper's "source" protocol trains (b) to be small. But a triplet loss is
# *relative* -- D(a,p) only has to beat D(a,n) by the margin -- so we also count how many
# test triplets (image, its attacked image, hardest other-class test image) violate it.
distances = {}
for name, params in models.items():
    h_clean = mlp.embed(params, X_test)
    x_adv = attacks.fgsm(params, X_test, y_test, base.fgsm_eps)  # each model's own FGSM images
    h_adv, h_inv = mlp.embed(params, x_adv), mlp.embed(params, x_inv_test)
    d_fgsm, _ = losses.angular_distance_forward(h_clean, h_adv)
    d_inv, _ = losses.angular_distance_forward(h_clean, h_inv)
    neg = objective.hardest_negatives(h_clean, y_test)
    _, cache_sens = losses.triplet_loss_forward(h_clean, h_adv, h_clean[neg], base.margin)
    _, cache_inv = losses.triplet_loss_forward(h_clean, h_inv, h_clean[neg], base.margin)
    violated = (100 * cache_sens[2].mean(), 100 * cache_inv[2].mean())  # cache[2]: active hinges
    distances[name] = (float(d_fgsm.mean()), float(d_inv.mean())) + violated
    print(f"{name:<17}: mean D(h(x), h(FGSM x)) = {d_fgsm.mean():.4f} (margin violated by "
          f"{violated[0]:.1f}%)   mean D(h(x), h(invariance x)) = {d_inv.mean():.4f} "
          f"(violated by {violated[1]:.1f}%)")

# Colour = the model, as in every lesson; hatching = the attack that made the positive
# (plain: FGSM, dotted: invariance).
fig, (ax_d, ax_v) = plots.figure(1, 2, figsize=(12.5, 4.0))
width = 0.38
positions = np.arange(len(models))
colours = [plots.model_colour(name) for name in distances]
for ax, (k_fgsm, k_inv), ylabel in ((ax_d, (0, 1), "mean angular distance D(h(x), h(x attacked))"
                                               " (no unit)"),
                                    (ax_v, (2, 3), "% of test triplets violating the margin")):
    ax.bar(positions - width / 2, [d[k_fgsm] for d in distances.values()], width, color=colours,
           hatch=plots.ATTACK_HATCHES["FGSM"], edgecolor="black", lw=0.5)
    ax.bar(positions + width / 2, [d[k_inv] for d in distances.values()], width, color=colours,
           hatch=plots.ATTACK_HATCHES["invariance"], edgecolor="black", lw=0.5)
    ax.set_xticks(positions)
    ax.set_xticklabels(list(distances))
    ax.set_ylabel(ylabel, fontsize=9)
# The legend explains the hatching (the colours are named on the x-axis).
from matplotlib.patches import Patch  # noqa: E402

plots.legend_beside(ax_v, handles=[
    Patch(facecolor="white", edgecolor="black", hatch=plots.ATTACK_HATCHES["FGSM"],
          label="positive = its FGSM image"),
    Patch(facecolor="white", edgecolor="black", hatch=plots.ATTACK_HATCHES["invariance"],
          label="positive = its invariance image")])
ax_d.set_title("How far an embedding moves under each attack", fontsize=10)
ax_v.set_title(f"Triplets (image, attacked image, hardest negative), margin {base.margin}", fontsize=10)
ax_v.set_ylim(0, 100)
fig.suptitle(f"Lesson 07: what the triplet terms did to the embeddings of {N_TEST} test images "
             f"(three 784-128-128-10 MLPs, {N_TRAIN} training images, {EPOCHS} epoch(s), seed 0;"
             f"\nFGSM at eps {base.fgsm_eps}, invariance images at eps {INV_EPS}, pixels in "
             f"[0, 1])", fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "07_distances.png"))

# %% 3. Figure 1: PCA of the embeddings of FGSM test images
panels = []
for name, title in zip(MODEL_NAMES, ["Baseline: FGSM adversarial training",
                                     "paper's (a): + MLS, no invariance term",
                                     "paper's (b): + MLS + MLI, with it"]):
    params = models[name]
    x_adv = attacks.fgsm(params, X_test, y_test, base.fgsm_eps)
    panels.append((title, mlp.embed(params, x_adv), y_test))
ratios = plots.embedding_figure(panels, os.path.join(OUT, "07_figure1.png"),
                                suptitle=f"Lesson 07, the paper's Figure 1 in small: PCA of the "
                                         f"embeddings h of each model's own FGSM test images (eps "
                                         f"{base.fgsm_eps}), {N_TEST} images, {N_TRAIN} training "
                                         f"images, seed 0")
for name, ratio in zip(MODEL_NAMES, ratios):
    print(f"{name:<17}: within/between-class scatter ratio {ratio:.3f} (smaller = tighter classes)")
print("-> compare the ratios, not the pictures: two PCA components keep only part of the variance, "
      "and one seed on a small subset is a single draw.")
print(f"figures written to {OUT}")
