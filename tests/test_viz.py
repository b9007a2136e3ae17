"""helpers.viz: de-normalisation, overlay and signed-map scaling, grids, bars, and where figures go."""
import io

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


def test_heatmap_grid_scales_each_signed_map_on_its_own():
    pattern = np.random.default_rng(1).standard_normal((14, 14))
    maps = np.stack([pattern, 1000 * pattern])[None]  # one row: same pattern, 1000x the magnitude
    fig, axes = viz.heatmap_grid(None, maps, ["small", "large"], signed=True, image_column=False,
                                 scale="map")
    small, large = (ax.get_images()[-1] for ax in axes[0])
    np.testing.assert_allclose(small.get_array(), large.get_array(), rtol=1e-5)  # same colours
    assert small.get_clim() == (-1.0, 1.0)
    fig, axes = viz.heatmap_grid(None, maps, ["small", "large"], signed=True, image_column=False)
    small, large = (ax.get_images()[-1] for ax in axes[0])
    assert np.abs(small.get_array()).max() < 0.01 * large.get_clim()[1]  # one limit a row
    with pytest.raises(ValueError, match="scale"):
        viz.heatmap_grid(None, maps, ["small", "large"], signed=True, scale="column")


def test_signed_overlay_lets_the_image_show_where_relevance_is_small():
    fig, (a, b) = plt.subplots(1, 2)
    rel = np.zeros((14, 14))
    rel[3, 3], rel[7, 7] = 4.0, -4.0
    image = torch.rand(3, 28, 28)
    alone = viz.signed_map(a, rel, colorbar=False, limit=2.0)
    laid = viz.signed_overlay(b, rel, image, colorbar=False, limit=2.0)
    assert laid.get_clim() == alone.get_clim() == (-2.0, 2.0)
    assert alone.get_alpha() == 1.0  # the map alone is opaque
    alpha = laid.get_alpha()
    assert alpha.shape == (28, 28) and alpha.min() == 0 and alpha.max() == 1
    assert len(b.get_images()) == 2  # the grey image under the map


def test_method_grid_wraps_methods_and_mixes_signed_and_unsigned():
    rng = np.random.default_rng(0)
    maps = {name: torch.tensor(rng.standard_normal((2, 14, 14))) for name in "abcdefg"}
    fig, axes = viz.method_grid(torch.zeros(2, 3, 28, 28), maps, ["one", "two"], signed={"g"}, per_row=4,
                                outlines=torch.ones(2, 28, 28))
    assert axes.shape == (4, 4)  # 2 images x 2 rows of 4 panels (image + 7 methods)
    assert [ax.get_title() for ax in axes[:2].ravel()] == ["image", *"abcdefg"]
    assert axes[2, 0].get_xlabel() == "two"
    signed = axes[1, 3].get_images()[-1]
    assert signed.get_clim() == (-1.0, 1.0)  # each signed map divided by its own limit
    assert signed.get_cmap().name == viz.SIGNED_CMAP
    assert len(fig.axes) == 16 + 2  # a colour bar for each kind


def test_method_styles_differ_and_coinciding_curves_stay_visible():
    styles = viz.method_styles([f"m{i}" for i in range(12)])
    looks = {(tuple(s["color"]), s["marker"], s["linestyle"]) for s in styles.values()}
    assert len(looks) == 12 and len({s["marker"] for s in styles.values()}) == 12
    curves = {"m0": [1.0, 0.5, 0.1], "m1": [1.0, 0.5, 0.1001], "m2": [0.9, 0.2, 0.0]}
    assert viz.duplicates(curves) == {"m1": "m0"}
    fig, ax = plt.subplots()
    viz.plot_curves(ax, [0, 1, 2], curves, styles)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"m0", "m1 (= m0)", "m2"}
    assert lines["m1 (= m0)"].get_markerfacecolor() == "none"
    assert lines["m1 (= m0)"].get_markersize() > lines["m0"].get_markersize()


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
    fig, ax = plt.subplots()
    viz.topk_bars(ax, probs, list("abcde"), k=9, true_label=1)
    assert len(ax.patches) == 5  # k is limited to the number of classes
    labels = {t.get_text(): t for t in ax.texts}
    assert labels["60 %"].get_ha() == "right" and labels["60 %"].get_position()[0] < 0.6  # inside
    assert labels["10 %"].get_ha() == "left" and labels["10 %"].get_position()[0] > 0.1  # beside


def test_reliability_and_confidence_plots_draw():
    from helpers.predict import calibration_bins

    conf = np.linspace(0.05, 0.95, 40)
    correct = conf > 0.5
    fig, (a, b) = plt.subplots(1, 2)
    bins, ece = calibration_bins(conf, correct)
    viz.reliability_diagram(a, bins, ece, title="x")
    viz.confidence_histogram(b, conf, correct)
    assert "ECE" in a.get_title() and b.get_legend() is not None
    counts = [t for t in a.texts]
    assert sorted(int(t.get_text()) for t in counts) == sorted(bins.loc[bins["count"] > 0, "count"])
    assert all(t.get_rotation() == 0 and t.get_fontsize() >= 8 for t in counts)


def test_confidence_histogram_counts_predictions():
    conf = np.array([0.95] * 298 + [0.93, 0.15])
    correct = np.array([True] * 298 + [False, False])
    fig, ax = plt.subplots()
    viz.confidence_histogram(ax, conf, correct, bins=10)
    tops = [patch.get_y() + patch.get_height() for patch in ax.patches]
    assert max(tops) == 299  # 298 correct + 1 mistake stacked in the top bin, not two densities
    assert ax.get_ylabel() == "number of predictions"
    assert [t.get_text() for t in ax.texts] == ["1 \u2717", "1 \u2717"]  # too few to see: counted
    assert "incorrect (n=2" in ax.get_legend().get_texts()[1].get_text()


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
    for bad in ("line", "01_line.png", "1_line", "01 Line", "01_line/../x", "01_line/"):
        with pytest.raises(ValueError, match="01_what_it_shows"):
            viz.save(fig, bad)
    sub = viz.save(fig, "04_lrp/sample_1/heatmap")  # one folder a sample
    assert sub == tmp_path / "figures" / "04_lrp" / "sample_1" / "heatmap.png" and sub.exists()


def test_pngs_are_compact_and_reproducible(tmp_path):
    from PIL import Image

    def draw():
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.imshow(np.random.default_rng(0).random((64, 64)), cmap="inferno")
        ax.set_title("noise")
        return fig

    first, second = viz.png_bytes(draw()), viz.png_bytes(draw())
    assert first == second  # same figure, same bytes: a re-run changes no file
    fig = draw()
    kept = viz.png_bytes(fig)
    assert viz.png_bytes(fig) is kept  # shown right after saving: not rendered again
    fig.axes[0].set_title("changed")
    assert viz.png_bytes(fig) != kept
    image = Image.open(io.BytesIO(first))
    assert image.mode == "P" and len(image.getcolors()) <= viz.PALETTE_COLOURS
    assert image.width <= 4 * viz.DPI and image.height <= 3 * viz.DPI  # DPI dots per inch, cropped
    assert b"tEXt" not in first and b"iTXt" not in first and b"tIME" not in first  # no metadata
    fig, ax = plt.subplots()
    ax.plot([0, 1], color="red")
    flat = Image.open(viz.write_png(fig, tmp_path / "sub" / "line.png")).convert("RGB")
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=viz.DPI, bbox_inches="tight", facecolor="white")
    exact = np.asarray(Image.open(rendered).convert("RGB"), dtype=float)
    assert np.abs(np.asarray(flat) - exact).mean() < 0.5  # a plot loses next to nothing to the palette


def test_progress_bars_only_with_a_person(monkeypatch):
    monkeypatch.setenv("COURSE_BATCH", "1")
    assert viz.progress_bar(range(3)).disable and not viz.progress_enabled()
    assert not viz.progress_bar(range(3), show=True).disable
    monkeypatch.delenv("COURSE_BATCH")
    assert not viz.progress_bar(range(3)).disable
    assert viz.progress_bar(range(3), show=False).disable


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


def test_small_markers_keep_their_own_colours_beside_a_colour_map():
    """Ten categories drawn as small dots beside an image with a smooth colour map (thousands of
    colours): every category's colour must stay exact and distinct (the palette once merged two
    heads' hues into one)."""
    from PIL import Image

    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3))
    left.imshow(np.random.default_rng(0).random((64, 64)), cmap="viridis")
    hues = plt.get_cmap("tab10").colors
    for k, hue in enumerate(hues):
        right.scatter([k], [k], s=6, color=hue)
    image = Image.open(io.BytesIO(viz.png_bytes(fig))).convert("RGB")
    shown = {colour for _, colour in image.getcolors(1 << 16)}
    expected = {tuple(int(round(255 * c)) for c in hue) for hue in hues}
    assert expected <= shown, f"merged or shifted: {sorted(expected - shown)}"
