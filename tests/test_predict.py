"""helpers.predict on a tiny random ViT and a small fake dataset (no files, no network)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification

from helpers import predict as P
from helpers.models import resolve_precision

HEAD = 6  # the model's head; the dataset uses only 3 of its classes
HEAD_INDICES = [1, 3, 5]


class FakeDataset(torch.utils.data.Dataset):
    """Items shaped like the course's datasets; item ``bad`` is unreadable (None)."""

    class_names = ["ant", "bee", "cat"]
    head_indices = HEAD_INDICES

    def __init__(self, n=9, bad=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 32, 32, generator=g)
        self.ids = [f"img{i:03d}" for i in range(n)]
        self.bad = bad

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        if i == self.bad:
            return None
        k = i % 3
        return {"pixel_values": self.images[i], "label": HEAD_INDICES[k], "class_idx": k,
                "class_name": self.class_names[k], "id": self.ids[i]}


class CountingViT(ViTForImageClassification):
    """Counts the images it has classified."""

    seen = 0

    def forward(self, pixel_values=None, **kwargs):
        type(self).seen += len(pixel_values)
        return super().forward(pixel_values=pixel_values, **kwargs)


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=16, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=HEAD)
    CountingViT.seen = 0
    return CountingViT(config).eval()


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))


def test_masked_argmax_ignores_classes_outside_the_dataset(model):
    with torch.no_grad():
        model.classifier.bias[0] = 100.0  # class 0 is not one of the dataset's classes
    ds = FakeDataset()
    df = P.predict(model, ds, batch_size=4, progress=False)
    assert (df["pred_1k"] == 0).all() and not df["correct_1k"].any()
    with torch.no_grad():
        logits = model(pixel_values=ds.images).logits
    expected = torch.tensor(HEAD_INDICES)[logits[:, HEAD_INDICES].argmax(-1)]
    assert df["pred"].tolist() == expected.tolist()
    assert df["pred"].isin(HEAD_INDICES).all()
    probs = logits[:, HEAD_INDICES].softmax(-1).max(-1).values
    np.testing.assert_allclose(df["confidence"], probs.numpy(), rtol=1e-5)
    assert (df["correct"] == (df["pred"] == df["label"])).all()
    assert df["pred_name"].tolist() == [ds.class_names[HEAD_INDICES.index(p)] for p in df["pred"]]


def test_top5_is_limited_to_the_dataset_classes(model):
    df = P.predict(model, FakeDataset(), progress=False)
    top = df["top5"].str.split().apply(lambda t: [int(x) for x in t])
    assert top.apply(len).eq(3).all() and top.apply(lambda t: set(t) == set(HEAD_INDICES)).all()
    assert df["correct_top5"].all()  # with 3 classes every label is in the top 5
    assert (top.str[0] == df["pred"]).all()


def test_unreadable_images_are_skipped(model):
    with pytest.warns(UserWarning, match="img004"):
        df = P.predict(model, FakeDataset(bad=4), batch_size=4, progress=False)
    assert len(df) == 8 and "img004" not in set(df["id"])


def test_cache_hit_does_not_call_the_model(model):
    ds = FakeDataset()
    first = P.load_or_predict(model, ds, world="offline", batch_size=4, progress=False)
    assert CountingViT.seen == len(ds)
    again = P.load_or_predict(model, ds, world="offline", batch_size=4, progress=False)
    assert CountingViT.seen == len(ds)
    pd.testing.assert_frame_equal(first, again)
    assert list(P.cache_dir("offline").glob("predictions_*.csv"))


def test_cache_computes_only_missing_ids(model):
    small, full = FakeDataset(n=5), FakeDataset(n=9)
    P.load_or_predict(model, small, world="offline", key="k", progress=False)
    df = P.load_or_predict(model, full, world="offline", key="k", progress=False)
    assert CountingViT.seen == 9  # 5, then only the 4 new ids
    assert df["id"].tolist() == full.ids
    pd.testing.assert_frame_equal(df, P.predict(model, full, progress=False))


def _fake_predictions(n=60, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"x{i}" for i in range(n)], "class_idx": rng.integers(0, 10, n),
                         "correct": rng.random(n) < 0.5})


def test_selection_is_balanced_deterministic_and_spread_over_classes():
    df = _fake_predictions()
    a = P.select_samples(df, 4, 4, seed=3)
    b = P.select_samples(df, 4, 4, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a["group"].value_counts().to_dict() == {"correct": 4, "incorrect": 4}
    assert (a["correct"] == (a["group"] == "correct")).all()
    for _, group in a.groupby("group"):
        assert group["class_idx"].is_unique
    assert not a["id"].equals(P.select_samples(df, 4, 4, seed=4)["id"])


def test_selection_refuses_to_invent_samples():
    with pytest.raises(ValueError, match="incorrect"):
        P.select_samples(_fake_predictions().assign(correct=True), 2, 1)


def test_selection_round_trips_through_json():
    sel = P.select_samples(_fake_predictions(), 2, 2, seed=0)
    path = P.save_selection(sel, "offline", {"split": "adversarial", "n_per_class": 3, "seed": 0})
    assert path.parent == P.cache_dir("offline")
    payload = json.loads(path.read_text())
    assert payload["dataset"]["n_per_class"] == 3
    assert [row["id"] for row in payload["rows"]] == sel["id"].tolist()


def test_calibration_bins_and_ece():
    conf = np.full(100, 0.9)
    bins, ece = P.calibration_bins(conf, np.arange(100) < 50)
    assert ece == pytest.approx(0.4)
    assert bins["count"].sum() == 100 and bins.loc[8, "count"] == 100
    confidence = np.r_[np.full(10, 0.75), np.full(10, 0.25)]  # accuracies 0.8 and 0.3: gaps 0.05
    _, ece = P.calibration_bins(confidence, np.r_[np.arange(10) < 8, np.arange(10) < 3])
    assert ece == pytest.approx(0.05)


def test_accuracy_tables():
    df = pd.DataFrame({"class_name": ["a", "a", "b", "b"], "correct": [True, True, False, True],
                       "correct_1k": [True, False, False, False], "correct_top5": [True] * 4,
                       "confidence": [0.9, 0.8, 0.7, 0.6]})
    table = P.accuracy_table(df)
    assert table["top-1 %"].tolist() == [75.0, 25.0]
    per_class = P.per_class_accuracy(df)
    assert per_class.index.tolist() == ["b", "a"] and per_class["accuracy"].tolist() == [0.5, 1.0]


def test_load_selection_rebuilds_the_dataset_and_follows_the_model(model, monkeypatch):
    import helpers.world

    monkeypatch.setattr(helpers.world, "load_dataset", lambda world=None, processor=None, **kw: FakeDataset())
    df = P.load_or_predict(model, FakeDataset(), world="offline", progress=False)
    chosen = P.select_samples(df.assign(correct=[True, False] * 4 + [True]), 2, 2, seed=0)
    P.save_selection(chosen, "offline", {"split": "adversarial"}, model=model)
    rows, pixels, _ = P.load_selection("offline", model=model, n_correct=1, n_incorrect=1)
    assert rows["id"].tolist() == chosen["id"].tolist()  # kept: same model
    positions = [FakeDataset().ids.index(i) for i in rows["id"]]
    assert torch.equal(pixels, FakeDataset().images[positions])
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # "retrained": the selection is made again
    rows, pixels, _ = P.load_selection("offline", model=model, n_correct=1, n_incorrect=1)
    assert len(rows) == 2 and len(pixels) == 2


def test_a_batch_of_only_unreadable_images_leaves_a_usable_cache(model):
    """Regression: an empty frame appended to the cache turned `confidence` into object dtype and
    the next run's `nlargest` raised."""
    ds = FakeDataset(n=5, bad=4)
    P.load_or_predict(model, ds, world="offline", batch_size=4, progress=False)
    for _ in range(2):  # the unreadable image is tried again, alone in its batch
        df = P.load_or_predict(model, ds, world="offline", batch_size=4, progress=False)
        assert len(df) == 4 and df["confidence"].dtype == float and df["correct"].dtype == bool
        assert len(df.nlargest(2, "confidence")) == 2


def test_cache_follows_course_data_dir(model, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "drive"))
    P.load_or_predict(model, FakeDataset(), world="offline", progress=False)
    assert list((tmp_path / "drive" / "cache" / "offline").glob("predictions_*_fp32.csv"))


def test_cached_bf16_predictions_agree_with_probabilities_recomputed_in_the_same_precision(model):
    """The GPU path (bf16 autocast on CUDA), rehearsed with CPU bf16 autocast: what is cached and
    what is compared with it later go through one precision setting."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8)  # large activations: bf16 rounding shows in the probabilities
    ds = FakeDataset(n=30, seed=2)
    df = P.load_or_predict(model, ds, world="offline", precision="bf16", progress=False)
    bf16 = P.masked_probs(model, ds.images, HEAD_INDICES, precision="bf16").max(-1).values.numpy()
    np.testing.assert_allclose(bf16, df["confidence"].to_numpy(), atol=1e-6)
    fp32 = P.masked_probs(model, ds.images, HEAD_INDICES, precision="fp32").max(-1).values.numpy()
    assert np.abs(fp32 - df["confidence"].to_numpy()).max() > 1e-4, "bf16 must differ to test this"
    assert resolve_precision("auto", "cpu") == "fp32"
    assert (P.cache_dir("offline") / f"predictions_{P.cache_key(model, ds, 'bf16')}.csv").exists()


def test_auto_precision_on_a_gpu_is_bf16_where_native_else_fp16(monkeypatch):
    """A T4 (Colab's free GPU) only emulates bfloat16, far slower than float16."""
    import helpers.models

    monkeypatch.delenv("COURSE_PRECISION", raising=False)
    for native, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(helpers.models, "_native_bf16", lambda device, native=native: native)
        assert resolve_precision("auto", "cuda") == expected
        assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv("COURSE_PRECISION", "fp16")
    assert resolve_precision("auto", "cpu") == "fp16"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_check_cached_accepts_this_models_predictions_and_refuses_another_models(model, precision):
    ds = FakeDataset(n=12)
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # decided predictions, as a trained model makes
    df = P.load_or_predict(model, ds, world="offline", precision=precision, progress=False)
    probs = P.check_cached(model, ds.images, df, HEAD_INDICES, precision=precision)
    assert probs.shape == (12, 3)
    assert P.check_cached(model, ds.images.flip(0), df[::-1], HEAD_INDICES, precision=precision) is not None
    with torch.no_grad():
        model.classifier.weight[HEAD_INDICES] *= -1  # another model: arg-maxes move
    with pytest.raises(AssertionError, match="not this model's"):
        P.check_cached(model, ds.images, df, HEAD_INDICES, precision=precision)


def test_selected_samples_bundle_what_the_notebooks_explain(model, monkeypatch):
    import helpers.world

    monkeypatch.setattr(helpers.world, "load_dataset", lambda world=None, processor=None, **kw: FakeDataset())
    df = P.load_or_predict(model, FakeDataset(), world="offline", progress=False)
    chosen = P.select_samples(df.assign(correct=[True, False] * 4 + [True]), 1, 1, seed=0)
    P.save_selection(chosen, "offline", {"split": "adversarial"}, model=model)
    samples = P.selected_samples(model, None, "offline", 1, 1)
    assert samples.rows["id"].tolist() == chosen["id"].tolist()
    assert samples.predicted.tolist() == chosen["pred"].tolist()
    assert samples.true_label.tolist() == chosen["label"].tolist()
    assert samples.is_correct.tolist() == [True, False]
    assert samples.pixels.shape == (2, 3, 32, 32) and len(samples.labels) == 2
