"""The generated scenes: deterministic by seed, real masks, no colour shortcut, processor-equal pixels."""
import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from helpers.scenes import CLASS_NAMES, SceneDataset, make_scene, to_pixel_values

K = len(CLASS_NAMES)


@pytest.mark.parametrize("split", ["standard", "hard", "background"])
def test_same_seed_same_scene_other_seed_or_index_other_scene(split):
    a, b = make_scene(split, 5, 7), make_scene(split, 5, 7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.image.shape == (224, 224, 3) and a.image.dtype == np.uint8
    assert not np.array_equal(a.image, make_scene(split, 6, 7).image)
    assert not np.array_equal(a.image, make_scene(split, 5, 13).image)


def test_masks_are_non_empty_and_standard_objects_are_large():
    standard = [make_scene("standard", 11, i).mask.mean() for i in range(60)]
    hard = [make_scene("hard", 11, i) for i in range(60)]
    assert min(standard) > 0.05 and max(standard) < 0.35
    assert 0.14 < np.mean(standard) < 0.30
    assert min(s.mask.mean() for s in hard) > 0
    assert max(s.mask.mean() for s in hard if "small" in s.factors) < 0.1


def test_the_object_lies_in_the_mask():
    """Removing the target (the background split) changes pixels only at the target: inside its
    mask or within 3 pixels of it, for the anti-aliased edge (sharp tips reach furthest), and almost all
    of the mask."""
    for i in range(12):
        scene, empty = make_scene("standard", 3, i), make_scene("background", 3, i)
        assert np.array_equal(scene.mask, empty.mask)
        changed = np.abs(scene.image.astype(int) - empty.image.astype(int)).max(-1) > 0
        assert distance_transform_edt(~scene.mask)[changed].max() <= 3
        assert changed[scene.mask].mean() > 0.9


def test_colour_is_no_shortcut():
    """A nearest-class-mean classifier on the target's mean colour is near chance."""
    scenes = [make_scene("standard", 21, i) for i in range(480)]
    colours = np.array([s.image[s.mask].mean(0) for s in scenes])
    labels = np.array([s.class_idx for s in scenes])
    fit, held_out = slice(0, 240), slice(240, 480)
    means = np.array([colours[fit][labels[fit] == k].mean(0) for k in range(K)])
    guess = np.linalg.norm(colours[held_out, None] - means[None], axis=-1).argmin(1)
    assert (guess == labels[held_out]).mean() < 1 / K + 0.12


def test_hard_scenes_name_their_difficulties():
    factors = [make_scene("hard", 0, i).factors for i in range(30)]
    assert all(1 <= len(f) <= 2 for f in factors)
    assert make_scene("standard", 0, 0).factors == ()


def test_dataset_items_follow_the_shared_conventions():
    data = SceneDataset("hard", n=2 * K, seed=4)
    assert len(data) == 2 * K and data.class_names == CLASS_NAMES and data.head_indices == list(range(K))
    item = data[K + 2]
    assert item["pixel_values"].shape == (3, 224, 224) and item["pixel_values"].dtype == torch.float32
    assert item["label"] == item["class_idx"] == 2 and item["class_name"] == CLASS_NAMES[2]
    assert item["id"] == f"hard/seed4/{K + 2:06d}"
    assert item["mask"].dtype == torch.bool and item["mask"].shape == (224, 224)
    assert torch.equal(item["mask"], torch.from_numpy(data.raw(K + 2).mask))
    assert len(SceneDataset(n_per_class=3)) == 3 * K
    with pytest.raises(ValueError, match="split"):
        SceneDataset("train")
    with pytest.raises(IndexError):
        data.raw(2 * K)


def test_ids_are_listed_without_generating_scenes_and_match_the_items(monkeypatch):
    data = SceneDataset("background", n=K + 1, seed=9)
    expected = [data[i]["id"] for i in range(len(data))]
    monkeypatch.setattr("helpers.scenes.make_scene", lambda *a, **k: pytest.fail("ids generated a scene"))
    assert data.ids == expected
    assert len(set(expected)) == K + 1


def test_default_normalisation_equals_the_vit_processor():
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3)
    image = make_scene("standard", 8, 1).image
    expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(to_pixel_values(image), expected, atol=1e-6)
    with_processor = SceneDataset(n=2, seed=8, processor=processor)[1]["pixel_values"]
    assert torch.allclose(SceneDataset(n=2, seed=8)[1]["pixel_values"], with_processor, atol=1e-6)
