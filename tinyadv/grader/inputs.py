"""Random float64 inputs for each piece, kept away from every kink.

``draw_<piece>(rng, n, case) -> (args, masks)``: ``args`` are the forward's arguments, with
batch size n; ``masks`` name sets of entries of the case -- ``[(description, bool array)]``
(arrays shaped like a gradient, or (N,) for whole rows) -- so a hint can say "exactly the rows
where cos(a_i, b_i) < 0" instead of "4 of 21 entries".

Why the gaps: a centred difference with h = 1e-6 is exact to ~1e-10 only where the function
is smooth within h of the input. Every input stays at least KINK_GAP = 0.1 (1e5 steps of h)
from ReLU's and PReLU's kink at 0, |cos| at 0, the triplet hinge at 0 and a norm at 0, and
every 2 x 2 pooling window's maximum stays KINK_GAP above the window's other entries (a tie
is max pooling's kink) -- and |cos| stays below 0.95, where the gradient of |cos| vanishes
(a vanishing gradient would let a wrong one pass).
"""
import numpy as np

__all__ = ["KINK_GAP", "draw_linear", "draw_relu", "draw_softmax_cross_entropy",
           "draw_angular_distance", "draw_triplet_loss", "draw_feature_norm", "draw_gather_rows",
           "draw_fgsm_loss", "draw_conv2d", "draw_maxpool2d", "draw_prelu", "NoRowsFound"]

KINK_GAP = 0.1
SQUARE_CASE = 2  # the last of the three cases: square matrices, so a transpose is caught by value


def _signed_uniform(rng, shape, low, high):
    """Values with |v| in [low, high] and a random sign: never within ``low`` of 0."""
    return rng.choice(np.array([-1.0, 1.0]), size=shape) * rng.uniform(low, high, size=shape)


def row_cos(a, b):
    """Row-wise cosine and the smaller of the two norms, for (m, K) arrays."""
    norm_a = np.sqrt(np.einsum("ij,ij->i", a, a))
    norm_b = np.sqrt(np.einsum("ij,ij->i", b, b))
    return np.einsum("ij,ij->i", a, b) / (norm_a * norm_b), np.minimum(norm_a, norm_b)


def _cos_ok(a, b):
    """|cos| in [0.1, 0.95] and both norms >= 0.3."""
    cos, smaller_norm = row_cos(a, b)
    return (np.abs(cos) >= KINK_GAP) & (np.abs(cos) <= 0.95) & (smaller_norm >= 0.3)


class NoRowsFound(RuntimeError):
    """Rejection sampling gave up: no acceptable rows for these fixed parameters."""


def _draw_rows(rng, n, draw, ok, max_rounds=10_000):
    """Rejection sampling, vectorized over rows.

    draw(rng, m) -> tuple of arrays with m rows; ok(rows, *arrays) -> bool (m,) says which rows
    are acceptable (``rows`` are their final indices). Rejected rows are redrawn together.
    Raises NoRowsFound after ``max_rounds`` rounds.
    """
    arrays = draw(rng, n)
    good = ok(np.arange(n), *arrays)
    for _ in range(max_rounds):
        if good.all():
            return arrays
        rows = np.flatnonzero(~good)
        fresh = draw(rng, rows.size)
        for array, new in zip(arrays, fresh):
            array[rows] = new
        good[rows] = ok(rows, *fresh)
    raise NoRowsFound("could not draw inputs away from the kinks; this is a bug in the checker")


def _other_size(rng, low, high, avoid):
    """A size in low..high other than ``avoid``: a transposed matrix then has the wrong shape."""
    size = int(rng.integers(low, high))
    return size + (size >= avoid)


def draw_linear(rng, n, case):
    d = int(rng.integers(2, 7))
    m = d if case == SQUARE_CASE else _other_size(rng, 2, 6, d)
    x = rng.standard_normal((n, d))
    W = rng.standard_normal((d, m))
    b = rng.standard_normal(m)  # non-zero: no kink here, but no special value either
    return (x, W, b), []


def draw_relu(rng, n, case):
    x = _signed_uniform(rng, (n, int(rng.integers(2, 7))), KINK_GAP, 2.0)
    return (x,), [("the entries where x < 0", x < 0), ("the entries where x > 0", x > 0)]


def draw_softmax_cross_entropy(rng, n, case):
    c = int(rng.integers(3, 7))
    logits = 2.0 * rng.standard_normal((n, c))
    y = rng.integers(0, c, size=n)
    true_class = np.zeros((n, c), dtype=bool)
    true_class[np.arange(n), y] = True
    return (logits, y), [("the true-class entries (i, y_i)", true_class),
                         ("the entries of the other classes", ~true_class)]


def draw_angular_distance(rng, n, case):
    k = int(rng.integers(3, 7))  # K >= 3: with K = 1 the distance is constant and says nothing
    a, b = _draw_rows(rng, n, lambda r, m: (r.standard_normal((m, k)), r.standard_normal((m, k))),
                      lambda rows, a, b: _cos_ok(a, b))
    # Alternate the sign of the cosine (row 0 positive, row 1 negative, ...) so the absolute
    # value in D = 1 - |cos| is exercised whenever N > 1. Negating b_i flips only the sign.
    cos, _ = row_cos(a, b)
    want_negative = np.arange(n) % 2 == 1
    b[np.sign(cos) != np.where(want_negative, -1.0, 1.0)] *= -1.0
    return (a, b), [("the rows where cos(a_i, b_i) < 0", want_negative),
                    ("the rows where cos(a_i, b_i) > 0", ~want_negative)]


def draw_triplet_loss(rng, n, case):
    k = int(rng.integers(3, 7))
    margin = float(rng.uniform(0.05, 0.3))
    hinge_gap = 0.05  # |D(a,p) - D(a,n) + margin| >= this for every row

    def draw(r, m):
        return tuple(r.standard_normal((m, k)) for _ in range(3))

    def ok(rows, a, p, neg):
        cos_ap, _ = row_cos(a, p)
        cos_an, _ = row_cos(a, neg)
        hinge = np.abs(cos_an) - np.abs(cos_ap) + margin  # = D(a,p) - D(a,n) + margin
        # Even rows active, odd rows inactive: a backward without the hinge's mask is caught.
        want_active = rows % 2 == 0
        hinge_ok = np.where(want_active, hinge >= hinge_gap, hinge <= -hinge_gap)
        return _cos_ok(a, p) & _cos_ok(a, neg) & hinge_ok

    a, p, neg = _draw_rows(rng, n, draw, ok)
    inactive = np.arange(n) % 2 == 1
    cos_ap, _ = row_cos(a, p)
    cos_an, _ = row_cos(a, neg)
    return (a, p, neg, margin), [
        ("the rows of inactive triplets (hinge <= 0, zero loss)", inactive),
        ("the rows of active triplets (hinge > 0)", ~inactive),
        ("the rows where cos(a_i, p_i) < 0", cos_ap < 0),
        ("the rows where cos(a_i, n_i) < 0", cos_an < 0),
    ]


def draw_feature_norm(rng, n, case):
    k = int(rng.integers(2, 7))
    (h,) = _draw_rows(rng, n, lambda r, m: (r.standard_normal((m, k)),),
                      lambda rows, h: np.sqrt(np.einsum("ij,ij->i", h, h)) >= 0.3)
    return (h,), []


def draw_gather_rows(rng, n, case):
    """N anchors' embeddings h and each anchor's negative, index (N,) with index_i != i.

    Like batch-hard mining, an anchor is never its own negative, and with N > 1 some anchor
    is picked by several others (so a gradient that overwrites instead of adding is caught)
    -- and therefore some anchor by none.
    """
    k = int(rng.integers(2, 7))
    h = rng.standard_normal((n, k))
    if n == 1:
        index = np.zeros(1, dtype=np.int64)
    else:
        while True:  # a few rounds at most: most draws already repeat an index
            index = (np.arange(n) + rng.integers(1, n, size=n)) % n  # never i itself
            if np.unique(index).size < n or n == 2:  # with N = 2 the only choice is [1, 0]
                break
    picked = np.bincount(index, minlength=n)
    return (h, index), [("the rows of h picked by several anchors", picked > 1),
                        ("the rows of h picked by no anchor", picked == 0),
                        ("the rows of h picked by exactly one anchor", picked == 1)]


def draw_fgsm_loss(rng, n, case):
    """A two-layer MLP and images x in [0, 1] whose hidden pre-activations z = x W1 + b1 are
    all >= 0.1 from ReLU's kink, with in every row at least one unit on and one off (so a
    missing ReLU mask changes every row)."""
    d = int(rng.integers(3, 7))
    hidden = d if case == SQUARE_CASE else _other_size(rng, 2, 6, d)
    classes = int(rng.integers(3, 6))
    while True:  # weights with which some unit is on for every x cannot pass ``ok``: redraw
        W1, b1 = rng.standard_normal((d, hidden)), 0.5 * rng.standard_normal(hidden)
        # A head of scale 0.5 keeps the logits moderate: a saturated softmax has a vanishing
        # gradient, where centred differences lose their relative accuracy.
        W2, b2 = 0.5 * rng.standard_normal((hidden, classes)), 0.5 * rng.standard_normal(classes)

        def ok(rows, x):
            z = x @ W1 + b1  # (m, H)
            return (np.abs(z) >= KINK_GAP).all(axis=1) & (z > 0).any(axis=1) & (z < 0).any(axis=1)

        try:
            (x,) = _draw_rows(rng, n, lambda r, m: (r.uniform(0.0, 1.0, size=(m, d)),), ok,
                              max_rounds=100)
            break
        except NoRowsFound:
            continue
    y = rng.integers(0, classes, size=n)
    return (x, W1, b1, W2, b2, y), []


def draw_conv2d(rng, n, case):
    """Images x (n, C, H, W), filters W (F, C, k, k), biases b (F,); no kink anywhere.

    k is 2 or 3, so a kernel turned by 180 degrees differs from the kernel; the output is
    never square (Ho != Wo), so swapped spatial axes show; C != F except in the square case,
    where C == F and a gradient with its channel axes swapped has the right shape and is
    caught by value. Sizes stay small: the reference differentiates the loop-over-positions
    forward entry by entry.
    """
    k = int(rng.integers(2, 4))
    if case == SQUARE_CASE:
        c = f = int(rng.integers(2, 4))
    else:
        c = int(rng.integers(1, 3))
        f = _other_size(rng, 1, 3, c)
    height = k + int(rng.integers(1, 3))  # 2 or 3 output rows
    width = _other_size(rng, k + 1, k + 3, height)  # another number of output columns
    x = rng.standard_normal((n, c, height, width))
    W = rng.standard_normal((f, c, k, k))
    b = rng.standard_normal(f)
    return (x, W, b), []


def draw_maxpool2d(rng, n, case):
    """Images x (n, C, H, W) whose every 2 x 2 window has one clear maximum, KINK_GAP above
    the window's three other entries. H is odd in the first case (floor mode: the last row
    is in no window and gets no gradient), even in the others; W odd in the second."""
    c = int(rng.integers(1, 3))
    height = 2 * int(rng.integers(2, 4)) + (case == 0)  # 2 or 3 windows down, ...
    width = 2 * int(rng.integers(2, 4)) + (case == 1)  # ... and across
    x = rng.standard_normal((n, c, height, width))
    ho, wo = height // 2, width // 2
    windows = (x[:, :, :2 * ho, :2 * wo].reshape(n, c, ho, 2, wo, 2)
               .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, 4))  # a copy
    winner = rng.integers(0, 4, size=(n, c, ho, wo))  # where each window's maximum goes
    others = np.partition(windows, 2, axis=-1)[..., :3]  # any three of the four values ...
    top = windows.max(axis=-1) + KINK_GAP + rng.uniform(0.0, 0.5, size=winner.shape)
    fresh = np.concatenate([others, top[..., None]], axis=-1)  # ... and a clear maximum
    # Put the maximum at the drawn position: swap the last entry with the winner's.
    last = fresh[..., 3].copy()
    np.put_along_axis(fresh, np.full(winner.shape + (1,), 3), np.take_along_axis(
        fresh, winner[..., None], axis=-1), axis=-1)
    np.put_along_axis(fresh, winner[..., None], last[..., None], axis=-1)
    x[:, :, :2 * ho, :2 * wo] = (fresh.reshape(n, c, ho, wo, 2, 2).transpose(0, 1, 2, 4, 3, 5)
                                 .reshape(n, c, 2 * ho, 2 * wo))
    wins = np.zeros(x.shape, dtype=bool)
    win_windows = np.zeros((n, c, ho, wo, 4), dtype=bool)
    np.put_along_axis(win_windows, winner[..., None], True, axis=-1)
    wins[:, :, :2 * ho, :2 * wo] = (win_windows.reshape(n, c, ho, wo, 2, 2)
                                    .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * ho, 2 * wo))
    covered = np.zeros(x.shape, dtype=bool)
    covered[:, :, :2 * ho, :2 * wo] = True
    masks = [("the entries that win their window (each window's maximum)", wins),
             ("the entries that lose their window", covered & ~wins)]
    if not covered.all():
        masks.append(("the last row or column, which no window covers (odd H or W)", ~covered))
    return (x,), masks


def draw_prelu(rng, n, case):
    """x (n, C, H, W) in the first and last case, (n, D) in the second, every entry at least
    KINK_GAP from 0 and both signs in every case; one slope a (1,) in [0.1, 0.5] (not 0, not
    1: a backward that drops a, or treats the negative side as ReLU's, is caught)."""
    shape = (n, int(rng.integers(2, 6))) if case == 1 else (n, int(rng.integers(1, 3)), 2, 3)
    x = _signed_uniform(rng, shape, KINK_GAP, 2.0)
    flat = x.reshape(-1)
    flat[0], flat[1] = abs(flat[0]), -abs(flat[1])  # both sides in use, whatever N
    a = rng.uniform(0.1, 0.5, size=1)
    return (x, a), [("the entries where x < 0", x < 0), ("the entries where x > 0", x > 0)]
