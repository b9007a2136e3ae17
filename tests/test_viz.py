"""helpers.viz: de-normalisation, overlay and signed-map scaling, grids, bars, and where figures go."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_to_image_undoes_the_processor_normalisation():
    image = torch.rand(2, 3, 8, 8)
    out = viz.to_image((image - 0.5) / 0.5)
    assert out.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(out, image.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert viz.to_image(torch.full((3, 4, 4), 5.0)).max() == 1.0
    with pytest.raises(ValueError):
        viz.to_image(torch.zeros(4, 4))


def test_overlay_upsamples_and_normalises_the_map():
    fig, ax = plt.subplots()
    heat = torch.arange(4.0).reshape(2, 2) * 7 - 3
    handle = viz.overlay(ax, torch.zeros(3, 32, 32), heat)
    shown = handle.get_array()
    assert shown.shape == (32, 32)
    assert shown.min() == pytest.approx(0) and shown.max() == pytest.approx(1)
    assert shown[0, 0] < shown[-1, -1]  # order kept
    assert viz.normalise(np.ones((3, 3))).max() == 0


def test_signed_map_is_centred_and_symmetric():
    fig, ax = plt.subplots()
    rel = np.zeros((14, 14))
    rel[0, 0], rel[1, 1:5] = 5.0, -2.0
    handle = viz.signed_map(ax, rel, percentile=100)
    assert handle.get_clim() == (-5.0, 5.0)
    assert len(fig.axes) == 2  # the colour bar
    handle = viz.signed_map(ax, rel, image=torch.zeros(3, 28, 28), colorbar=False)
    assert handle.get_array().shape == (28, 28)
    lo, hi = handle.get_clim()
    assert hi > 0 and lo == -hi


def test_heatmap_grid_shape_titles_and_labels():
    maps = np.random.default_rng(0).random((2, 3, 14, 14))
    fig, axes = viz.heatmap_grid(torch.zeros(2, 3, 56, 56), maps, ["a", "b", "c"],
                                 row_labels=[viz.sample_label("cat", "cat", 0.9),
                                             viz.sample_label("cat", "dog", 0.51)], title="t")
    assert axes.shape == (2, 4)
    assert [ax.get_title() for ax in axes[0]] == ["image", "a", "b", "c"]
    assert "dog (51 %)" in axes[1, 0].get_xlabel()
    fig, axes = viz.heatmap_grid(None, -maps, ["a", "b", "c"], signed=True, image_column=False,
                                 row_labels=["layer 1", "layer 2"])
    assert axes.shape == (2, 3) and axes[1, 0].get_ylabel() == "layer 2"
    with pytest.raises(ValueError, match="column titles"):
        viz.heatmap_grid(torch.zeros(2, 3, 8, 8), maps, ["a"])


def test_topk_bars_marks_the_true_class():
    fig, ax = plt.subplots()
    probs = np.array([0.1, 0.6, 0.05, 0.2, 0.05])
    viz.topk_bars(ax, probs, list("abcde"), k=3, true_label=3)
    bars = ax.patches
    names = {y: t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}
    assert [names[y] for y in sorted(names, reverse=True)] == ["b", "d", "a"]  # most probable on top
    heights = sorted((b.get_y(), b.get_width()) for b in bars)
    assert [w for _, w in heights] == pytest.approx([0.1, 0.2, 0.6])  # bottom to top: ascending
    colours = {round(b.get_width(), 2): matplotlib.colors.to_hex(b.get_facecolor()) for b in bars}
    assert colours[0.2] == viz.CORRECT_COLOUR and colours[0.6] == viz.WRONG_COLOUR
    fig, ax = plt.subplots()
    viz.topk_bars(ax, probs, list("abcde"), k=2, true_label=2)
    assert "rank 4" in ax.get_xlabel()


def test_reliability_and_confidence_plots_draw():
    from helpers.predict import calibration_bins

    conf = np.linspace(0.05, 0.95, 40)
    correct = conf > 0.5
    fig, (a, b) = plt.subplots(1, 2)
    bins, ece = calibration_bins(conf, correct)
    viz.reliability_diagram(a, bins, ece, title="x")
    viz.confidence_histogram(b, conf, correct)
    assert "ECE" in a.get_title() and b.get_legend() is not None


def test_save_writes_png_to_ci_folder_only_at_ci_scale(tmp_path, monkeypatch):
    monkeypatch.setattr(viz, "FIGURES", tmp_path / "figures")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    monkeypatch.setenv("COURSE_SCALE", "ci")
    path = viz.save(fig, "01_line")
    assert path == tmp_path / "figures" / "_ci" / "01_line.png" and path.stat().st_size > 1000
    assert (path.parent / ".gitignore").read_text().strip() == "*"
    monkeypatch.setenv("COURSE_SCALE", "full")
    assert viz.save(fig, "01_line") == tmp_path / "figures" / "01_line.png"
    for bad in ("line", "01_line.png", "1_line", "01 Line"):
        with pytest.raises(ValueError, match="01_what_it_shows"):
            viz.save(fig, bad)


def test_sample_label_marks_right_and_wrong():
    label = viz.sample_label("goldfish, Carassius auratus", "goldfish, Carassius auratus", 0.876)
    assert label == "true: goldfish\npred: goldfish (88 %) \u2713"
    assert viz.sample_label("cat", "dog", 0.5).endswith("\u2717")


def test_live_widgets_only_with_a_person(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_BATCH", "1")
    assert viz.live_widgets() is None
    assert "static view" in capsys.readouterr().out
    monkeypatch.delenv("COURSE_BATCH")
    import ipywidgets

    assert viz.live_widgets() is ipywidgets
