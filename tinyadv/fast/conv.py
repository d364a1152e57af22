"""The CNN's convolution, pooling and PReLU, fast: the numbers of layers.conv2d_forward,
layers.maxpool2d_forward and layers.prelu_forward (and their backwards), computed with a few
large array operations instead of a loop over output positions.

Layout: (H, W, N, C)
--------------------
layers.py works in PyTorch's (N, C, H, W). Here an activation is stored as (H, W, N, C):
the two spatial axes first, then the batch and the channels. A shifted window
x[u:u + Ho, v:v + Wo] -- what a convolution reads for kernel offset (u, v) -- and each of the
four entries x[s::2, t::2] of the pooling windows are then blocks made of long contiguous
runs (Wo * N * C numbers), so every copy and every elementwise operation below moves whole
runs rather than C numbers at a time; and the Fourier transforms over the two leading axes
run over N * C contiguous signals at once. ``to_hwnc`` and ``from_hwnc`` convert.

Two convolutions, and their mix, chosen per layer by measuring (cnn.CONV_METHOD):

- ``conv2d_im2col_*``: im2col -- every k x k patch laid out as a column -- then one matrix
  product per layer with all F filters; its backward is two products and a col2im (the
  patches' gradients added back where they came from). Best when C is small (the first
  layer: C = 1, F = 32, a 25-long patch).
- ``conv2d_fft_*``: the convolution theorem. A correlation of two signals is a product of
  their Fourier transforms, so per frequency the layer is one small (N, C) x (C, F) complex
  product; the transforms of an H x W image cost O(HW log HW) instead of the k^2 = 25
  multiply-adds per output of a 5 x 5 kernel. Best when C and F are large (the second layer:
  32 -> 64 channels on 12 x 12 images: 5 times fewer operations than im2col, and no col2im).

Both leave the bias out: ``conv_prelu_pool_forward`` adds it after the pooling, where there
are four times fewer numbers to add it to.
"""
import numpy as np

from .. import layers

__all__ = ["to_hwnc", "from_hwnc", "conv2d_im2col_forward", "conv2d_im2col_backward", "conv2d_fft_forward", "conv2d_fft_backward", "CONVOLUTIONS", "conv_prelu_pool_forward", "conv_prelu_pool_backward"]


def to_hwnc(x):
    """(N, C, H, W) -> (H, W, N, C), a contiguous copy."""
    return np.ascontiguousarray(x.transpose(2, 3, 0, 1))


def from_hwnc(x):
    """(H, W, N, C) -> (N, C, H, W), a contiguous copy."""
    return np.ascontiguousarray(x.transpose(2, 3, 0, 1))


def _check_conv(x, W):
    if x.ndim != 4 or W.ndim != 4:
        raise ValueError(f"x, W: expected x (H, W, N, C) and W (F, C, k, k), got shapes "
                         f"{x.shape} and {W.shape}")
    if x.dtype.kind != "f" or W.dtype.kind != "f":
        raise TypeError(f"x, W: expected floating dtypes, got {x.dtype} and {W.dtype}")
    if W.shape[1] != x.shape[3]:
        raise ValueError(f"W: expected {x.shape[3]} input channels to match x of shape "
                         f"{x.shape} (H, W, N, C), got W of shape {W.shape} (F, C, k, k)")
    if W.shape[2] > x.shape[0] or W.shape[3] > x.shape[1]:
        raise ValueError(f"W: the kernel ({W.shape[2]} x {W.shape[3]}) is larger than the "
                         f"input ({x.shape[0]} x {x.shape[1]}); no padding is added")



def _fft():
    """scipy.fft, imported when a Fourier transform is first needed: importing the CNN (and
    so tinyadv.network, attacks, ...) needs NumPy alone, as the classroom checker does when
    it runs under a Python that has only NumPy."""
    import scipy.fft

    return scipy.fft

# The largest patch matrix built at once when it need not be kept: 8 MB -- 40 images of
# the CNN's second layer. A larger one is a fresh allocation at every call, which the C
# allocator maps from the operating system and the first writes page in (fast/memory.py).
PATCH_BYTES = 8 << 20


def conv2d_im2col_forward(x, W, keep_patches=True):
    """layers.conv2d_forward without the bias, as one matrix product (im2col), in (H, W, N, C).

    Every k x k x C patch of the input becomes one row of a patch matrix, and the whole layer
    is one product with the filters laid out as a (k*k*C, F) matrix,

        cols[(n, i, j), (u, v, c)] = x[i + u, j + v, n, c]            (N*Ho*Wo, k*k*C)
        W_m[(u, v, c), f] = W[f, c, u, v]                            (k*k*C, F)
        z = cols @ W_m                                               (N*Ho*Wo, F)

    What differs from the reference: one product instead of Ho*Wo small ones, at the cost
    of the patch matrix, k*k times the input's size. How it is copied depends on C:

    - C > 1: the input is first copied to (N, H, W, C), where row u of a patch,
      x[n, i + u, j:j + k, :], is k*C contiguous numbers; the patch matrix is a strided view
      of it (``as_strided``, read only) whose copy moves those runs whole.
    - C = 1: the k*k shifted blocks x[u:u + Ho, v:v + Wo] -- each a run of Wo*N numbers per
      row in (H, W, N) -- are copied as the rows of the transposed patch matrix
      (k*k, Ho*Wo*N), and z = cols^T @ W_m comes out directly in (Ho, Wo, N, F). (A 5-long
      patch row would be too short a run to copy fast.)

    Parameters
    ----------
    x : (H, W, N, C)
    W : (F, C, k, k)
    keep_patches : keep the patch matrix for the backward (False: a backward that does not
        use it, conv2d_fft_backward, follows; see CONVOLUTIONS). Without it, and when C > 1,
        the patch matrix is built and multiplied a few images at a time (PATCH_BYTES).

    Returns
    -------
    z : (H - k + 1, W - k + 1, N, F), without the bias
    cache : for conv2d_im2col_backward (or conv2d_fft_backward when keep_patches is False)
    """
    _check_conv(x, W)
    H, Wd, N, C = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    W_m = W.transpose(2, 3, 1, 0).reshape(kh * kw * C, F)  # rows in the patches' (u, v, c) order
    if C == 1:
        cols = np.empty((kh, kw, Ho, Wo, N), dtype=x.dtype)
        for u in range(kh):
            for v in range(kw):
                cols[u, v] = x[u:u + Ho, v:v + Wo, :, 0]  # (Ho, Wo, N)
        cols = cols.reshape(kh * kw, Ho * Wo * N)  # the transposed patch matrix
        z = (cols.T @ W_m).reshape(Ho, Wo, N, F)  # rows (i, j, n): already (Ho, Wo, N, F)
    else:
        x_nhwc = np.ascontiguousarray(x.transpose(2, 0, 1, 3))  # (N, H, W, C)
        s = x_nhwc.strides
        patches = np.lib.stride_tricks.as_strided(  # (N, Ho, Wo, k, k*C): patch (n, i, j), row u
            x_nhwc, (N, Ho, Wo, kh, kw * C), (s[0], s[1], s[2], s[1], s[3]), writeable=False)
        if not keep_patches:  # a few images at a time: the patch matrix stays small
            step = max(1, PATCH_BYTES // (Ho * Wo * kh * kw * C * x.itemsize))
        else:
            step = N
        z = np.empty((Ho, Wo, N, F), dtype=np.result_type(x, W))
        for start in range(0, N, step):
            stop = min(start + step, N)
            cols = patches[start:stop].reshape((stop - start) * Ho * Wo, kh * kw * C)  # a copy
            z[:, :, start:stop] = (cols @ W_m).reshape(stop - start, Ho, Wo, F).transpose(1, 2, 0, 3)
    if not keep_patches:
        return z, (None, None, x, W)
    return z, (cols, W_m, x.shape, W.shape)


def conv2d_im2col_backward(dz, cache, need_dx=True, need_dW=True):
    """layers.conv2d_backward's dx and dW (db: see conv_prelu_pool_backward) for
    conv2d_im2col_forward, as two matrix products and a col2im.

        dW_m = cols^T @ dz                    (k*k*C, F): the sum over the batch and the
                                              positions is the product's sum over (n, i, j)
        dcols = dz @ W_m^T                    (N*Ho*Wo, k*k*C): each patch's gradient
        dx[i + u, j + v] += dcols[(i, j), (u, v)]   for every (u, v): col2im, the patches put
                                              back where im2col took them, overlaps added

    Parameters
    ----------
    dz : (Ho, Wo, N, F)
    cache : from conv2d_im2col_forward
    need_dx : False skips dx (the network's first layer needs it only for attacks)
    need_dW : False skips dW (attacks need only dx)

    Returns
    -------
    (dx (H, W, N, C) or None, dW (F, C, k, k) or None)
    """
    cols, W_m, x_shape, W_shape = cache
    H, Wd, N, C = x_shape
    F, _, kh, kw = W_shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    dx = dW = None
    if C == 1:  # cols is the transposed patch matrix, its columns in (i, j, n) order
        dz = np.ascontiguousarray(dz).reshape(Ho * Wo * N, F)
        if need_dW:
            dW = cols @ dz  # (k*k, F)
        if need_dx:
            dcols = (W_m @ dz.T).reshape(kh, kw, Ho, Wo, N)
            dx = np.zeros(x_shape, dtype=dcols.dtype)
            for u in range(kh):
                for v in range(kw):
                    dx[u:u + Ho, v:v + Wo, :, 0] += dcols[u, v]
    else:  # cols' rows in (n, i, j) order
        dz = np.ascontiguousarray(dz.transpose(2, 0, 1, 3)).reshape(N * Ho * Wo, F)
        if need_dW:
            dW = cols.T @ dz  # (k*k*C, F)
        if need_dx:
            dcols = (dz @ W_m.T).reshape(N, Ho, Wo, kh, kw, C)
            dx = np.zeros((N, H, Wd, C), dtype=dcols.dtype)
            for u in range(kh):
                for v in range(kw):
                    dx[:, u:u + Ho, v:v + Wo] += dcols[:, :, :, u, v]
            dx = np.ascontiguousarray(dx.transpose(1, 2, 0, 3))  # (H, W, N, C)
    if dW is not None:
        dW = dW.reshape(kh, kw, C, F).transpose(3, 2, 0, 1)  # (F, C, k, k)
    return dx, dW


def conv2d_fft_forward(x, W):
    """layers.conv2d_forward without the bias, through the Fourier transform, in (H, W, N, C).

    The forward is a correlation, z[i, j] = sum_{u, v} x[i + u, j + v] W[u, v] for each (n, f)
    summed over c. With hat = the 2-d discrete Fourier transform over an H x W grid (W
    zero-padded to H x W), a circular correlation becomes a product,

        z_hat[w, n, f] = sum_c x_hat[w, n, c] conj(W_hat[w, c, f])    for every frequency w,

    one (N, C) @ (C, F) complex product per frequency. On the valid outputs (i < H - k + 1,
    j < W - k + 1) the circular correlation never wraps around, so it equals the
    convolution: those are the outputs kept. Real inputs have Hermitian spectra, so only
    W // 2 + 1 frequency columns are stored (``rfft2``).

    What differs from the reference: the products cost H (W // 2 + 1) N C F complex
    multiply-adds (4 real ones each) against Ho Wo k^2 N C F real ones for the loop or
    im2col -- for 12 x 12 inputs, 32 -> 64 channels and a 5 x 5 kernel, 84 x 4 = 336 against
    8 x 8 x 25 = 1600 per (n, c, f), 5 times fewer -- plus the transforms, O(HW log HW) per
    image and channel. And the rounding: each output carries the float32 rounding of the
    transforms, ~1e-7 of the layer's largest output rather than of its own size. Outputs
    that the reference computes equal (two identical patches, as in an image's blank
    border) can therefore differ in their last bits, and a pooling window then routes its
    gradient to whichever rounded up -- not to the first, as the reference does. This is why
    the CNN computes its forward with im2col and only its backward with the transforms
    ("im2col/fft" in CONVOLUTIONS): the backward routes nothing.

    Parameters
    ----------
    x : (H, W, N, C)
    W : (F, C, k, k)

    Returns
    -------
    z : (H - k + 1, W - k + 1, N, F), without the bias
    cache : for conv2d_fft_backward
    """
    _check_conv(x, W)
    H, Wd, N, C = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    x_hat, W_hat = _transforms(x, W)  # (H, Wf, N, C), (H, Wf, C, F); Wf = W // 2 + 1
    Wf = x_hat.shape[1]
    z_hat = x_hat.reshape(H * Wf, N, C) @ W_hat.reshape(H * Wf, C, F).conj()  # (H*Wf, N, F)
    # The inverse transform, one axis at a time so that only the Ho rows kept are finished.
    z = _fft().ifft(z_hat.reshape(H, Wf, N, F), axis=0)[:Ho]
    z = _fft().irfft(z, n=Wd, axis=1)[:, :Wo]  # (Ho, Wo, N, F)
    return z, (x_hat, W_hat, x, W)


def _transforms(x, W):
    """x_hat (H, W // 2 + 1, N, C) and W_hat (H, W // 2 + 1, C, F): the 2-d real Fourier
    transforms over the input's H x W grid, W zero-padded to it."""
    H, Wd = x.shape[:2]
    x_hat = _fft().rfft2(x, axes=(0, 1))
    W_hat = _fft().rfft2(W.transpose(2, 3, 1, 0), s=(H, Wd), axes=(0, 1))
    return x_hat, W_hat


def conv2d_fft_backward(dz, cache, need_dx=True, need_dW=True):
    """layers.conv2d_backward's dx and dW for conv2d_fft_forward, in the frequency domain.

    With dz zero-padded to H x W (outputs that do not exist have no gradient):

        dW: dW[u, v] = sum_{i, j} dz[i, j] x[i + u, j + v] is a correlation of x with dz:
            dW_hat[w, c, f] = sum_n x_hat[w, n, c] conj(dz_hat[w, n, f])    keep u, v < k
        dx: dx[p, q] = sum_{u, v} dz[p - u, q - v] W[u, v] is a convolution (the "full
            correlation with the flipped kernel" of layers.conv2d_backward):
            dx_hat[w, n, c] = sum_f dz_hat[w, n, f] W_hat[w, c, f]

    Neither wraps around on the grid (dz is zero past Ho, W past k), so both are exact.
    ``need_dx`` and ``need_dW`` as in conv2d_im2col_backward. The cache may come from
    conv2d_im2col_forward(..., keep_patches=False): the transforms of x and W are then
    computed here.

    Returns
    -------
    (dx (H, W, N, C) or None, dW (F, C, k, k) or None)
    """
    x_hat, W_hat, x, W = cache
    if x_hat is None:
        x_hat, W_hat = _transforms(x, W)
    H, Wd, N, C = x.shape
    F, _, kh, kw = W.shape
    Wf = x_hat.shape[1]
    dz_hat = _fft().rfft2(dz, s=(H, Wd), axes=(0, 1)).reshape(H * Wf, N, F)  # pads with 0
    dW = None
    if need_dW:
        dW_hat = x_hat.reshape(H * Wf, N, C).transpose(0, 2, 1) @ dz_hat.conj()  # (H*Wf, C, F)
        dW = _fft().ifft(dW_hat.reshape(H, Wf, C, F), axis=0)[:kh]
        dW = _fft().irfft(dW, n=Wd, axis=1)[:, :kw]  # (k, k, C, F)
        dW = np.ascontiguousarray(dW.transpose(3, 2, 0, 1))  # (F, C, k, k)
    if not need_dx:
        return None, dW
    dx_hat = dz_hat @ W_hat.reshape(H * Wf, C, F).transpose(0, 2, 1)  # (H*Wf, N, C)
    dx = _fft().irfft2(dx_hat.reshape(H, Wf, N, C), s=(H, Wd), axes=(0, 1))
    return dx, dW


def _im2col_forward_for_fft(x, W):
    return conv2d_im2col_forward(x, W, keep_patches=False)


# The convolutions a block can use: (forward, backward). "im2col/fft": im2col's forward
# (outputs bit for bit those of a direct product, so exact ties stay ties for the pooling)
# with the Fourier transforms' backward (no patch matrix kept, no col2im).
CONVOLUTIONS = {"im2col": (conv2d_im2col_forward, conv2d_im2col_backward),
                "fft": (conv2d_fft_forward, conv2d_fft_backward),
                "im2col/fft": (_im2col_forward_for_fft, conv2d_fft_backward)}


def _windows(z, rows, cols):
    """The four entries of every 2 x 2 pooling window of z (H, W, ...), in the order
    layers.maxpool2d_forward reads them (top-left, top-right, bottom-left, bottom-right):
    four strided views, each (rows, cols, ...)."""
    return [z[s:2 * rows:2, t:2 * cols:2] for s in (0, 1) for t in (0, 1)]


def conv_prelu_pool_forward(x, W, b, a, conv="im2col"):
    """maxpool2d(prelu(conv2d(x, W) + b, a)) -- layers.conv2d_forward, prelu_forward and
    maxpool2d_forward in a row -- in (H, W, N, C).

    What differs, and why: the bias and the PReLU come *after* the pooling when a > 0.
    z -> prelu(z + b) is then non-decreasing, and the max of non-decreasing images is the
    image of the max: max_k prelu(z_k + b) = prelu(max_k z_k + b) -- equal bit for bit,
    since rounding is non-decreasing too. So the bias and the PReLU touch a quarter of the
    numbers. The window's winner is the first maximum of z, which is the reference's first
    maximum of prelu(z + b) unless two entries differ in z but round to the same value after
    the bias and the PReLU (adjacent floats); then the reference routes the gradient to the
    first and this version to the larger -- both a gradient of the same max, and exact ties
    (a blank patch of an image gives many) are routed the same way.
    For a <= 0 the PReLU is not non-decreasing (or, at a = 0, its slope's gradient would
    depend on the entry chosen among equal zeros), and the layers.py functions run as they
    are, on the whole array.

    Parameters
    ----------
    x : (H, W, N, C)
    W : (F, C, k, k); b : (F,); a : (1,) the PReLU's slope
    conv : "im2col" or "fft", which convolution to use (see the module docstring)

    Returns
    -------
    out : ((H - k + 1) // 2, (W - k + 1) // 2, N, F)
    cache : for conv_prelu_pool_backward
    """
    if conv not in CONVOLUTIONS:
        raise ValueError(f"conv: expected one of {tuple(CONVOLUTIONS)}, got {conv!r}")
    if b.shape != (W.shape[0],) or a.size != 1:
        raise ValueError(f"b, a: expected shapes ({W.shape[0]},) and (1,), got {b.shape} "
                         f"and {a.shape}")
    z, conv_cache = CONVOLUTIONS[conv][0](x, W)  # (Ho, Wo, N, F)
    Ho, Wo = z.shape[:2]
    if Ho < 2 or Wo < 2:
        raise ValueError(f"x: the convolution's output ({Ho} x {Wo}) is too small for a "
                         f"2 x 2 pooling window")
    if a.item() > 0:
        entries = _windows(z, Ho // 2, Wo // 2)
        z_max = np.maximum(entries[0], entries[1])
        np.maximum(z_max, np.maximum(entries[2], entries[3]), out=z_max)  # (Ho/2, Wo/2, N, F)
        y = z_max + b  # the winner's pre-activation
        out = np.where(y > 0, y, a * y)
        pool_cache = ("pool first", z, z_max, y, a)
    else:  # the reference's order, on the whole array
        z_nchw = z.transpose(2, 3, 0, 1)  # (N, F, Ho, Wo), a view
        act, prelu_cache = layers.prelu_forward(z_nchw + b[:, None, None], a)
        out, maxpool_cache = layers.maxpool2d_forward(act)
        out = to_hwnc(out)
        pool_cache = ("reference", prelu_cache, maxpool_cache)
    return out, (conv, conv_cache, z.shape, pool_cache)


def conv_prelu_pool_backward(dout, cache, need_dx=True, need_dW=True):
    """Gradients of conv_prelu_pool_forward: (dx, dW, db, da).

    In the pool-first order (a > 0), with y = max_k z_k + b the winner's pre-activation:

        dy = dout * (1 where y > 0, a elsewhere)           prelu_backward, on the pooled map
        da = sum dout * min(y, 0);  db = sum_{i, j, n} dy    (1,), (F,)
        dz = dy routed to each window's winner, 0 to the other three   maxpool2d_backward
        dx, dW from the convolution's backward

    Each window's winner is recomputed here (the first of the four entries equal to the
    maximum, as layers.maxpool2d_forward reads them): four boolean masks, one per entry.
    ``need_dx``, ``need_dW``: as in the convolutions' backwards (db and da cost little and
    are always returned).

    Returns
    -------
    (dx (H, W, N, C) or None, dW (F, C, k, k) or None, db (F,), da (1,))
    """
    conv, conv_cache, z_shape, pool_cache = cache
    if pool_cache[0] == "pool first":
        _, z, z_max, y, a = pool_cache
        if dout.shape != y.shape:
            raise ValueError(f"dout: expected shape {y.shape}, the forward's output, "
                             f"got {dout.shape}")
        da = np.vdot(dout, np.minimum(y, 0)).reshape(a.shape)
        dy = np.where(y > 0, dout, a * dout)
        db = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
        entries = _windows(z, *y.shape[:2])
        dz = np.empty(z_shape, dtype=dy.dtype)
        dz[2 * y.shape[0]:] = 0  # a row and a column that floor mode drops get no gradient
        dz[:, 2 * y.shape[1]:] = 0
        # The first of the four entries equal to the window's max wins: entry k wins if it
        # equals the max and no earlier entry did.
        won = entries[0] == z_max
        taken = won.copy()
        for k, d_entry in enumerate(_windows(dz, *y.shape[:2])):
            if k == 3:
                won = ~taken  # no earlier entry was the max: the last one is
            elif k > 0:
                won = np.greater(entries[k] == z_max, taken)  # equal, and not taken before
                taken |= won
            np.multiply(dy, won, out=d_entry)
    else:
        _, prelu_cache, maxpool_cache = pool_cache
        dact = layers.maxpool2d_backward(from_hwnc(dout), maxpool_cache)
        dz_nchw, da = layers.prelu_backward(dact, prelu_cache)
        db = dz_nchw.sum(axis=(0, 2, 3))
        dz = to_hwnc(dz_nchw)
    dx, dW = CONVOLUTIONS[conv][1](dz, conv_cache, need_dx=need_dx, need_dW=need_dW)
    return dx, dW, db, da
