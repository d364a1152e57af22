"""Lesson 03 -- sensitivity attacks: FGSM, adversarial training, label leaking, and why PGD.

A *sensitivity* example (paper Definition 1) is an image changed by at most eps per pixel
whose label, to a person, is unchanged -- yet the model changes its mind. FGSM (Goodfellow et
al. 2015) makes one with a single gradient step:

    x' = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)

and FGSM *adversarial training* (the paper's Baseline) trains on clean and FGSM images alike.

What you will see (default mode: three 784-128-128-10 MLPs, 8,000 training images, 3 epochs,
1,000 test images; about 4 s on an idle 2-core machine, about 8 s on a busy one)
-----------------
1. FGSM written out with mlp.forward/backward gives exactly the images of attacks.fgsm.
2. A normally trained model (about 89% clean accuracy) falls to about 61% at eps = 0.05,
   about 15% at eps = 0.1, and about 0% at eps = 0.2. PGD (10 steps) is a little stronger
   still (about 59% and 11%). Figure 03_fgsm_examples.png: the digits are still plainly
   readable.
3. FGSM adversarial training at eps = 0.1: about 62% on FGSM images at eps = 0.1 (instead of
   15%), for about 1 point of clean accuracy. PGD at the same eps: about 59%, close to FGSM --
   as it should be for a model that resists the perturbation and not just FGSM's one step
   (lesson 08 trains one that does not, and shows why the library's default init matters).
4. Label leaking (Kurakin et al. 2017) -- an adversarially trained model scoring *higher* on
   FGSM images than on clean ones, because the perturbation made from the true label carries
   the label -- is *not* visible at this small scale: about 62% on FGSM images vs about 88%
   clean. Crafting FGSM from the model's own predictions gives about 67-68%, i.e. *more*: the
   two attacks differ only on the ~11% of images the model already gets wrong, and there
   attacking the wrong prediction pushes the image away from the mistake.
5. Why PGD: a model FGSM-trained at eps = 0.3 scores about 35% on FGSM images at eps = 0.1,
   but about 38% at eps = 0.2 and 36% at eps = 0.3: accuracy that does not fall as the budget
   triples means the FGSM direction has stopped pointing uphill (the model masked its
   gradient). PGD takes it to about 18% at eps = 0.1 and about 0% beyond. A one-step attack
   only gives an upper bound on robustness. This is *catastrophic overfitting* of FGSM
   training (Wong, Rice & Kolter 2020); lesson 08 watches it happen during training at
   eps = 0.1 (with He initialisation; the default uniform one avoids it there) and explains
   why one step can be fooled.

``--fast`` (400 images, 1 epoch, 100 test images, 3 values of eps) runs the same code in a few
seconds; its models are barely trained and its numbers mean nothing.
Figures: 03_fgsm_examples.png, 03_accuracy_vs_eps.png.

Run:  python lessons/03_fgsm_and_adversarial_training.py [--fast] [--out DIR]
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
from tinyadv import attacks, data, evaluate, losses, mlp, plots  # noqa: E402
from tinyadv.train import TrainConfig, train  # noqa: E402

OUT, FAST = lesson_options("Lesson 03: FGSM and adversarial training",
                           default_out=os.path.join(HERE, "out"))

N_TRAIN, EPOCHS, N_TEST = (400, 1, 100) if FAST else (8000, 3, 1000)
EPS_LIST = [0.0, 0.1, 0.3] if FAST else [0.0, 0.05, 0.1, 0.2, 0.3]
N_SHOW = 4 if FAST else 8
X_train, y_train = data.load_mnist("train")
X_test, y_test = data.load_mnist("test")
X_train, y_train = X_train[:N_TRAIN], y_train[:N_TRAIN]
X_test, y_test = X_test[:N_TEST], y_test[:N_TEST]
# A smaller network than the default (784-256-256-10) so that three models train in time.
# lr and batch size are pinned so this lesson's numbers stay put if the library's defaults move.
base = TrainConfig(sizes=(784, 128, 128, 10), lr=2e-3, batch_size=128,
                   epochs=EPOCHS, seed=0)
print(f"{N_TRAIN} training images, {EPOCHS} epoch(s), {N_TEST} test images; "
      f"network {base.sizes}, {base.optimizer} lr {base.lr}")


def curves_for(params):
    """FGSM and PGD accuracy (%) at every eps in EPS_LIST."""
    fgsm_curve = evaluate.accuracy_vs_eps(params, X_test, y_test, EPS_LIST, attack="fgsm")
    pgd_curve = evaluate.accuracy_vs_eps(params, X_test, y_test, EPS_LIST, attack="pgd",
                                         rng=np.random.default_rng(0))
    return [r["percent"] for r in fgsm_curve], [r["percent"] for r in pgd_curve]


def show(name, fgsm_acc, pgd_acc):
    print(f"{name}:")
    print("   eps   " + "".join(f"{e:>7.2f}" for e in EPS_LIST))
    print("   FGSM  " + "".join(f"{a:>6.1f}%" for a in fgsm_acc))
    print("   PGD   " + "".join(f"{a:>6.1f}%" for a in pgd_acc))


# %% 1. A normally trained model
start = time.perf_counter()
params_std, _ = train(base.replace(adversarial=False), X_train, y_train, log=None)
print(f"standard training took {time.perf_counter() - start:.1f}s; clean test accuracy "
      f"{evaluate.accuracy(params_std, X_test, y_test)['percent']:.1f}%")

# %% 2. FGSM by hand, and the library's attacks.fgsm
# The input gradient comes from the same backward as training (lesson 01), with the weights'
# gradients switched off. dloss = N undoes the batch mean so each image's gradient is its own.
eps = 0.1
x, y = X_test[:N_SHOW], y_test[:N_SHOW]  # N_SHOW digits (fewer in --fast: figures are slow)
logits, _, cache = mlp.forward(params_std, x)
_, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
dlogits = losses.softmax_cross_entropy_backward(float(len(x)), ce_cache)
_, dx = mlp.backward(dlogits, None, cache, need_param_grads=False)  # (N_SHOW, 784)
x_adv_by_hand = np.clip(x + np.float32(eps) * np.sign(dx), 0.0, 1.0)
x_adv_library = attacks.fgsm(params_std, x, y, eps)
print(f"largest difference, FGSM by hand vs attacks.fgsm: {np.abs(x_adv_by_hand - x_adv_library).max()}")
print(f"largest pixel change: {np.abs(x_adv_library - x).max():.3f} (= eps, never more)")

rows, titles, wrong_cells = [], [], []
for e in (0.0, 0.1, 0.2, 0.3):
    x_e = attacks.fgsm(params_std, x, y, e)
    rows.append(x_e)
    said = mlp.predict(params_std, x_e)
    titles.append([f"says {p}" for p in said])
    wrong_cells.append(said != y)
plots.image_grid(rows, os.path.join(OUT, "03_fgsm_examples.png"),
                 title=f"Lesson 03: FGSM images of {N_SHOW} test digits and what the normally "
                       f"trained MLP says of them, eps 0 to 0.3 (l-inf, pixel values 0 to 1)",
                 row_titles=["clean", "eps 0.1", "eps 0.2", "eps 0.3"], col_titles=titles,
                 highlight=wrong_cells,
                 note="red: the normally trained model's answer is not the digit's true label")
print(f"true labels of the pictured digits: {y.tolist()}")

# %% 3. How fast does the normal model break?
std_fgsm, std_pgd = curves_for(params_std)
show("standard training", std_fgsm, std_pgd)

# %% 4. FGSM adversarial training (the paper's Baseline) at eps = 0.1
# Each step: make FGSM images of the batch with the current weights, then descend on
# 0.5 * CE(clean) + 0.5 * CE(FGSM) (see tinyadv/objective.py).
start = time.perf_counter()
params_adv, _ = train(base.replace(adversarial=True, fgsm_eps=0.1), X_train, y_train, log=None)
print(f"FGSM adversarial training (eps 0.1) took {time.perf_counter() - start:.1f}s")
adv_fgsm, adv_pgd = curves_for(params_adv)
show("FGSM adversarial training, eps 0.1", adv_fgsm, adv_pgd)

# %% 5. Label leaking? Craft FGSM from the model's predictions instead of the true labels
# If the training perturbation "leaks" the true label, a model can learn to read it back, and
# FGSM images made from the true label become *easier* than clean ones. Crafting from the
# model's own prediction removes the shortcut. Where the prediction is right the two images
# are identical; they differ only on images the model already gets wrong.
clean = evaluate.accuracy(params_adv, X_test, y_test)["percent"]
from_true = evaluate.accuracy(params_adv, attacks.fgsm(params_adv, X_test, y_test, 0.1), y_test)["percent"]
from_pred = evaluate.accuracy(params_adv, attacks.fgsm(params_adv, X_test, None, 0.1,
                                                       craft_from="predicted"), y_test)["percent"]
print(f"adversarially trained model at eps 0.1: clean {clean:.1f}%, FGSM from true labels "
      f"{from_true:.1f}%, FGSM from predicted labels {from_pred:.1f}%")
if from_true > clean:
    print("-> FGSM images score above clean ones: the label leaks into the perturbation.")
else:
    print("-> no label leaking here: FGSM images are still much harder than clean ones "
          "(Kurakin et al. saw it with larger models, longer training and larger eps).")
wrong = 100.0 - clean
print(f"   the two FGSM variants differ only on the {wrong:.1f}% of images misclassified to begin "
      f"with; attacking a *wrong* prediction pushes the image away from it.")

# %% 6. Why PGD: FGSM training at a large eps, and the attack that sees through it
start = time.perf_counter()
params_big, _ = train(base.replace(adversarial=True, fgsm_eps=0.3), X_train, y_train, log=None)
print(f"FGSM adversarial training (eps 0.3) took {time.perf_counter() - start:.1f}s")
big_fgsm, big_pgd = curves_for(params_big)
show("FGSM adversarial training, eps 0.3", big_fgsm, big_pgd)
rises = [f"{EPS_LIST[i]} -> {EPS_LIST[i + 1]}" for i in range(1, len(EPS_LIST) - 1)
         if big_fgsm[i + 1] > big_fgsm[i]]
print(f"FGSM accuracy rises with eps between: {rises or 'nowhere'}")
print("-> a stronger attack should never do worse. When FGSM does, its one linear step has stopped "
      "finding the loss's uphill direction (gradient masking); PGD's small projected steps still do. "
      "Lesson 08: catastrophic overfitting, watched during training.")

# Colour = the model, line style = the attack (plots.py): each model's FGSM and PGD lines pair up.
curves = {
    ("standard", "FGSM", "standard, FGSM"): (EPS_LIST, std_fgsm),
    ("standard", "PGD", "standard, PGD"): (EPS_LIST, std_pgd),
    ("baseline", "FGSM", "FGSM-trained 0.1, FGSM"): (EPS_LIST, adv_fgsm),
    ("baseline", "PGD", "FGSM-trained 0.1, PGD"): (EPS_LIST, adv_pgd),
    ("fgsm eps 0.3", "FGSM", "FGSM-trained 0.3, FGSM"): (EPS_LIST, big_fgsm),
    ("fgsm eps 0.3", "PGD", "FGSM-trained 0.3, PGD"): (EPS_LIST, big_pgd),
}
plots.accuracy_curves(curves, os.path.join(OUT, "03_accuracy_vs_eps.png"),
                      title=f"Lesson 03: test accuracy under FGSM and PGD-10 as eps grows, three "
                            f"784-128-128-10 MLPs ({N_TRAIN} training images, {EPOCHS} epoch(s), "
                            f"seed 0; {N_TEST} test images)")
print(f"figures written to {OUT}")
