"""Figures: PCA of embeddings (paper Figure 1), image grids, accuracy-vs-eps curves.

matplotlib is imported lazily inside each function with the headless Agg backend, so importing
tinyadv never needs a display. Every figure is written atomically (temporary name, then rename).
"""
import os

import numpy as np

from .fileio import atomic_path


def pca_2d(h):
    """Project rows of h onto their first two principal components, via the SVD.

    Centre the data, X_c = U S V^T; the principal directions are the first rows of V^T and
    the coordinates are X_c @ V[:, :2] = U[:, :2] * S[:2].

    Returns
    -------
    coords : (N, 2)
    explained : (2,) fraction of the total variance along each component
    """
    centred = h - h.mean(axis=0)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    coords = centred @ vt[:2].T  # (N, 2)
    variance = s ** 2
    return coords, variance[:2] / max(variance.sum(), 1e-12)


def scatter_ratio(h, y):
    """Within-class over between-class scatter: trace(S_w) / trace(S_b). Smaller = tighter.

    S_w = sum_i ||h_i - mu_{y_i}||^2,  S_b = sum_c N_c ||mu_c - mu||^2 (their traces). The
    ratio is scale-free, so a model cannot look "tighter" just by shrinking its embeddings.
    """
    h = h.astype(np.float64)
    mu = h.mean(axis=0)
    classes = np.unique(y)
    means = np.stack([h[y == c].mean(axis=0) for c in classes])  # (C, K)
    counts = np.array([(y == c).sum() for c in classes])
    within = ((h - means[np.searchsorted(classes, y)]) ** 2).sum()
    between = (counts[:, None] * (means - mu) ** 2).sum()
    return float(within / max(between, 1e-12))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    """Write a figure atomically: a half-written PNG never appears under ``path``."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".") or "png", dpi=120,
                    bbox_inches="tight")
    _pyplot().close(fig)


def embedding_figure(panels, path, suptitle=None):
    """Side-by-side PCA scatter plots of embeddings coloured by class (paper Figure 1).

    panels : list of (title, h (N, K), y (N,)); each gets its own PCA.
    Returns the scatter ratio of each panel (computed in the full embedding space).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    ratios = []
    for ax, (title, h, y) in zip(axes[0], panels):
        coords, explained = pca_2d(h)
        ratio = scatter_ratio(h, y)
        ratios.append(ratio)
        points = ax.scatter(coords[:, 0], coords[:, 1], c=y, cmap="tab10", s=4, alpha=0.6,
                            vmin=-0.5, vmax=9.5, rasterized=True)
        ax.set_title(f"{title}\nwithin/between scatter = {ratio:.3f}", fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    fig.colorbar(points, ax=axes[0].tolist(), ticks=range(10), label="class")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1.04)  # above the two-line panel titles
    save_figure(fig, path)
    return ratios


def image_grid(rows, path, row_titles=None, col_titles=None):
    """A grid of 28x28 images: ``rows`` is a list of (M, 784) arrays, one per grid row."""
    plt = _pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, 1.45 * n_rows), squeeze=False)
    for i, images in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(images):
                ax.imshow(images[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
                if col_titles is not None:
                    ax.set_title(str(col_titles[i][j]), fontsize=8)
        if row_titles is not None:
            axes[i][0].text(-4, 14, row_titles[i], ha="right", va="center", fontsize=9)
    save_figure(fig, path)


def accuracy_curves(curves, path, title="accuracy vs eps"):
    """Line plot of accuracy (%) against eps; curves: {label: (eps_list, percent_list)}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (eps, acc) in curves.items():
        ax.plot(eps, acc, marker="o", label=label)
    ax.set_xlabel("eps (l-inf, pixel units in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    save_figure(fig, path)
