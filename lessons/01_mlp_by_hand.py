"""Lesson 01 -- a multi-layer perceptron, forward and backward, by hand.

Everything later in the course (FGSM, the triplet loss, paper Eq. 2) is built on one idea:
the gradient of a loss is computed by running the forward pass backwards, layer by layer,
each layer turning "gradient of the loss w.r.t. my output" into "gradient w.r.t. my input and
my weights". This lesson does that once, in the open, for a 784-128-128-10 MLP on MNIST.

What you will see
-----------------
1. One batch of 8 digits pushed through the network layer by layer, with every shape printed.
2. The loss of the untrained network: about 2.3 -- that is log(10), the loss of a network
   that spreads its belief evenly over 10 classes (He initialisation makes it roughly that).
3. The backward pass written out line by line; it gives *exactly* the same numbers as
   ``tinyadv.mlp.backward`` (max difference 0).
4. One weight's gradient compared with a finite difference: the two agree to about 9
   digits, relative error about 5e-10 (lesson 02 does this properly).
5. Plain SGD written in a few lines. Default mode (12,000 images, 3 epochs): test accuracy
   about 90% after the first epoch and about 93.5% after the third. The whole lesson takes
   about 2 s on an idle 2-core machine (about 4 s when other work keeps both cores busy).
   ``--fast`` (2,000 images, 1 epoch) reaches only about 66%.
6. The gradient with respect to the *input image* -- the thing FGSM (lesson 03) uses.

Figures (in lessons/out/, or the folder given by --out):
  01_training_curve.png   loss per step and test accuracy per epoch
  01_input_gradient.png   digits, the gradient of the loss w.r.t. their pixels, its sign
  01_predictions.png      test digits with the trained network's predictions

Run:  python lessons/01_mlp_by_hand.py [--fast] [--out DIR]   (or open it as a notebook)
"""

# %% Setup: paths, flags, data
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
from tinyadv import data, layers, losses, mlp, plots  # noqa: E402

OUT, FAST = lesson_options("Lesson 01: an MLP forward and backward by hand",
                           default_out=os.path.join(HERE, "out"))

N_TRAIN, N_TEST, EPOCHS = (2000, 1000, 1) if FAST else (12000, 10000, 3)
N_SHOW = 3 if FAST else 6  # digits per figure row (matplotlib grids are slow to draw)
X_train, y_train = data.load_mnist("train")
X_test, y_test = data.load_mnist("test")
X_train, y_train = X_train[:N_TRAIN], y_train[:N_TRAIN]
X_test, y_test = X_test[:N_TEST], y_test[:N_TEST]
print(f"training images {X_train.shape} {X_train.dtype}, labels {y_train.shape} {y_train.dtype}")
print(f"pixels lie in [{X_train.min()}, {X_train.max()}]; {N_TEST} test images")

# %% The network's parameters
# Three linear layers: W1 (784, 128), W2 (128, 128), W3 (128, 10). He initialisation draws
# W ~ N(0, 2 / fan_in) so that the activations keep roughly the same scale through ReLUs.
# (tinyadv.train's TrainConfig uses init="uniform", PyTorch's default, instead: with He
# initialisation FGSM adversarial training learns to fool FGSM -- lesson 08.)
rng = np.random.default_rng(0)
params = mlp.init_params([784, 128, 128, 10], rng, init="he")
for name, value in params.items():
    print(f"{name}: shape {value.shape}, std {value.std():.4f}")

# %% Forward pass, one layer at a time
x, y = X_train[:8], y_train[:8]  # (8, 784), (8,)
z1, cache1 = layers.linear_forward(x, params["W1"], params["b1"])  # (8, 128) = x @ W1 + b1
a1, relu1 = layers.relu_forward(z1)                                 # (8, 128) = max(0, z1)
z2, cache2 = layers.linear_forward(a1, params["W2"], params["b2"])  # (8, 128)
h, relu2 = layers.relu_forward(z2)                                  # (8, 128): the "embedding"
logits, cache3 = layers.linear_forward(h, params["W3"], params["b3"])  # (8, 10): one score per class
loss, loss_cache = losses.softmax_cross_entropy_forward(logits, y)

for name, value in [("x", x), ("z1", z1), ("a1", a1), ("z2", z2), ("h", h), ("logits", logits)]:
    print(f"{name:>6}: {value.shape}")
print(f"fraction of hidden units switched off by the first ReLU: {np.mean(a1 == 0):.2f}")
print(f"cross-entropy of the untrained network: {loss:.3f}   (log 10 = {np.log(10):.3f}: "
      f"an untrained net is about equally unsure of all 10 classes)")

# %% Backward pass, one layer at a time, in reverse order
# Each backward undoes one forward line. Reading top to bottom here is reading the forward
# pass bottom to top. What happens inside each backward is yours to write: exercise 01
# (linear_backward, relu_backward) and exercise 02 (the cross-entropy's backward), in
# lessons/exercises/, come right after this lesson. Each gradient has the shape of the thing
# it is the gradient of, which is all this cell needs.
dlogits = losses.softmax_cross_entropy_backward(1.0, loss_cache)  # (8, 10), like logits
dh, dW3, db3 = layers.linear_backward(dlogits, cache3)   # (8, 128), (128, 10), (10,)
dz2 = layers.relu_backward(dh, relu2)                     # (8, 128)
da1, dW2, db2 = layers.linear_backward(dz2, cache2)
dz1 = layers.relu_backward(da1, relu1)
dx, dW1, db1 = layers.linear_backward(dz1, cache1)        # dx: gradient w.r.t. the pixels
print("gradient shapes: dW1", dW1.shape, "dW2", dW2.shape, "dW3", dW3.shape, "dx", dx.shape)

# The library's mlp.forward/mlp.backward do exactly these steps in a loop over layers.
logits_lib, _, cache_lib = mlp.forward(params, x)
grads_lib, dx_lib = mlp.backward(losses.softmax_cross_entropy_backward(
    1.0, losses.softmax_cross_entropy_forward(logits_lib, y)[1]), None, cache_lib)
by_hand = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
worst = max(float(np.max(np.abs(by_hand[k] - grads_lib[k]))) for k in by_hand)
print(f"largest difference between our backward and mlp.backward: {worst}  (same arithmetic)")
print(f"largest difference in dx: {float(np.max(np.abs(dx - dx_lib)))}")

# %% Is the gradient right? Nudge one weight and watch the loss
# The derivative's definition: dL/dw ~ (L(w + eps) - L(w - eps)) / (2 eps). We do this in
# float64 (float32 keeps only ~7 digits, and L(w+eps) - L(w-eps) cancels most of them).
params64 = {k: v.astype(np.float64) for k, v in params.items()}
x64 = x.astype(np.float64)
grads64, _ = mlp.backward(losses.softmax_cross_entropy_backward(
    1.0, losses.softmax_cross_entropy_forward(mlp.forward(params64, x64)[0], y)[1]),
    None, mlp.forward(params64, x64)[2])
i, j = np.unravel_index(np.argmax(np.abs(grads64["W2"])), grads64["W2"].shape)  # a weight that matters
step = 1e-6
original = params64["W2"][i, j]
params64["W2"][i, j] = original + step
loss_plus = losses.softmax_cross_entropy_forward(mlp.forward(params64, x64)[0], y)[0]
params64["W2"][i, j] = original - step
loss_minus = losses.softmax_cross_entropy_forward(mlp.forward(params64, x64)[0], y)[0]
params64["W2"][i, j] = original
numeric = (loss_plus - loss_minus) / (2 * step)
analytic = grads64["W2"][i, j]
print(f"dL/dW2[{i},{j}]: backward {analytic:.10f}, finite difference {numeric:.10f}, "
      f"relative error {abs(analytic - numeric) / (abs(analytic) + abs(numeric)):.1e}")

# %% Training: plain stochastic gradient descent in a few lines
# For each mini-batch: forward, loss, backward, and w <- w - lr * dL/dw for every parameter.
LR, BATCH = 0.1, 64
step_losses, epoch_accuracy = [], []
start = time.perf_counter()
for epoch in range(1, EPOCHS + 1):
    for idx in data.iterate_minibatches(len(X_train), BATCH, rng):
        logits, _, cache = mlp.forward(params, X_train[idx])
        loss, loss_cache = losses.softmax_cross_entropy_forward(logits, y_train[idx])
        grads, _ = mlp.backward(losses.softmax_cross_entropy_backward(1.0, loss_cache), None,
                                cache, need_dx=False)  # training never needs dL/dx
        for k in params:
            params[k] -= LR * grads[k]
        step_losses.append(loss)
    accuracy = 100.0 * np.mean(mlp.predict(params, X_test) == y_test)
    epoch_accuracy.append(accuracy)
    print(f"epoch {epoch}: mean training loss of the epoch's last 50 steps "
          f"{np.mean(step_losses[-50:]):.3f}, test accuracy {accuracy:.2f}%  "
          f"({time.perf_counter() - start:.1f}s)")

# %% The gradient with respect to the input
# Backward gives dL/dx for free: for each pixel, how the loss changes if that pixel brightens.
# For the untrained network it was noise; after training it is shaped by the strokes the
# network looks at. Its sign, times a small eps, is what FGSM (lesson 03) adds to an image.
logits, _, cache = mlp.forward(params, x)
_, dx = mlp.backward(losses.softmax_cross_entropy_backward(
    1.0, losses.softmax_cross_entropy_forward(logits, y)[1]), None, cache, need_param_grads=False)
dx = dx[:N_SHOW]
scaled = dx / (2 * np.abs(dx).max(axis=1, keepdims=True)) + 0.5  # grey = 0
plots.image_grid([x[:N_SHOW], scaled, (np.sign(dx) + 1) / 2],
                 os.path.join(OUT, "01_input_gradient.png"),
                 title=f"Lesson 01: the gradient of the cross-entropy w.r.t. the pixels of "
                       f"{N_SHOW} training digits, after training (784-128-128-10 MLP)",
                 row_titles=["digit", "dL/dx", "sign(dL/dx)"],
                 col_titles=[[f"label {c}" for c in y[:N_SHOW]], [""] * N_SHOW, [""] * N_SHOW],
                 note="dL/dx: grey = 0; white = brightening this pixel raises the loss, black = "
                      "brightening it lowers the loss (each digit scaled by its own largest "
                      "|dL/dx|).\nsign(dL/dx): white = +1, black = -1 (grey = 0): what FGSM "
                      "(lesson 03) adds to the image, times eps.")

# %% Figures: the training curve and some predictions
# plots.figure is plt.subplots with matplotlib's constrained layout (labels never overlap).
# Run as a script, the figures only go to files; in a notebook they also appear below the cell.
fig, (ax_loss, ax_acc) = plots.figure(1, 2, figsize=(10, 3.8))
standard = plots.model_colour("standard")  # the colour of a normally trained net, every lesson
ax_loss.plot(step_losses, lw=0.6, color=standard)
ax_loss.set_xlabel(f"SGD step (mini-batch of {BATCH} images)")
ax_loss.set_ylabel("cross-entropy of the mini-batch (nats)")
ax_loss.set_title("training loss, every step", fontsize=10)
ax_loss.axhline(np.log(10), color=plots.REFERENCE_COLOUR, ls="--", lw=0.8,
                label="log 10 (a uniform guess)")
ax_loss.legend()
ax_acc.plot(range(1, EPOCHS + 1), epoch_accuracy, color=standard, **plots.attack_style("clean"))
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel(f"clean test accuracy (%, {N_TEST} images)")
ax_acc.set_xticks(range(1, EPOCHS + 1))
ax_acc.set_title("test accuracy after each epoch", fontsize=10)
fig.suptitle(f"Lesson 01: a 784-128-128-10 MLP trained by hand-written SGD (lr {LR}, "
             f"{N_TRAIN} training images, seed 0)")
plots.save_figure(fig, os.path.join(OUT, "01_training_curve.png"))

predicted = mlp.predict(params, X_test)
wrong = np.flatnonzero(predicted != y_test)[:N_SHOW]
right = np.flatnonzero(predicted == y_test)[:N_SHOW]
plots.image_grid([X_test[right], X_test[wrong]], os.path.join(OUT, "01_predictions.png"),
                 title=f"Lesson 01: the trained MLP's answers on test digits (first {N_SHOW} "
                       f"it gets right, first {N_SHOW} it gets wrong)",
                 row_titles=["right", "wrong"],
                 col_titles=[[f"said {predicted[i]}" for i in right],
                             [f"said {predicted[i]} (is {y_test[i]})" for i in wrong]],
                 highlight=[[False] * len(right), [True] * len(wrong)])  # red: a wrong answer
print(f"{len(np.flatnonzero(predicted != y_test))} of {N_TEST} test digits misclassified; "
      f"figures written to {OUT}")
