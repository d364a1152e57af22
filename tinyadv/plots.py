"""Figures: PCA of embeddings (paper Figure 1), image grids, accuracy-vs-eps curves, and the
one style every lesson's figures share.

matplotlib is imported lazily inside each function, so importing tinyadv never needs a display.
A script draws with the headless Agg backend (figures go to files, no window opens); inside a
notebook (Jupyter, VS Code, Colab) the notebook's own backend is kept and each figure is shown
in the notebook before it is closed, with a description in words as its alt text (what a
screen reader reads: ``figure_description``). Every figure has a title, written into the PNG
too with that description (``save_figure`` refuses a figure without a title; ``png_title`` and
``png_text`` read them back), and every figure is written atomically (temporary name, then
rename).

The shared style, so that a colour or a line means the same thing in every figure:

- colour = the model (a Table 1 row, or how a network was trained): ``model_colour``;
- line style and marker = the attack the images went through (clean, FGSM, PGD, invariance):
  ``attack_style``; in a bar chart the attack is a hatch (``ATTACK_HATCHES``);
- the paper's own numbers: the row's colour, hatched (``PAPER_HATCH``);
- digit classes: matplotlib's ten "tab10" colours, class c in colour c (``class_colour``);
- figures are laid out by matplotlib's constrained layout (``figure``), which keeps every
  label, title and colour bar clear of its neighbours; legends with many entries go beside
  the axes (``legend_beside``), where they cannot cover a data point.
"""
import base64
import html
import io
import os
import struct
import sys
import textwrap
import zlib

import numpy as np

from .fileio import atomic_path

__all__ = ["scatter_ratio", "pca_2d", "embedding_figure", "image_grid", "accuracy_curves",
           "figure", "save_figure", "figure_title", "figure_description", "png_title", "png_text",
           "in_notebook", "caption",
           "legend_beside", "model_colour", "attack_style",
           "class_colour", "MODEL_COLOURS", "ATTACK_STYLES", "ATTACK_HATCHES", "PAPER_HATCH",
           "REFERENCE_COLOUR"]

# One colour per model, in every lesson. The keys are tinyadv.train.MODELS's row names plus the
# other networks the lessons train; the uniform-init FGSM-trained network of lesson 08 is the
# Baseline recipe, so it shares the Baseline's colour.
MODEL_COLOURS = {
    "standard": "#444444",                  # no adversarial training (lessons 01, 03, 04)
    "baseline": "tab:blue",                 # FGSM adversarial training at eps 0.1
    "baseline+mls": "tab:orange",
    "baseline+mls+mli": "tab:green",
    "baseline+mls+mli(oracle)": "tab:purple",
    "fgsm eps 0.3": "tab:brown",            # FGSM training at eps 0.3 (lesson 03)
    "he init": "tab:red",                   # the Baseline with He initialisation (lesson 08)
    "authors cnn": "tab:olive",             # the paper's authors' CNN, FGSM-trained (lesson 10)
}
# One line style and marker per attack (the images a number is measured on).
ATTACK_STYLES = {
    "clean": {"ls": ":", "marker": "o"},
    "FGSM": {"ls": "-", "marker": "o"},
    "PGD": {"ls": "--", "marker": "s"},
    "invariance": {"ls": "-.", "marker": "^"},
}
ATTACK_HATCHES = {"clean": "", "FGSM": "", "PGD": "//", "invariance": ".."}
PAPER_HATCH = "xx"  # a bar of the paper's own Table 1, beside ours in the row's colour
REFERENCE_COLOUR = "grey"  # thresholds and guides, never data


def model_colour(name):
    """The colour of a model in every lesson's figures (KeyError for a name without one)."""
    return MODEL_COLOURS[name]


def attack_style(name):
    """Line style and marker of an attack: ``ax.plot(x, y, **attack_style("PGD"))``.

    "PGD-10", "PGD-50" and the like take PGD's style.
    """
    key = "PGD" if name.upper().startswith("PGD") else name
    return dict(ATTACK_STYLES[key])


def class_colour(c):
    """The colour of digit class c (0-9): the same in the toy of lesson 05 and in Figure 1."""
    return _pyplot().get_cmap("tab10")(int(c) % 10)


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


def in_notebook():
    """True inside a Jupyter kernel (a notebook in Jupyter, VS Code or Colab), where figures
    can be shown inline; False in a script, even one run from IPython's terminal."""
    ipython = sys.modules.get("IPython")  # imported only if a kernel is running us
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _pyplot():
    import matplotlib
    if not in_notebook():
        matplotlib.use("Agg")  # a script: files only, never a window
    import matplotlib.pyplot as plt
    return plt


def figure(nrows=1, ncols=1, **kwargs):
    """``plt.subplots`` with constrained layout: labels, titles and colour bars never overlap.

    Returns (fig, axes) as plt.subplots does (``squeeze`` and ``figsize`` pass through).
    """
    return _pyplot().subplots(nrows, ncols, layout="constrained", **kwargs)


def legend_beside(ax, **kwargs):
    """A legend to the right of the axes, outside them: it covers no data point."""
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0,
               "fontsize": 8}
    options.update(kwargs)
    return ax.legend(**options)


def caption(fig, text, width=110, y=0.0):
    """A caption under the figure (what the colours or the grey levels mean), wrapped.

    y : where its top goes, in figure coordinates (0: the figure's bottom edge; the saved
    image grows to hold it).
    """
    wrapped = "\n".join(textwrap.fill(part, width) for part in text.split("\n"))
    fig.text(0.5, y, wrapped, ha="center", va="top", fontsize=8)


def figure_title(fig):
    """What a figure says it shows: its suptitle, else the title of its only axes ('' if none)."""
    if hasattr(fig, "get_suptitle"):  # matplotlib 3.8 and later
        suptitle = fig.get_suptitle().strip()
    else:
        suptitle = fig._suptitle.get_text().strip() if fig._suptitle is not None else ""
    if suptitle:
        return suptitle
    titled = [ax.get_title().strip() for ax in fig.axes if ax.get_visible() and ax.axison]
    return titled[0] if len(titled) == 1 else ""


_MARKER_WORDS = {"o": "circles", "s": "squares", "D": "diamonds", "d": "thin diamonds",
                 "^": "triangles", "v": "downward triangles", "x": "crosses", "+": "plus signs",
                 "*": "stars", ".": "dots"}
_LINE_WORDS = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dotted"}
DPI = 120  # the PNG files'; shown at 100 pixels an inch in a notebook (sharp on a fine screen)


def _colour_words(colour):
    """A colour as a reader would say it: 'olive' for tab:olive, 'dark grey' for #444444."""
    from matplotlib.colors import CSS4_COLORS, to_hex

    if isinstance(colour, str) and not colour.startswith("#"):
        if colour[:1] == "C" and colour[1:].isdigit():  # matplotlib's colour cycle
            return f"colour {colour[1:]} of the cycle"
        return colour.replace("tab:", "")
    code = to_hex(colour)
    named = [name for name, value in CSS4_COLORS.items() if value.lower() == code]
    if named:
        return named[0]
    red, green, blue = (int(code[i:i + 2], 16) for i in (1, 3, 5))
    if red == green == blue:
        return "dark grey" if red < 0x60 else "light grey" if red > 0xb0 else "grey"
    return code


def _words_for_line(line):
    """'CNN, FGSM: olive, solid line, circles' for a labelled line of a plot."""
    colour = _colour_words(line.get_color())
    style = _LINE_WORDS.get(line.get_linestyle(), "")
    look = [colour, f"{style} line" if style else "no line"]
    marker = _MARKER_WORDS.get(str(line.get_marker()))
    if marker:
        look.append(marker)
    return f"{line.get_label()}: {', '.join(look)}"


def figure_description(fig):
    """The figure in words, for a reader who cannot see it: its title, then each panel's
    title, axis labels, images and labelled lines (with colour, line style and marker).

    Shown as the alt text of the figure in a notebook and written into the PNG
    (``Description``); measured from the figure, so it says what is drawn.
    """
    title = " ".join(figure_title(fig).split())
    parts = [title]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison
              and ax.get_label() != "<colorbar>"]
    for number, ax in enumerate(panels, 1):
        panel_title = " ".join(ax.get_title().split())
        words = [panel_title] if panel_title and panel_title != title else []
        if ax.get_xlabel():
            words.append(f"x: {ax.get_xlabel()}")
        if ax.get_ylabel():
            words.append(f"y: {ax.get_ylabel()}")
        for image in ax.get_images():
            rows, columns = image.get_array().shape[:2]
            words.append(f"an image of {rows} x {columns} cells")
        lines = [_words_for_line(line) for line in ax.get_lines()
                 if not line.get_label().startswith("_")]
        if lines:
            words.append("lines: " + "; ".join(lines))
        if words and len(panels) > 1:
            parts.append(f"Panel {number}: " + "; ".join(words))
        elif words:
            parts.append("; ".join(words))
    grid = [ax for ax in fig.axes if not ax.axison and ax.get_images()]  # image_grid's cells
    if grid:
        titles = [" ".join(ax.get_title().split()) for ax in grid if ax.get_title().strip()]
        parts.append(f"{len(grid)} images in a grid" + (
            f", {len(titles)} of them titled: " + "; ".join(titles) if titles else ""))
    return ". ".join(part.rstrip(".") for part in parts if part) + "."


def _show_inline(png, description):
    """Show a PNG in the notebook with ``description`` as its alt text: an <img> where the
    front end renders HTML (Jupyter, VS Code, Colab), the PNG itself elsewhere."""
    from IPython.display import display  # present whenever a notebook kernel is

    width = struct.unpack(">I", png[16:20])[0] * 100 // DPI  # the IHDR chunk's width
    data = base64.b64encode(png).decode("ascii")
    tag = (f'<img src="data:image/png;base64,{data}" alt="{html.escape(description)}" '
           f'width="{width}" style="max-width: 100%">')
    display({"text/html": tag, "image/png": data, "text/plain": description}, raw=True,
            metadata={"image/png": {"width": width}})


def save_figure(fig, path):
    """Write a figure atomically (a half-written PNG never appears under ``path``), with its
    title and its description in words (``figure_description``) in the PNG's metadata; in a
    notebook, show it there first, that description as its alt text. Then close it.

    Raises ValueError for a figure without a title (``fig.suptitle``, or ``ax.set_title`` on
    a figure of one axes): a reader must be told what a figure shows.
    """
    title = figure_title(fig)
    if not title:
        _pyplot().close(fig)
        raise ValueError(f"save_figure: expected a figure with a title (fig.suptitle(...)), "
                         f"got an untitled figure for {path}")
    description = figure_description(fig)
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    metadata = ({"Title": " ".join(title.split()), "Description": description}
                if fmt == "png" else None)
    image = io.BytesIO()
    fig.savefig(image, format=fmt, dpi=DPI, bbox_inches="tight", metadata=metadata)
    if in_notebook():
        if fmt != "png":
            shown = io.BytesIO()
            fig.savefig(shown, format="png", dpi=DPI, bbox_inches="tight")
        _show_inline((image if fmt == "png" else shown).getvalue(), description)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(image.getvalue())
    _pyplot().close(fig)


def png_title(path):
    """The Title a PNG carries in its metadata (a tEXt, zTXt or iTXt chunk), or None."""
    return png_text(path, "Title")


def png_text(path, key):
    """The text a PNG carries under ``key`` in its metadata (a tEXt, zTXt or iTXt chunk,
    e.g. "Title" or "Description"), or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"png_text: expected a PNG file, got {path}")
    at = 8
    wanted = key.encode("latin-1")
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        at += 12 + length  # length, type, body, CRC
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        name, _, rest = body.partition(b"\0")
        if name != wanted:
            continue
        if kind == b"tEXt":
            return rest.decode("latin-1")
        if kind == b"zTXt":  # compression method byte, then zlib data
            return zlib.decompress(rest[1:]).decode("latin-1")
        compressed, rest = rest[0], rest[2:]  # iTXt: flag, method, language, key, text
        text = rest.split(b"\0", 2)[2]
        return (zlib.decompress(text) if compressed else text).decode("utf-8")
    return None


def embedding_figure(panels, path, suptitle):
    """Side-by-side PCA scatter plots of embeddings coloured by class (paper Figure 1).

    panels : list of (title, h (N, K), y (N,)); each gets its own PCA, so the variance shares
    on its axes are those of its own embeddings. suptitle : what the whole figure shows.
    Returns the scatter ratio of each panel (computed in the full embedding space).
    """
    fig, axes = figure(1, len(panels), figsize=(5.2 * len(panels) + 1.0, 4.8), squeeze=False)
    ratios = []
    for ax, (title, h, y) in zip(axes[0], panels):
        coords, explained = pca_2d(h)
        ratio = scatter_ratio(h, y)
        ratios.append(ratio)
        points = ax.scatter(coords[:, 0], coords[:, 1], c=y, cmap="tab10", s=4, alpha=0.6,
                            vmin=-0.5, vmax=9.5, rasterized=True)
        ax.set_title(f"{title}\nwithin/between scatter = {ratio:.3f}", fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of this panel's variance)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of this panel's variance)")
    fig.colorbar(points, ax=axes[0].tolist(), ticks=range(10), label="class")
    fig.suptitle(suptitle, fontsize=11)
    save_figure(fig, path)
    return ratios


def image_grid(rows, path, title, row_titles=None, col_titles=None, highlight=None, note=None):
    """A grid of 28x28 images: ``rows`` is a list of (M, 784) arrays, one per grid row.

    title : what the grid shows (above it, and in the PNG's metadata).
    highlight : like col_titles, booleans: a True cell's title is drawn in red and bold (a
    wrong prediction, say). note : a caption under the grid (what the grey levels mean).
    """
    plt = _pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    height = 1.45 * n_rows
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, height), squeeze=False)
    for i, images in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(images):
                ax.imshow(images[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
                if col_titles is not None:
                    marked = highlight is not None and bool(highlight[i][j])
                    ax.set_title(str(col_titles[i][j]), fontsize=8,
                                 color="tab:red" if marked else "black",
                                 fontweight="bold" if marked else "normal")
        if row_titles is not None:
            axes[i][0].text(-4, 14, row_titles[i], ha="right", va="center", fontsize=9)
    if note:  # just under the last row of images
        bottom = min(ax.get_position().y0 for ax in axes.flat)
        caption(fig, note, width=max(60, int(14 * n_cols)), y=bottom - 0.02)
    top = max(ax.get_position().y1 for ax in axes.flat)  # above the first row's titles
    fig.suptitle(textwrap.fill(title, max(50, int(15 * n_cols)), break_on_hyphens=False),
                 y=top + 0.3 / height,
                 va="bottom", fontsize=10)
    save_figure(fig, path)


def accuracy_curves(curves, path, title):
    """Line plot of accuracy (%) against eps, titled ``title`` (what models, which images).

    curves : {(model, attack, label): (eps_list, percent_list)} -- colour from
    ``model_colour``, line style from ``attack_style``, so a model keeps its colour and an
    attack its line in every lesson (label: the legend's words; ``(model, attack)`` alone
    labels the line "model, attack") -- or {label: (eps_list, percent_list)} for plain lines.
    """
    fig, ax = figure(figsize=(7.2, 4))
    for key, (eps, acc) in curves.items():
        if isinstance(key, tuple):
            model, attack = key[:2]
            label = key[2] if len(key) > 2 else f"{model}, {attack}"
            ax.plot(eps, acc, color=model_colour(model), label=label, **attack_style(attack))
        else:
            ax.plot(eps, acc, marker="o", label=key)
    ax.set_xlabel("eps (l-inf, pixel units in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    legend_beside(ax)
    ax.set_title(textwrap.fill(title, 75, break_on_hyphens=False), fontsize=10)
    save_figure(fig, path)
