"""The shared figure style: a colour means one model and a line style one attack, everywhere.

Lessons colour every model through plots.model_colour and style every attack through
plots.attack_style; these tests hold the two tables to that promise (a Table 1 row added to
train.MODELS without a colour, or two models given one colour, fails here, not in a figure).
"""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
from matplotlib.colors import to_rgba  # noqa: E402

from tinyadv import plots  # noqa: E402
from tinyadv.train import MODELS  # noqa: E402


def test_every_table1_row_has_a_colour_and_no_two_models_share_one():
    for row in MODELS:
        assert row in plots.MODEL_COLOURS, row
    colours = [to_rgba(c) for c in plots.MODEL_COLOURS.values()]
    assert len(set(colours)) == len(colours), plots.MODEL_COLOURS
    assert to_rgba(plots.REFERENCE_COLOUR) not in colours  # grey guides are never a model


def test_no_two_attacks_share_a_line_or_a_hatch():
    looks = [(s["ls"], s["marker"]) for s in plots.ATTACK_STYLES.values()]
    assert len(set(looks)) == len(looks)
    hatches = [plots.ATTACK_HATCHES[a] for a in ("FGSM", "PGD", "invariance")]
    assert len(set(hatches)) == len(hatches) and plots.PAPER_HATCH not in hatches
    assert plots.attack_style("PGD-10") == plots.attack_style("PGD")


def test_accuracy_curves_colours_by_model_and_styles_by_attack(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig))
    plots.accuracy_curves({("baseline", "FGSM", "a"): ([0, 0.1], [90, 60]),
                           ("baseline", "PGD", "b"): ([0, 0.1], [90, 50]),
                           ("he init", "PGD", "c"): ([0, 0.1], [90, 40])}, tmp_path / "x.png",
                          title="t")
    lines = {line.get_label(): line for line in drawn[0].axes[0].get_lines()}
    assert to_rgba(lines["a"].get_color()) == to_rgba(lines["b"].get_color())
    assert to_rgba(lines["b"].get_color()) != to_rgba(lines["c"].get_color())
    assert lines["b"].get_linestyle() == lines["c"].get_linestyle() != lines["a"].get_linestyle()


def test_save_figure_refuses_an_untitled_figure_and_writes_the_title_into_the_png(tmp_path):
    fig, axes = plots.figure(1, 2)
    with pytest.raises(ValueError, match="save_figure: expected a figure with a title"):
        plots.save_figure(fig, str(tmp_path / "untitled.png"))
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file
    fig, ax = plots.figure()
    ax.set_title("one axes: its title is the figure's")
    plots.save_figure(fig, str(tmp_path / "one.png"))
    assert plots.png_title(str(tmp_path / "one.png")) == "one axes: its title is the figure's"
    fig, axes = plots.figure(1, 2)
    axes[0].set_title("a panel's title is not the figure's")
    axes[1].set_title("nor is another's")
    with pytest.raises(ValueError):
        plots.save_figure(fig, str(tmp_path / "panels.png"))
    fig.suptitle("Lesson 00: ε = 0.1,\n two lines")
    plots.save_figure(fig, str(tmp_path / "panels.png"))
    assert plots.png_title(str(tmp_path / "panels.png")) == "Lesson 00: ε = 0.1, two lines"
    plots.image_grid([np.zeros((2, 784), np.float32)], str(tmp_path / "grid.png"), title="a grid")
    assert plots.png_title(str(tmp_path / "grid.png")) == "a grid"


def test_a_figure_is_described_in_words_in_the_png_and_as_alt_text_in_a_notebook(tmp_path,
                                                                                 monkeypatch):
    """save_figure writes the figure's description (title, panels, axes, each labelled line's
    colour, line style and marker) into the PNG, and in a notebook shows the PNG with that
    description as its alt text -- an <img alt=...> for front ends that render HTML, the PNG
    itself for the others."""
    import sys
    import types

    fig, (left, right) = plots.figure(1, 2)
    left.imshow(np.zeros((3, 5)))
    left.set_title("a kernel")
    for model, marker in (("baseline", "o"), ("authors cnn", "D")):
        right.plot([0, 0.1], [90, 50], color=plots.model_colour(model), label=model,
                   **dict(plots.attack_style("FGSM"), marker=marker))
    right.set_xlabel("eps")
    right.set_ylabel("accuracy (%)")
    right.legend()
    fig.suptitle("Lesson 00: two panels & <a quote>")
    shown = []
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    display = types.ModuleType("IPython.display")
    display.display = lambda bundle, raw=False, metadata=None: shown.append((bundle, raw))
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    plots.save_figure(fig, str(tmp_path / "two.png"))

    described = plots.png_text(str(tmp_path / "two.png"), "Description")
    assert described.startswith("Lesson 00: two panels & <a quote>. Panel 1: a kernel")
    assert "an image of 3 x 5 cells" in described and "x: eps; y: accuracy (%)" in described
    assert ("lines: baseline: blue, solid line, circles; authors cnn: olive, solid line, "
            "diamonds") in described
    [(bundle, raw)] = shown
    assert raw and set(bundle) == {"text/html", "image/png", "text/plain"}
    assert 'alt="Lesson 00: two panels &amp; &lt;a quote&gt;. Panel 1' in bundle["text/html"]
    with open(tmp_path / "two.png", "rb") as f:  # the same image as the file
        import base64
        assert base64.b64decode(bundle["image/png"]) == f.read()
    assert bundle["text/plain"] == described

    fig, ax = plots.figure()  # one axes: its title is the figure's, said once
    ax.set_title("one panel")
    ax.plot([0, 1], [1, 0], color=plots.model_colour("standard"), label="a net", ls="--")
    ax.legend()
    assert plots.figure_description(fig) == "one panel. lines: a net: dark grey, dashed line."
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_the_authors_cnn_and_the_baseline_mlp_differ_in_lightness_not_only_in_hue():
    """Lesson 10 draws these two models side by side: their colours must stay apart for a
    reader who cannot tell hues apart (a difference in lightness of at least 0.25 of the
    scale), on top of the markers the lesson gives them."""
    def lightness(colour):
        r, g, b, _ = to_rgba(colour)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    gap = abs(lightness(plots.model_colour("authors cnn")) - lightness(plots.model_colour("baseline")))
    assert gap >= 0.25, gap
