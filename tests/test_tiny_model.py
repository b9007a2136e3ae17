"""The committed tiny ViT: loads offline, has ViT-B/16's input pipeline, and really classifies the
scenes from the object -- on seeds that training never saw."""
import json
import math
import socket
from pathlib import Path

import pytest
import torch

from helpers import load_model
from helpers.scenes import CLASS_NAMES, GENERATOR_VERSION, SceneDataset, make_scene, to_pixel_values

TINY_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny_vit"
TEST_SEED = 9_000_017  # far from the training (424242) and manifest (100001) seeds
N = 240  # per split, 40 per class
K = len(CLASS_NAMES)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


@pytest.fixture(scope="module")
def accuracy(tiny):
    """Top-1 accuracy of the tiny model on N fresh scenes of each split."""
    model, _ = tiny
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    def score(split):
        data = SceneDataset(split, n=N, seed=TEST_SEED)
        correct = 0
        for start in range(0, N, 60):
            items = [data[i] for i in range(start, start + 60)]
            with torch.no_grad():
                logits = model(pixel_values=torch.stack([it["pixel_values"] for it in items])).logits
            correct += (logits.argmax(-1) == torch.tensor([it["label"] for it in items])).sum().item()
        return correct / N

    return {split: score(split) for split in ("standard", "hard", "background")}


def test_loads_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    model, processor = load_model("tiny")
    assert model.config._attn_implementation == "eager" and not model.training


def test_has_the_vit_b16_input_pipeline_and_the_scene_classes(tiny):
    model, processor = tiny
    config = model.config
    assert (config.image_size, config.patch_size, config.num_channels) == (224, 16, 3)
    assert config.hidden_size <= 192 and config.num_hidden_layers <= 6
    assert config.hidden_dropout_prob == 0 and config.attention_probs_dropout_prob == 0
    assert [config.id2label[i] for i in range(K)] == CLASS_NAMES
    assert {name: config.label2id[name] for name in CLASS_NAMES} == {n: i for i, n in enumerate(CLASS_NAMES)}
    image = make_scene("standard", TEST_SEED, 0).image
    processed = processor(images=image, return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(processed, to_pixel_values(image), atol=1e-6)
    assert (TINY_DIR / "model.safetensors").stat().st_size <= 5 * 2 ** 20


def test_eager_attention_gives_a_14x14_grid_plus_cls(tiny):
    model, _ = tiny
    pixels = SceneDataset(n=2, seed=TEST_SEED)[1]["pixel_values"][None]
    out = model(pixel_values=pixels, output_attentions=True)
    assert len(out.attentions) == model.config.num_hidden_layers
    assert out.attentions[0].shape == (1, model.config.num_attention_heads, 197, 197)


def test_manifest_matches_the_generator():
    manifest = json.loads((TINY_DIR / "manifest.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION, (
        "The scene generator changed since the tiny model was trained: run `make tiny-model`.")
    assert manifest["classes"] == CLASS_NAMES


def test_standard_scenes_are_classified(accuracy):
    assert accuracy["standard"] >= 0.95


def test_hard_scenes_are_much_harder(accuracy):
    assert accuracy["hard"] <= accuracy["standard"] - 0.15
    assert accuracy["hard"] > 1 / K + 0.1  # harder, yet not hopeless


def test_without_the_object_it_is_at_chance(accuracy):
    """The evidence is the object: with it removed, accuracy is chance (1/K) within 3.5 binomial
    standard deviations."""
    sd = math.sqrt((1 / K) * (1 - 1 / K) / N)
    assert abs(accuracy["background"] - 1 / K) <= 3.5 * sd
