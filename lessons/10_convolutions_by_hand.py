"""Lesson 10 -- convolutions by hand: the paper's authors' CNN, one piece at a time.

The paper's network (its authors' ``EmbeddingNet``, tinyadv/cnn.py) is a convolutional
network: two 5 x 5 convolutions, each followed by a PReLU and a 2 x 2 max pooling, then three
linear layers, a 4-unit embedding and the 10 logits. This lesson builds its three new pieces
the way the rest of tinyadv is built -- the formula, the loop that computes it, a faster way to
compute the same numbers, a numerical check of every gradient -- and then trains the network.

What you will see
-----------------
1. The convolution read against its formula: one output entry added up by hand (-2.5, from
   four products and the bias), then six nested loops -- the formula, letter by letter --
   and tinyadv's ``cnn_layers.conv2d_forward`` (one loop over output positions) agree to about
   3e-15 in float64. Figure 10_feature_maps.png: a test digit through two hand-made 3 x 3
   edge filters, then the PReLU and the 2 x 2 max pooling -- the first block of the CNN.
2. im2col: the patch matrix of a 4 x 4 image and a 2 x 2 kernel printed (9 patches, one per
   row), and one matrix product giving the same output. On the CNN's second layer (a batch
   of 32 images of 32 channels, 12 x 12) the patch matrix is 11.1 times the input, 6.6 MB.
   Times, which depend on the machine (ms): the six loops 20-30 for one image and one
   filter, so most of a minute for the batch (estimated, not run); cnn_layers' loop over
   positions 6-11; im2col and one product 4-6; tinyadv's fast path 3-5. The outputs agree to
   float32's rounding (below 1e-6 of the largest output).
3. The three backwards (convolution, max pooling, PReLU) checked against centred differences
   in float64, with every input away from a kink: relative errors of about 1e-11 to 1e-9,
   every one a PASS -- without showing what is inside them.
   -> Exercises 08 and 09 come here: write those three backwards yourself. The lesson stops
   at this marker (a script ends there, a notebook's Run All stops at its cell) until you ask
   for the rest: ``--after-exercises``, or in a notebook the cells below the marker.
4. (After exercise 08.) The convolution's backward is itself a convolution: tinyadv's
   ``conv2d_forward`` on the right inputs gives dx and dW equal to the backward's to below
   1e-14; figure 10_backward_as_convolution.png shows why, and dx without the step exercise
   08 is about fails the check (relative error 1.0; 0.59 on --fast's inputs).
5. (After exercise 09.) Max pooling's gradient: where it goes, and what happens at a tie (a
   window of three equal maxima: tinyadv's choice, which is PyTorch's, against what centred
   differences see there); in a freshly initialised CNN, 42% of the first pooling's windows
   on 100 test digits are ties; two wrong routings fail the check (relative errors 0.5 and
   0.6).
6. (After exercise 09.) The PReLU's slope: one number used by 18,432 entries per image after
   the first convolution, 2.4 million in a batch of 128 -- what its gradient does with them,
   and a wrong version that fails the check (relative error 0.98).
7. The authors' CNN trained briefly beside the library's default MLP, both the same way --
   FGSM adversarial training at eps 0.1 (half clean, half FGSM cross-entropy), 12,000
   training images, 2 epochs, seed 0. On 1,000 test images at eps 0.1, clean / FGSM /
   PGD-10 accuracy: CNN 96.1 / 84.4 / 81.8%, MLP 90.7 / about 68-69 / about 63% (the
   MLP's last digits move with the CPU's BLAS kernels: 68.2 / 63.1 with AVX-512 ones, 68.8 /
   63.4 with AVX2 ones); a training step of the CNN costs about 20-30 times the MLP's (about
   0.11-0.16 s of one core against 0.005-0.006 s). Figure 10_cnn_vs_mlp.png: the CNN's 32
   learned first-layer filters, and FGSM accuracy as eps grows for both (at eps 0.3: 12.8%
   and about 4%). Far from the paper's numbers (8 epochs on
   all 60,000 images): ``python -m tinyadv.reproduce --preset paper-4d --set arch=cnn``
   trains the CNN the authors' way, for real.

Up to the marker: a few seconds. With ``--after-exercises``: about 35-40 s in the default
mode on an idle 2-core machine (training the CNN about 25 s of it), 70-80 s when other work
keeps both cores busy; ``--fast`` (512 training images, 1 epoch, 100 test images, a batch of
4 for the timings) in a few seconds, its section-7 numbers meaningless. NumPy's BLAS runs on
one thread unless you set OPENBLAS_NUM_THREADS (see Setup).
Figures: 10_feature_maps.png, 10_backward_as_convolution.png, 10_cnn_vs_mlp.png.

Run:  python lessons/10_convolutions_by_hand.py [--after-exercises] [--fast] [--out DIR]
      (or open it as a notebook)
"""

# %% Setup
import os
import sys
import time

# One BLAS thread, unless you ask for more: the CNN's products are small (a few hundred rows)
# and many; whenever the other core is busy, a second OpenBLAS thread spends its time waiting
# for it, and training takes several times longer. Set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
if os.path.isdir(os.path.join(HERE, "lessons")):  # a notebook started at the repository root
    HERE = os.path.join(HERE, "lessons")
sys.path.insert(0, os.path.dirname(HERE))  # the repository root: `import tinyadv` without installing
from tinyadv.lesson import lesson_options, stop_for_exercises  # noqa: E402
from tinyadv import attacks, cnn_layers, data, evaluate, network, plots  # noqa: E402
from tinyadv.fast import conv as fast_conv  # noqa: E402
from tinyadv.gradcheck import compare, numerical_gradient_array  # noqa: E402
from tinyadv.fast.network import FAST as LAB_NETWORK  # noqa: E402
from tinyadv.fast.step import fast_train_step  # noqa: E402
from tinyadv.train import TrainConfig, train  # noqa: E402

OUT, FAST = lesson_options("Lesson 10: convolutions by hand",
                           default_out=os.path.join(HERE, "out"), exercises="08 and 09")
rng = np.random.default_rng(0)
np.set_printoptions(precision=3, suppress=True, linewidth=100)


# %% 1. The convolution, read against its formula
# A convolution layer slides each of its F filters over the image. Output entry (n, f, i, j)
# is filter f's dot product with the k x k patch of image n whose top-left corner is (i, j),
# over all C input channels, plus the filter's bias:
#
#     out[n, f, i, j] = b[f] + sum_{c, u, v} x[n, c, i + u, j + v] * W[f, c, u, v]
#
# (Deep-learning libraries call this a convolution; mathematicians would call it a
# cross-correlation: the kernel is not turned around.)
# No padding and stride 1, as in the authors' network: an H x W image gives
# (H - k + 1) x (W - k + 1) outputs, 28 -> 24 for their 5 x 5 kernels.
x = rng.integers(0, 4, size=(1, 1, 4, 4)).astype(np.float64)  # small integers: add them up yourself
W = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # one 2 x 2 filter: top-left minus bottom-right
b = np.array([0.5])
out, _ = cnn_layers.conv2d_forward(x, W, b)
i, j = 1, 2
patch = x[0, 0, i:i + 2, j:j + 2]
by_hand = b[0] + np.sum(patch * W[0, 0])
print(f"x (1 image, 1 channel, 4 x 4):\n{x[0, 0]}\nW (1 filter, 2 x 2):\n{W[0, 0]}, b = {b[0]}")
print(f"out[0, 0, {i}, {j}] by hand: {b[0]} + {patch[0, 0]:.0f}*1 + {patch[0, 1]:.0f}*0 + "
      f"{patch[1, 0]:.0f}*0 + {patch[1, 1]:.0f}*(-1) = {by_hand}; cnn_layers.conv2d_forward: "
      f"{out[0, 0, i, j]}")
print(f"the whole output (3 x 3: 4 - 2 + 1 = 3 positions each way):\n{out[0, 0]}")


def conv2d_six_loops(x, W, b):
    """The formula as loops, one letter each: for every output entry, the triple sum."""
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    out = np.zeros((N, F, H - k + 1, Wd - k + 1))
    for n in range(N):
        for f in range(F):
            for i in range(H - k + 1):
                for j in range(Wd - k + 1):
                    total = b[f]
                    for c in range(C):  # the three sums of the formula, written out
                        for u in range(k):
                            for v in range(k):
                                total += x[n, c, i + u, j + v] * W[f, c, u, v]
                    out[n, f, i, j] = total
    return out


# tinyadv's conv2d_forward keeps only the loop over positions (i, j): at each one, the patches
# of the whole batch meet all F filters in one matrix product. The same numbers:
x = rng.standard_normal((2, 3, 7, 6))
W = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
difference = np.max(np.abs(conv2d_six_loops(x, W, b) - cnn_layers.conv2d_forward(x, W, b)[0]))
print(f"six loops vs cnn_layers.conv2d_forward on x {x.shape}, W {W.shape}: largest difference "
      f"{difference:.1e} (float64: the same sums, added in another order)")

# The first block of the authors' network on a real digit: convolution, PReLU (slope 0.25 on
# the negative side, PyTorch's starting value), 2 x 2 max pooling. Two hand-made filters
# instead of learned ones, so we know what they look for: a change from left to right, and
# from top to bottom (a Sobel filter, a classic edge detector).
X_test, y_test = data.load_mnist("test")
digit = X_test[0].reshape(1, 1, 28, 28).astype(np.float64)
sobel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 4
edge_filters = np.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3): left-right, top-bottom
maps, _ = cnn_layers.conv2d_forward(digit, edge_filters, np.zeros(2))  # (1, 2, 26, 26)
activated, _ = cnn_layers.prelu_forward(maps, np.array([0.25]))
pooled, _ = cnn_layers.maxpool2d_forward(activated)  # (1, 2, 13, 13)
print(f"a test digit (label {y_test[0]}), 28 x 28 -> conv 3 x 3 {maps.shape[2:]} -> PReLU -> "
      f"max pool {pooled.shape[2:]}")

fig, axes = plots.figure(2, 5, figsize=(12.5, 5.8))
for row, name in enumerate(("left-right edges", "top-bottom edges")):
    # One colour scale per row for the three maps (white 0, red positive, blue negative): the
    # PReLU and the pooling only shrink and pick the convolution's values.
    largest = float(np.max(np.abs(maps[0, row])))
    panels = [(digit[0, 0], f"the input: a test {y_test[0]}\n(black 0, white 1)", "gray", 1.0),
              (edge_filters[row, 0], f"filter: {name}", "RdBu_r", 1.0),  # light: dark digits
              (maps[0, row], "after the convolution", "RdBu_r", largest),
              (activated[0, row], "after the PReLU (a = 0.25)", "RdBu_r", largest),
              (pooled[0, row], "after 2 x 2 max pooling", "RdBu_r", largest)]
    for ax, (image, title, cmap, limit) in zip(axes[row], panels):
        shown = ax.imshow(image, cmap=cmap, vmin=0 if cmap == "gray" else -limit, vmax=limit)
        ax.set_title(f"{title}, {image.shape[0]} x {image.shape[1]}", fontsize=9)
        ax.set_xlabel("column (pixel)", fontsize=8)
        ax.set_ylabel("row (pixel)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    for (r, c), value in np.ndenumerate(edge_filters[row, 0]):  # the filter's weights, written
        axes[row, 1].text(c, r, f"{value:g}", ha="center", va="center", fontsize=9,
                          color="black")
    fig.colorbar(shown, ax=axes[row, 2:].tolist(), shrink=0.8, label="value (no unit)")
fig.suptitle("Lesson 10: a test digit through the CNN's first block -- a 3 x 3 convolution "
             "with two hand-made edge filters (Sobel), the PReLU, 2 x 2 max pooling", fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "10_feature_maps.png"))


# %% 2. im2col: the whole layer as one matrix product
# Every output entry is a dot product of a patch with a filter. Lay every patch out as one
# row of a matrix -- "image to columns", im2col -- and the layer is one matrix product of the
# (N*Ho*Wo, C*k*k) patch matrix with the (C*k*k, F) filters: one call to an optimised BLAS
# instead of Ho*Wo small products (or N*F*Ho*Wo*C*k*k Python steps).
def im2col(x, k):
    """(N*Ho*Wo, C*k*k): row (n, i, j) holds the k x k patch of image n at (i, j), channel
    after channel."""
    N, C, H, Wd = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # a view, no copy
    # windows[n, c, i, j] = x[n, c, i:i+k, j:j+k]; put (n, i, j) first, then copy into rows
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * (H - k + 1) * (Wd - k + 1), C * k * k)


x = np.arange(16.0).reshape(1, 1, 4, 4)
W = np.array([[[[1.0, 2.0], [0.0, -1.0]]]])
b = np.array([0.5])
cols = im2col(x, 2)
print(f"x:\n{x[0, 0]}\nits patch matrix, one 2 x 2 patch per row, read row by row "
      f"({cols.shape[0]} patches x {cols.shape[1]} pixels):\n{cols}")
via_gemm = (cols @ W.reshape(1, -1).T + b).reshape(1, 3, 3, 1).transpose(0, 3, 1, 2)
same = np.array_equal(via_gemm, cnn_layers.conv2d_forward(x, W, b)[0])
print(f"patch matrix @ filter + b, reshaped to (N, F, Ho, Wo):\n{via_gemm[0, 0]}\n"
      f"equal to cnn_layers.conv2d_forward: {same}")
print(f"the price: pixel x[0, 0, 1, 1] = 5 sits in {int(np.sum(cols == 5.0))} rows; each "
      f"pixel is copied once for every patch that covers it (up to k*k times)")

# On the CNN's second layer: 32 channels of 12 x 12 in, 64 filters of 32 x 5 x 5, float32.
N2 = 4 if FAST else 32
x2 = rng.standard_normal((N2, 32, 12, 12)).astype(np.float32)
W2 = (rng.standard_normal((64, 32, 5, 5)) / np.sqrt(800)).astype(np.float32)
b2 = np.zeros(64, dtype=np.float32)
cols2 = im2col(x2, 5)
print(f"\nthe CNN's second layer, a batch of {N2}: input {x2.shape}, {x2.nbytes / 1e6:.2f} MB; "
      f"patch matrix {cols2.shape}, {cols2.nbytes / 1e6:.1f} MB = "
      f"{cols2.nbytes / x2.nbytes:.1f} x the input (8 x 8 patches of 5 x 5 from 12 x 12 pixels: "
      f"64 * 25 / 144 = 11.1)")


def best_time(function, repeats):
    """The fastest of a few runs, in seconds (the others are slowed by whatever else runs)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


repeats = 2 if FAST else 5
t_loop, out_loop = best_time(lambda: cnn_layers.conv2d_forward(x2, W2, b2)[0], repeats)
t_gemm, out_gemm = best_time(lambda: (im2col(x2, 5) @ W2.reshape(64, -1).T + b2)
                             .reshape(N2, 8, 8, 64).transpose(0, 3, 1, 2), repeats)
t_fast, out_fast = best_time(lambda: fast_conv.from_hwnc(fast_conv.conv2d_im2col_forward(
    fast_conv.to_hwnc(x2), W2, keep_patches=False)[0]) + b2[:, None, None], repeats)
one = (x2[:1].astype(np.float64), W2[:1].astype(np.float64), b2[:1].astype(np.float64))
t_six, _ = best_time(lambda: conv2d_six_loops(*one), 1)  # one image, one filter: 64 outputs
print(f"times on {N2} images (best of {repeats}; they change with the machine):")
print(f"  six loops, the formula       {t_six * 1e3:8.0f} ms for ONE image and ONE filter -> about "
      f"{t_six * N2 * 64:.0f} s for the batch (estimated, not run)")
print(f"  cnn_layers.conv2d_forward        {t_loop * 1e3:8.1f} ms  (a loop over the 64 positions)")
print(f"  im2col + one product         {t_gemm * 1e3:8.1f} ms")
print(f"  fast/conv.py's im2col        {t_fast * 1e3:8.1f} ms  (layout (H, W, N, C): long "
      f"contiguous copies)")
for name, result in (("im2col + one product", out_gemm), ("fast/conv.py", out_fast)):
    relative = np.max(np.abs(result - out_loop)) / np.max(np.abs(out_loop))
    print(f"  {name} vs cnn_layers.conv2d_forward: largest difference {relative:.1e} of the largest "
          f"output (float32 rounds a sum added in another order differently)")


# %% 3. Checking the three backwards before you write them
# Each backward is checked as in lesson 02: centred differences of the forward, in float64,
# compared with the backward by rel_error. Every piece has a kink to keep away from: max
# pooling at a tie (two equal entries in a window), the PReLU at 0. The convolution is
# linear: it has none. Below, tinyadv's own backwards -- what you will write in exercises 08
# and 09 -- are only *checked*: their insides are yours to find.
def check_piece(name, forward, inputs, backward_outputs, dout):
    """Compare each gradient with the centred differences of sum(forward()[0] * dout), which
    perturb each input in place; returns the numerical gradients."""
    numerics = []
    for (input_name, value), analytic in zip(inputs, backward_outputs):
        numerics.append(numerical_gradient_array(lambda: forward()[0], value, dout))
        print(compare(f"{name} d{input_name}", analytic, numerics[-1]))
    return numerics


x = rng.standard_normal((2, 3, 7, 6))
W = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
out, conv_cache = cnn_layers.conv2d_forward(x, W, b)
dout_conv = rng.standard_normal(out.shape)
conv_grads = cnn_layers.conv2d_backward(dout_conv, conv_cache)
conv_numerics = check_piece("conv2d", lambda: cnn_layers.conv2d_forward(x, W, b),
                            [("x", x), ("W", W), ("b", b)], conv_grads, dout_conv)

# Max pooling: random entries, then each window's largest moved 0.1 above the rest, so no
# step of h = 1e-6 can change which entry is the largest.
x_pool = rng.standard_normal((2, 3, 6, 7))  # 7 columns: the last one is in no window
windows = x_pool[:, :, :, :6].reshape(2, 3, 3, 2, 3, 2)  # a view: windows[n, c, i, :, j, :]
top = windows == windows.max(axis=(3, 5), keepdims=True)
windows += 0.1 * top  # writes through the view into x_pool
window_values = np.sort(windows.transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 3, 4), axis=-1)
print(f"max pooling's input: every window's maximum is at least "
      f"{np.min(window_values[..., 3] - window_values[..., 2]):.2f} above the window's next entry")
pool_out, pool_cache = cnn_layers.maxpool2d_forward(x_pool)
dout_pool = rng.standard_normal(pool_out.shape)
pool_numerics = check_piece("maxpool2d", lambda: cnn_layers.maxpool2d_forward(x_pool),
                            [("x", x_pool)], [cnn_layers.maxpool2d_backward(dout_pool, pool_cache)],
                            dout_pool)

# The PReLU: every input at least 0.1 away from 0.
z = rng.standard_normal((2, 3, 4, 4))
x_prelu = np.sign(z) * (0.1 + np.abs(z))
a = np.array([0.25])
prelu_out, prelu_cache = cnn_layers.prelu_forward(x_prelu, a)
dout_prelu = rng.standard_normal(prelu_out.shape)
prelu_numerics = check_piece("prelu", lambda: cnn_layers.prelu_forward(x_prelu, a),
                             [("x", x_prelu), ("a", a)],
                             cnn_layers.prelu_backward(dout_prelu, prelu_cache), dout_prelu)


# %% Exercises 08 and 09 come here
# Stop reading and write the three backwards yourself:
#     lessons/exercises/08_conv2d_backward.py     conv2d_backward (dx, dW, db)
#     lessons/exercises/09_maxpool_prelu.py       maxpool2d_backward, prelu_backward (dx, da)
# Run a file to check it (python lessons/exercises/08_conv2d_backward.py, from any folder).
# The sections below take those backwards apart, so the lesson stops here until you ask for
# them: as a script, run it again with --after-exercises; in a notebook, run the cells below
# this one (select the next cell, then Run > Run Selected Cell and All Below).
print("\n--- exercises 08 and 09 come here (lessons/exercises/) ---\n")
stop_for_exercises(
    "Lesson 10 stops here, before the answers: write exercises 08 and 09 first\n"
    "  (lessons/exercises/08_conv2d_backward.py and 09_maxpool_prelu.py; run a file to check it).\n"
    "The rest of the lesson takes those backwards apart, then trains the CNN. Once your files pass:\n"
    "  as a script:    python lessons/10_convolutions_by_hand.py --after-exercises\n"
    "  in a notebook:  run the cells below this one (Run All Below from the next cell),\n"
    "                  or %env TINYADV_AFTER_EXERCISES=1 in a cell before the first, then Run All")
print("--after-exercises: the sections below show the exercises' answers\n")


# %% 4. (After exercise 08.) The backward of a convolution is a convolution
# Scatter: output (i, j) read the patch at (i, j) through W, so its gradient goes back to that
# patch through the same weights. A dout that is 1 at one output and 0 elsewhere paints W,
# as it is, onto the patch that output read:
x1 = rng.standard_normal((1, 1, 5, 5))
W1 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # 1..9: any turn of it shows
_, cache1 = cnn_layers.conv2d_forward(x1, W1, np.zeros(1))
impulse = np.zeros((1, 1, 3, 3))
impulse[0, 0, 1, 0] = 1.0  # the output at row 1, column 0
dx_impulse, _, _ = cnn_layers.conv2d_backward(impulse, cache1)
print(f"W:\n{W1[0, 0]}\ndx for a dout of one 1 at output (1, 0):\n{dx_impulse[0, 0]}")

# Gather: the same sum seen from one pixel. Pixel (p, q) was read by every output (i, j) =
# (p - u, q - v) whose patch covers it, through weight W[u, v]:
#     dx[p, q] = sum_{u, v} dout[p - u, q - v] * W[u, v]
# (terms outside the output are 0). Renaming u -> k - 1 - u turns this into a forward
# convolution: pad dout with k - 1 zeros on every side -- a "full" correlation, so 3 outputs
# give back 5 input gradients -- and slide the kernel turned by 180 degrees over it. With
# several channels, dx[n, c] gathers from every output channel f: the turned kernel has C
# filters of F channels each, W's two channel axes exchanged.
k = W.shape[-1]
padded = np.pad(dout_conv, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
turned = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, k, k)
dx_as_conv, _ = cnn_layers.conv2d_forward(padded, turned, np.zeros(W.shape[1]))
dx, dW, db = conv_grads
print(f"dx as conv2d_forward(dout padded by k - 1, W turned 180 degrees, channels exchanged): "
      f"largest difference from conv2d_backward's {np.max(np.abs(dx_as_conv - dx)):.1e}")
# dW[f, c, u, v] = sum_{n, i, j} dout[n, f, i, j] x[n, c, i + u, j + v]: a correlation of x
# with dout as the kernel, summed over the batch -- a forward convolution again, with the
# images' channels as the batch and the batch as the channels:
dW_as_conv, _ = cnn_layers.conv2d_forward(x.transpose(1, 0, 2, 3), dout_conv.transpose(1, 0, 2, 3),
                                      np.zeros(dout_conv.shape[1]))  # (C, F, k, k)
print(f"dW as conv2d_forward(x, dout as the kernel): largest difference "
      f"{np.max(np.abs(dW_as_conv.transpose(1, 0, 2, 3) - dW)):.1e}; db = dout summed over "
      f"the batch and the positions: {np.max(np.abs(dout_conv.sum(axis=(0, 2, 3)) - db)):.1e}")

# Without the turn, the check fails -- as it should:
dx_unturned, _ = cnn_layers.conv2d_forward(padded, W.transpose(1, 0, 2, 3), np.zeros(W.shape[1]))
print(compare("conv2d dx, kernel not turned", dx_unturned, conv_numerics[0]))

# The figure: the top row scatters (output (1, 0) paints W onto its patch), the bottom row
# gathers (pixel (2, 1) reads the zero-padded dout through the turned kernel): the same dx.
p, q = 2, 1  # a pixel of the painted patch
padded1 = np.pad(impulse[0, 0], k - 1)  # (7, 7): the 3 x 3 dout with k - 1 = 2 zeros around
gathered = np.sum(padded1[p:p + k, q:q + k] * W1[0, 0, ::-1, ::-1])
print(f"pixel ({p}, {q}) gathers from the padded dout through the turned kernel: {gathered:.0f} "
      f"= dx[{p}, {q}] = {dx_impulse[0, 0, p, q]:.0f}")
fig, axes = plots.figure(2, 3, figsize=(10.5, 7.6), width_ratios=[3, 3, 7],
                         height_ratios=[5, 7])
panels = [(axes[0, 0], W1[0, 0], "W, as the forward reads it"),
          (axes[0, 1], impulse[0, 0], "dout: 1 at output (1, 0)"),
          (axes[0, 2], dx_impulse[0, 0], "scatter: dx is W painted onto\nthe patch output (1, 0) read"),
          (axes[1, 0], W1[0, 0, ::-1, ::-1], "W turned by 180 degrees"),
          (axes[1, 1], dx_impulse[0, 0], f"gather: the same dx;\npixel ({p}, {q}) outlined"),
          (axes[1, 2], padded1, f"dout zero-padded by k - 1 = {k - 1}: the turned\nW over the "
                                f"cells pixel ({p}, {q}) gathers from")]
for ax, image, title in panels:
    # Light cells and dark numbers: the numbers carry the values, the shade only helps.
    ax.imshow(image, cmap="Blues", vmin=0, vmax=1.8 * max(float(image.max()), 1.0))
    for (r, c), value in np.ndenumerate(image):
        ax.text(c, r, f"{value:.0f}", ha="center", va="center", color="black", fontsize=10)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_xticks(range(image.shape[1]))
    ax.set_yticks(range(image.shape[0]))
axes[0, 2].add_patch(Rectangle((-0.5, 0.5), k, k, fill=False, lw=2.5, ec="tab:red"))  # the patch
axes[1, 1].add_patch(Rectangle((q - 0.5, p - 0.5), 1, 1, fill=False, lw=2.5, ec="tab:red"))
axes[1, 2].add_patch(Rectangle((q - 0.5, p - 0.5), k, k, fill=False, lw=2.5, ec="tab:red"))
for (u, v), weight in np.ndenumerate(W1[0, 0, ::-1, ::-1]):  # the turned kernel's weights
    axes[1, 2].text(q + v + 0.45, p + u - 0.45, f"x{weight:.0f}", ha="right", va="top",
                    color="tab:red", fontsize=7)
fig.suptitle("Lesson 10: the backward of a 3 x 3 convolution on a 5 x 5 image. Top: each output "
             "sends its gradient back\nthrough the weights it read with. Bottom: seen from one "
             "pixel, that is a correlation of the zero-padded\ndout with the kernel turned by 180 "
             f"degrees (red: the turned weights over the cells pixel ({p}, {q}) reads)",
             fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "10_backward_as_convolution.png"))


# %% 5. (After exercise 09.) Max pooling: where the gradient goes, ties included
# A window's output is its largest entry. Nudge that entry and the output moves with it;
# nudge any other a little and nothing changes. So the window's gradient goes, whole, to
# the entry that won, and the other three get 0 -- the gradient is routed, not shared.
x_tie = np.array([[[[1.0, 3.0, 5.0, 5.0],
                    [2.0, 0.0, 1.0, 5.0]]]])  # window 0: 3 wins; window 1: three 5s tie
tie_out, tie_cache = cnn_layers.maxpool2d_forward(x_tie)
dout_tie = np.array([[[[10.0, 20.0]]]])
dx_tie = cnn_layers.maxpool2d_backward(dout_tie, tie_cache)
numeric_tie = numerical_gradient_array(lambda: cnn_layers.maxpool2d_forward(x_tie)[0], x_tie, dout_tie)
print(f"x:\n{x_tie[0, 0]}\nout = {tie_out[0, 0, 0]}, dout = {dout_tie[0, 0, 0]}")
print(f"dx from maxpool2d_backward:\n{dx_tie[0, 0]}")
print(f"centred differences:\n{numeric_tie[0, 0]}")
print("-> window 0: both agree, 10 to the winner. Window 1 is a tie, where the max has a kink: "
      "raising one 5 raises the output, lowering it does not, so a centred difference sees "
      "half the slope at each of the three (10 each, 30 in all). tinyadv, like PyTorch, gives "
      "the whole 20 to the first maximum it meets, reading the window row by row -- one of "
      "the valid choices; the total stays 20. Centred differences cannot judge a tie, so the "
      "checks of section 3 keep away from ties, and exercise 09's checker judges its tie case "
      "by that convention, computed exactly.")

# Ties are no curiosity: a blank patch of an MNIST digit gives the same number at every
# position (the bias alone), so whole windows tie. In a freshly initialised CNN:
fresh = network.init_params(TrainConfig(arch="cnn"), np.random.default_rng(0), dtype=np.float64)
images = X_test[:20 if FAST else 100].reshape(-1, 1, 28, 28).astype(np.float64)
conv1, _ = cnn_layers.conv2d_forward(images, fresh["W_conv1"], fresh["b_conv1"])
act1, _ = cnn_layers.prelu_forward(conv1, fresh["a_conv1"])
quads = act1.reshape(len(images), 32, 12, 2, 12, 2).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4)
tied = np.mean(np.sum(quads == quads.max(axis=1, keepdims=True), axis=1) > 1)
print(f"windows of the first pooling with a tie, {len(images)} test digits, fresh CNN: "
      f"{100 * tied:.0f}% -- which entry takes the gradient there is a choice the backward "
      f"must make, and the same choice as the forward's")

# Two wrong routings, checked on section 3's input (no ties): spread over the window, or
# averaged as average pooling does.
spread = np.zeros_like(x_pool)
spread[:, :, :, :6] = np.repeat(np.repeat(dout_pool, 2, axis=2), 2, axis=3)
print(compare("maxpool2d dx, spread over the window", spread, pool_numerics[0]))
print(compare("maxpool2d dx, averaged over the window", spread / 4, pool_numerics[0]))


# %% 6. (After exercise 09.) The PReLU's slope: one number, every entry's gradient
# out = x where x > 0 and a * x elsewhere. In x, each entry has its own slope: 1 or a. In a,
# every entry on the negative side moves when a moves, by x itself (d(a x)/da = x); the loss
# feels each through dout. So da = sum over every entry of dout * x where x <= 0 -- over the
# batch, the channels and the positions.
contributions = dout_prelu * np.minimum(x_prelu, 0)  # one per entry; 0 where x > 0
_, da = cnn_layers.prelu_backward(dout_prelu, prelu_cache)
print(f"{contributions.size} entries, {int(np.sum(x_prelu <= 0))} on the negative side; the "
      f"sum of their contributions {contributions.sum():.6f}, prelu_backward's da {da[0]:.6f}")
print(compare("prelu da, the mean instead of the sum", np.array([contributions.mean()]),
              prelu_numerics[1]))
print(f"in the CNN, one slope after the first convolution gathers 32 x 24 x 24 = "
      f"{32 * 24 * 24} contributions per image: {4 * 32 * 24 * 24} in a batch of 4, "
      f"{128 * 32 * 24 * 24:,} in one of 128 -- summed, not averaged (any mean belongs to the "
      f"loss)")


# %% 7. The authors' CNN, trained briefly, beside the library's MLP
# tinyadv/cnn.py puts the pieces above together and keeps the MLP's contract -- forward(params,
# x) -> (logits, h, cache) on (N, 784) images -- so training, FGSM, PGD and evaluation work
# unchanged: TrainConfig(arch="cnn") is all it takes. Both networks are trained the same way:
# FGSM adversarial training at eps 0.1 with cross-entropy on clean and FGSM images half and
# half (the library's default, the Baseline of lesson 03), Adam with a cosine schedule,
# batches of 128, seed 0. Here we hand train the lab's step and attack the networks through
# the lab's network (tinyadv/fast/): the same numbers as train.train_step and cnn.py (the
# tests hold them equal), with the im2col and Fourier-transform convolutions timed in
# section 3 -- cnn.py's loops would take about three times as long.
N_TRAIN, EPOCHS, N_TEST = (512, 1, 100) if FAST else (12000, 2, 1000)
EPS = 0.1
X_train, y_train = data.load_mnist("train")
X_train, y_train = X_train[:N_TRAIN], y_train[:N_TRAIN]
X_eval, y_eval = X_test[:N_TEST], y_test[:N_TEST]
base = TrainConfig(adversarial=True, fgsm_eps=EPS, ce_on="clean+fgsm", optimizer="adam", lr=2e-3,
                   lr_schedule="cosine", batch_size=128, epochs=EPOCHS, seed=0)
models, seconds = {}, {}
for arch in ("cnn", "mlp"):
    config = base.replace(arch=arch)
    what = "the authors' network" if arch == "cnn" else "-".join(map(str, config.sizes))
    print(f"training the {arch.upper()} ({what}) on {N_TRAIN} images for {EPOCHS} epoch(s):")
    start = time.perf_counter()
    models[arch], _ = train(config, X_train, y_train, step=fast_train_step)
    seconds[arch] = time.perf_counter() - start

steps = EPOCHS * (N_TRAIN // base.batch_size)
results = {}
for arch, params in models.items():
    x_fgsm = attacks.fgsm(params, X_eval, y_eval, EPS, net=LAB_NETWORK)
    x_pgd = attacks.pgd(params, X_eval, y_eval, EPS, 10, attacks.default_pgd_step_size(EPS, 10),
                        np.random.default_rng(0), net=LAB_NETWORK)
    results[arch] = [evaluate.accuracy(params, x, y_eval, net=LAB_NETWORK)["percent"]
                     for x in (X_eval, x_fgsm, x_pgd)]
print(f"\non the first {N_TEST} test images, eps {EPS}:    clean    FGSM   PGD-10   "
      f"seconds per step")
for arch, (clean, fgsm, pgd) in results.items():
    print(f"  {arch.upper():<28} {clean:7.1f}% {fgsm:6.1f}% {pgd:7.1f}%   "
          f"{seconds[arch] / steps:.3f}")
print(f"the CNN's step cost {seconds['cnn'] / seconds['mlp']:.0f} times the MLP's here (it does "
      f"about 4.07 M multiply-adds an image, the MLP 0.27 M)")

eps_list = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
curves = {arch: [point["percent"]
                 for point in evaluate.accuracy_vs_eps(params, X_eval, y_eval, eps_list)]
          for arch, params in models.items()}
print("FGSM accuracy (%) by eps " + " ".join(f"{e:>6}" for e in eps_list))
for arch, accuracy in curves.items():
    print(f"  {arch.upper():<22} " + " ".join(f"{value:6.1f}" for value in accuracy))

fig, axes = plots.figure(1, 2, figsize=(11, 4.6), width_ratios=[1, 1.1])
filters = models["cnn"]["W_conv1"][:, 0]  # (32, 5, 5)
montage = np.full((4 * 6 + 1, 8 * 6 + 1), np.nan)  # 4 rows x 8 filters, a blank line between
for index, kernel in enumerate(filters):
    r, c = divmod(index, 8)
    montage[1 + 6 * r:6 + 6 * r, 1 + 6 * c:6 + 6 * c] = kernel / np.max(np.abs(kernel))
shown = axes[0].imshow(montage, cmap="RdBu_r", vmin=-1, vmax=1)
fig.colorbar(shown, ax=axes[0], shrink=0.7, label="weight / the filter's largest |weight|")
axes[0].set_title("the CNN's 32 first-layer filters after training (5 x 5 each)", fontsize=10)
axes[0].set_xticks(3 + 6 * np.arange(8), [str(c) for c in range(8)])
axes[0].set_yticks(3 + 6 * np.arange(4), [str(8 * r) for r in range(4)])
axes[0].set_xlabel("filter number = the row's first + this column")
axes[0].set_ylabel("the row's first filter")
# Both curves are FGSM's (its solid line, in every lesson); the models differ in colour (the
# shared colours of every lesson) and in marker, so that no one has to tell two hues apart,
# and each curve is named at its end.
ARCH_MODEL = {"cnn": "authors cnn", "mlp": "baseline"}
ARCH_MARKER = {"cnn": "o", "mlp": "D"}
for arch, accuracy in curves.items():
    style = dict(plots.attack_style("FGSM"), marker=ARCH_MARKER[arch])
    axes[1].plot(eps_list, accuracy, color=plots.model_colour(ARCH_MODEL[arch]), lw=2,
                 label=f"{arch.upper()}, FGSM", **style)
    axes[1].annotate(arch.upper(), (eps_list[-1], accuracy[-1]), xytext=(6, 0),
                     textcoords="offset points", va="center", fontsize=9,
                     color=plots.model_colour(ARCH_MODEL[arch]))
axes[1].axvline(EPS, color=plots.REFERENCE_COLOUR, ls="--", lw=0.8, label=f"training eps {EPS}")
axes[1].set_xlabel("eps (l-inf, pixel units in [0, 1])")
axes[1].set_ylabel(f"accuracy on {N_TEST} test images (%)")
axes[1].set_ylim(0, 100)
axes[1].grid(alpha=0.3)
axes[1].set_title("FGSM accuracy as eps grows (eps 0: clean images)", fontsize=10)
plots.legend_beside(axes[1])
fig.suptitle(f"Lesson 10: the authors' CNN and the default 784-256-256-10 MLP, both FGSM-trained "
             f"at eps {EPS}\non {N_TRAIN:,} MNIST images for {EPOCHS} epoch(s), seed 0",
             fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "10_cnn_vs_mlp.png"))
print(f"figures written to {OUT}")
