"""The committed tiny models (ViT, DeiT with a distillation token, DINOv2): each loads offline by one
name, has a 14x14 grid at 224 px and its own normalisation, and really classifies the scenes from
the object -- on seeds that training never saw."""
import json
import math
import socket

import pytest
import torch

from helpers import load_model
from helpers.models import TINY_MODELS
from helpers.scenes import CLASS_NAMES, GENERATOR_VERSION, SceneDataset, make_scene, to_pixel_values

TEST_SEED = 9_000_017  # far from the training (424242) and manifest (100001) seeds
N = 240  # per split, 40 per class
K = len(CLASS_NAMES)
NAMES = list(TINY_MODELS)
CLASSES = {"tiny": "ViTForImageClassification",
           "tiny-deit": "DeiTForImageClassificationWithTeacher",
           "tiny-dinov2": "Dinov2ForImageClassification"}
PREFIX_TOKENS = {"tiny": 1, "tiny-deit": 2, "tiny-dinov2": 1}  # CLS (+ DeiT's distillation token)
HALF, IMAGENET = ([0.5] * 3, [0.5] * 3), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
NORMALISATION = {"tiny": HALF, "tiny-deit": HALF, "tiny-dinov2": IMAGENET}


@pytest.fixture(scope="module", params=NAMES)
def tiny(request):
    """``(name, model, processor)`` for each tiny model."""
    return (request.param, *load_model(request.param))


@pytest.fixture(scope="module")
def scenes():
    """``{split: (pixel_values normalised with mean = std = 0.5, labels)}``, N fresh scenes each."""
    out = {}
    for split in ("standard", "hard", "background"):
        data = SceneDataset(split, n=N, seed=TEST_SEED)
        items = [data[i] for i in range(N)]
        out[split] = (torch.stack([it["pixel_values"] for it in items]),
                      torch.tensor([it["label"] for it in items]))
    return out


def renormalise(half_pixels, processor):
    """Pixels normalised with mean = std = 0.5 -> with the processor's mean and std."""
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    return (half_pixels * 0.5 + 0.5 - mean) / std


@pytest.fixture(scope="module")
def outputs(tiny, scenes):
    """``{split: (model outputs on the split's scenes, labels)}`` for one tiny model."""
    name, model, processor = tiny
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    result = {}
    for split, (pixels, labels) in scenes.items():
        chunks = []
        with torch.no_grad():
            for start in range(0, N, 60):
                chunks.append(model(pixel_values=renormalise(pixels[start:start + 60], processor)))
        result[split] = ({key: torch.cat([c[key] for c in chunks])
                          for key in chunks[0].keys() if key.endswith("logits")}, labels)
    return result


def accuracy(outputs, split, key="logits"):
    logits, labels = outputs[split]
    return (logits[key].argmax(-1) == labels).double().mean().item()


def test_every_name_loads_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in NAMES:
        model, processor = load_model(name)
        assert type(model).__name__ == CLASSES[name]
        assert model.config._attn_implementation == "eager" and not model.training


def test_a_missing_model_says_how_to_rebuild_it(monkeypatch, tmp_path):
    monkeypatch.setitem(TINY_MODELS, "tiny-deit", tmp_path / "tiny_deit")
    with pytest.raises(FileNotFoundError, match="make tiny-models"):
        load_model("tiny-deit")


def test_has_the_14x14_grid_its_normalisation_and_the_scene_classes(tiny):
    name, model, processor = tiny
    config = model.config
    assert (config.image_size, config.patch_size, config.num_channels) == (224, 16, 3)
    assert config.hidden_size <= 192 and config.num_hidden_layers <= 6
    assert config.hidden_dropout_prob == 0 and config.attention_probs_dropout_prob == 0
    assert [config.id2label[i] for i in range(K)] == CLASS_NAMES
    assert {name: config.label2id[name] for name in CLASS_NAMES} == {n: i for i, n in enumerate(CLASS_NAMES)}
    assert (list(processor.image_mean), list(processor.image_std)) == NORMALISATION[name]
    image = make_scene("standard", TEST_SEED, 0).image
    processed = processor(images=image, return_tensors="pt")["pixel_values"]
    assert processed.shape == (1, 3, 224, 224)
    assert torch.allclose(processed, renormalise(to_pixel_values(image)[None], processor), atol=1e-5)
    assert (TINY_MODELS[name] / "model.safetensors").stat().st_size <= 5 * 2 ** 20


def test_eager_attention_gives_a_14x14_grid_plus_the_prefix_tokens(tiny):
    name, model, processor = tiny
    pixels = renormalise(SceneDataset(n=2, seed=TEST_SEED)[1]["pixel_values"][None], processor)
    out = model(pixel_values=pixels, output_attentions=True)
    tokens = 14 * 14 + PREFIX_TOKENS[name]
    assert len(out.attentions) == model.config.num_hidden_layers
    assert out.attentions[0].shape == (1, model.config.num_attention_heads, tokens, tokens)


def test_manifest_matches_the_generator_and_the_model(tiny):
    name, model, _ = tiny
    manifest = json.loads((TINY_MODELS[name] / "manifest.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION, (
        f"The scene generator changed since {name!r} was trained: run `make tiny-models`.")
    assert manifest["classes"] == CLASS_NAMES
    assert manifest["model"] == CLASSES[name]
    assert manifest["evaluation"]["accuracy"]["standard"] >= 0.95


def test_standard_scenes_are_classified(outputs):
    assert accuracy(outputs, "standard") >= 0.95


def test_hard_scenes_are_much_harder(outputs):
    assert accuracy(outputs, "hard") <= accuracy(outputs, "standard") - 0.15
    assert accuracy(outputs, "hard") > 1 / K + 0.1  # harder, yet not hopeless


def test_without_the_object_it_is_at_chance(outputs):
    """The evidence is the object: with it removed, accuracy is chance (1/K) within 3.5 binomial
    standard deviations."""
    sd = math.sqrt((1 / K) * (1 - 1 / K) / N)
    assert abs(accuracy(outputs, "background") - 1 / K) <= 3.5 * sd


def test_deit_heads_each_classify_and_the_distillation_head_follows_the_teacher(scenes):
    """Both DeiT heads classify on their own, and the distillation head's arg-max is the tiny
    ViT's (its teacher) on nearly every standard scene."""
    deit, _ = load_model("tiny-deit")
    teacher, _ = load_model("tiny")
    pixels, labels = scenes["standard"]
    with torch.no_grad():
        out = deit(pixel_values=pixels)
        taught = teacher(pixel_values=pixels).logits.argmax(-1)
    for head in (out.cls_logits, out.distillation_logits):
        assert (head.argmax(-1) == labels).double().mean() >= 0.9
    agreement = (out.distillation_logits.argmax(-1) == taught).double().mean().item()
    assert agreement >= 0.95
