"""tests/standin.py: the real world's local stand-ins -- hub-cache snapshots of
google/vit-base-patch16-224 and of the DeiT and DINOv2 models, an ImageNet-A-shaped archive and a
CIFAR-10-shaped dataset repo -- are what the real world's loaders expect, and the course's own code
runs its real world against them. Offline; small dims; tmp_path.
"""
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import standin

REPO_ID = "google/vit-base-patch16-224"
FILES = {"config.json", "preprocessor_config.json", "model.safetensors", "README.md",
         ".gitattributes"}
ENV_NAMES = ["HF_HOME", "HF_HUB_OFFLINE", "COURSE_WORLD", "COURSE_DATA_DIR",
             "COURSE_IMAGENET_A_URL", "COURSE_IMAGENET_A_SIZE", "COURSE_IMAGENET_A_MD5",
             "COURSE_FINETUNE_DATA"]
# Variables that would send the hub client elsewhere than $HF_HOME/hub.
HUB_OVERRIDES = ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_HUB_OFFLINE"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``(root, env)`` of one small stand-in."""
    root = tmp_path_factory.mktemp("standin")
    return root, standin.build(root)


def repo_folder(root, repo_id=REPO_ID):
    return Path(root) / "hf" / "hub" / ("models--" + repo_id.replace("/", "--"))


def snapshot_of(root, repo_id=REPO_ID):
    repo = repo_folder(root, repo_id)
    return repo / "snapshots" / (repo / "refs" / "main").read_text()


@pytest.fixture
def hub_env(built, monkeypatch):
    """The stand-in's environment in this process; returns the hub cache folder."""
    root, env = built
    for name in HUB_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Path(env["HF_HOME"]) / "hub"


# --- the environment --------------------------------------------------------------------------

def test_environment_names_the_stand_ins(built):
    root, env = built
    assert list(env) == ENV_NAMES
    assert env["HF_HOME"] == str(root / "hf") and env["HF_HUB_OFFLINE"] == "1"
    assert env["COURSE_WORLD"] == "real"
    data = Path(env["COURSE_DATA_DIR"])
    assert data.is_dir() and not any(data.iterdir()), "the course must find an empty data folder"
    archive = root / "imagenet-a.tar"
    assert env["COURSE_IMAGENET_A_URL"] == archive.as_uri()
    assert env["COURSE_IMAGENET_A_URL"].startswith("file:///")
    assert int(env["COURSE_IMAGENET_A_SIZE"]) == archive.stat().st_size
    assert env["COURSE_IMAGENET_A_MD5"] == hashlib.md5(archive.read_bytes()).hexdigest()
    assert env["COURSE_FINETUNE_DATA"] == str(root / "cifar10")
    lines = [shlex.split(line) for line in (root / "env.sh").read_text().splitlines()]
    assert lines == [["export", f"{name}={env[name]}"] for name in ENV_NAMES]


def test_refuses_to_build_in_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        standin.build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# --- the hub cache ----------------------------------------------------------------------------

@pytest.mark.parametrize("repo_id", [REPO_ID, *standin.EXTRA_MODELS])
def test_hub_cache_has_the_hub_clients_layout(built, repo_id):
    root, _ = built
    repo = repo_folder(root, repo_id)
    commit = (repo / "refs" / "main").read_text()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert [p.name for p in (repo / "snapshots").iterdir()] == [commit]
    snapshot = repo / "snapshots" / commit
    weights_file = standin.EXTRA_MODELS.get(repo_id, {}).get("weights", "model.safetensors")
    assert {p.name for p in snapshot.iterdir()} == FILES - {"model.safetensors"} | {weights_file}
    for entry in snapshot.iterdir():
        assert entry.is_symlink() and not os.path.isabs(os.readlink(entry))
        blob = entry.resolve()
        assert blob.parent == (repo / "blobs").resolve()
        data = blob.read_bytes()
        if entry.name == weights_file:  # an LFS file: its SHA-256
            assert blob.name == hashlib.sha256(data).hexdigest()
        else:  # a git blob id
            assert blob.name == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.mark.parametrize("repo_id", [REPO_ID, *standin.EXTRA_MODELS])
def test_hub_client_finds_the_snapshot(built, repo_id):
    from huggingface_hub import try_to_load_from_cache

    root, _ = built
    cache = root / "hf" / "hub"
    weights_file = standin.EXTRA_MODELS.get(repo_id, {}).get("weights", "model.safetensors")
    for name in ("config.json", weights_file, "preprocessor_config.json"):
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache)
        assert isinstance(found, str) and Path(found) == snapshot_of(root, repo_id) / name


def test_files_are_the_real_repos(built):
    root, _ = built
    snapshot = snapshot_of(root)
    config = json.loads((snapshot / "config.json").read_text())
    assert config["architectures"] == ["ViTForImageClassification"]
    assert config["model_type"] == "vit" and config["transformers_version"] == "4.13.0.dev0"
    assert (config["image_size"], config["patch_size"], config["num_channels"]) == (224, 16, 3)
    assert config["layer_norm_eps"] == 1e-12 and config["qkv_bias"] is True
    assert config["hidden_act"] == "gelu"
    assert len(config["id2label"]) == 1000
    for _, index, name in standin.imagenet_a_table():
        assert config["id2label"][str(index)] == name
        assert config["label2id"][name] == index
    assert config["id2label"]["0"] == "tench"
    assert json.loads((snapshot / "preprocessor_config.json").read_text()) == {
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224}
    assert (snapshot / "README.md").read_text().startswith("---\nlicense: apache-2.0")
    assert "*.safetensors filter=lfs" in (snapshot / ".gitattributes").read_text()


def original_keys(layers):
    keys = {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
            "vit.embeddings.patch_embeddings.projection.weight",
            "vit.embeddings.patch_embeddings.projection.bias",
            "vit.layernorm.weight", "vit.layernorm.bias", "classifier.weight", "classifier.bias"}
    for i in range(layers):
        for module in ("attention.attention.query", "attention.attention.key",
                       "attention.attention.value", "attention.output.dense",
                       "intermediate.dense", "output.dense", "layernorm_before",
                       "layernorm_after"):
            keys |= {f"vit.encoder.layer.{i}.{module}.{p}" for p in ("weight", "bias")}
    return keys


def test_checkpoint_has_the_original_key_names(built):
    root, _ = built
    with safe_open(str(snapshot_of(root) / "model.safetensors"), "pt") as file:
        assert file.metadata() == {"format": "pt"}
        keys = set(file.keys())
        shapes = {key: tuple(file.get_slice(key).get_shape()) for key in keys}
    dims = standin.DIMS["small"]
    assert keys == original_keys(dims["num_hidden_layers"])
    hidden = dims["hidden_size"]
    assert shapes["vit.embeddings.position_embeddings"] == (1, 197, hidden)  # 14 x 14 + CLS
    assert shapes["classifier.weight"] == (1000, hidden)
    assert shapes["vit.encoder.layer.0.intermediate.dense.weight"] == (4 * hidden, hidden)


def load_stand_in(cache):
    from transformers import ViTForImageClassification

    return ViTForImageClassification.from_pretrained(
        REPO_ID, cache_dir=cache, local_files_only=True, attn_implementation="eager",
        output_loading_info=True)


def test_transformers_loads_every_weight(built, hub_env):
    model, info = load_stand_in(hub_env)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not info.get("mismatched_keys") and not info.get("error_msgs"), info
    assert model.config.num_labels == 1000 and model.config.id2label[6] == "stingray"
    # Every tensor of the file ended up in the model (renamed), none was freshly initialised.
    loaded = list(model.state_dict().values())
    root, _ = built
    with safe_open(str(snapshot_of(root) / "model.safetensors"), "pt") as file:
        for key in file.keys():
            tensor = file.get_tensor(key)
            assert any(t.shape == tensor.shape and torch.equal(t, tensor) for t in loaded), key


def test_processor_is_vit_b16s(hub_env):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(REPO_ID, cache_dir=hub_env,
                                                   local_files_only=True)
    assert type(processor).__name__ == "ViTImageProcessor"
    assert list(processor.image_mean) == [0.5] * 3 and list(processor.image_std) == [0.5] * 3
    assert (processor.size["height"], processor.size["width"]) == (224, 224)
    pixels = processor(images=Image.new("RGB", (300, 200), (255, 0, 128)),
                       return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    assert torch.allclose(pixels[0, :, 0, 0], torch.tensor([1.0, -1.0, 128 / 255 * 2 - 1]),
                          atol=1e-4)


def archive_images(root):
    """``{member name: PIL image (not decoded)}`` for every file in a class folder."""
    tar = tarfile.open(Path(root) / "imagenet-a.tar")
    return tar, {m.name: Image.open(io.BytesIO(tar.extractfile(m).read()))
                 for m in tar.getmembers() if m.isfile() and m.name.count("/") == 2}


def test_attention_maps_are_not_uniform(built, hub_env):
    model, _ = load_stand_in(hub_env)
    from helpers.data import default_processor, to_rgb

    root, _ = built
    tar, images = archive_images(root)
    tar.close()
    pictures = [to_rgb(images[name]) for name in sorted(images)[:4]]
    pixels = default_processor()(images=pictures, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        attentions = model.eval()(pixel_values=pixels, output_attentions=True).attentions
    assert len(attentions) == standin.DIMS["small"]["num_hidden_layers"]
    for layer in attentions:
        cls_row = layer[:, :, 0, :]  # [B, heads, 197]
        assert (cls_row.max(-1).values * 197).mean() > 3, "CLS attention is nearly uniform"
        assert (cls_row[0] - cls_row[1]).abs().max() > 1e-3, "attention ignores the image"



# --- the other hub models (DeiT, DINOv2) --------------------------------------------------------

DEIT_PREPROCESSOR = {"crop_size": 224, "do_center_crop": True, "do_normalize": True,
                     "do_resize": True, "feature_extractor_type": "DeiTFeatureExtractor",
                     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
                     "resample": 3, "size": 256}
# What the hub repos hold, written out here rather than taken from standin.py.
EXPECTED = {
    "facebook/deit-tiny-patch16-224": dict(
        architecture="ViTForImageClassification", model_type="vit", image_size=224, patch_size=16,
        processor="DeiTImageProcessor", preprocessor=DEIT_PREPROCESSOR, prefix="vit",
        tokens=["cls_token"], heads=["classifier"], norms=("layernorm_before", "layernorm_after"),
        modules=("attention.attention.query", "attention.attention.key",
                 "attention.attention.value", "attention.output.dense", "intermediate.dense",
                 "output.dense"), layer_scale=False),
    "facebook/deit-base-distilled-patch16-224": dict(
        architecture="DeiTForImageClassificationWithTeacher", model_type="deit", image_size=224,
        patch_size=16, processor="DeiTImageProcessor", preprocessor=DEIT_PREPROCESSOR,
        prefix="deit", tokens=["cls_token", "distillation_token"],
        heads=["cls_classifier", "distillation_classifier"],
        norms=("layernorm_before", "layernorm_after"),
        modules=("attention.attention.query", "attention.attention.key",
                 "attention.attention.value", "attention.output.dense", "intermediate.dense",
                 "output.dense"), layer_scale=False),
    "facebook/dinov2-small-imagenet1k-1-layer": dict(
        architecture="Dinov2ForImageClassification", model_type="dinov2", image_size=518,
        patch_size=14, processor="BitImageProcessor",
        preprocessor={"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
                      "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                      "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
                      "image_processor_type": "BitImageProcessor",
                      "image_std": [0.229, 0.224, 0.225], "resample": 3,
                      "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 256}},
        prefix="dinov2", tokens=["cls_token", "mask_token"], heads=["classifier"],
        norms=("norm1", "norm2"),
        modules=("attention.attention.query", "attention.attention.key",
                 "attention.attention.value", "attention.output.dense", "mlp.fc1", "mlp.fc2"),
        layer_scale=True),
}


def expected_keys(repo_id, layers):
    """The checkpoint's key names as transformers 4.x saved them."""
    e = EXPECTED[repo_id]
    p = e["prefix"]
    keys = {f"{p}.embeddings.{token}" for token in e["tokens"]}
    keys |= {f"{p}.embeddings.position_embeddings", f"{p}.layernorm.weight", f"{p}.layernorm.bias",
             f"{p}.embeddings.patch_embeddings.projection.weight",
             f"{p}.embeddings.patch_embeddings.projection.bias"}
    keys |= {f"{head}.{w}" for head in e["heads"] for w in ("weight", "bias")}
    for i in range(layers):
        for module in e["modules"] + e["norms"]:
            keys |= {f"{p}.encoder.layer.{i}.{module}.{w}" for w in ("weight", "bias")}
        if e["layer_scale"]:
            keys |= {f"{p}.encoder.layer.{i}.layer_scale{k}.lambda1" for k in (1, 2)}
    return keys


@pytest.mark.parametrize("repo_id", list(EXPECTED))
def test_other_models_files_are_their_repos(built, repo_id):
    root, _ = built
    snapshot = snapshot_of(root, repo_id)
    e = EXPECTED[repo_id]
    weights_file = standin.EXTRA_MODELS[repo_id].get("weights", "model.safetensors")
    assert {p.name for p in snapshot.iterdir()} == FILES - {"model.safetensors"} | {weights_file}
    config = json.loads((snapshot / "config.json").read_text())
    assert config["architectures"] == [e["architecture"]] and config["model_type"] == e["model_type"]
    assert (config["image_size"], config["patch_size"]) == (e["image_size"], e["patch_size"])
    assert len(config["id2label"]) == 1000 and config["id2label"]["0"] == "tench"
    for _, index, name in standin.imagenet_a_table():
        assert config["id2label"][str(index)] == name and config["label2id"][name] == index
    assert json.loads((snapshot / "preprocessor_config.json").read_text()) == e["preprocessor"]
    if weights_file == "pytorch_model.bin":  # as the hub's main branch has it (no safetensors)
        tensors = torch.load(snapshot / weights_file, weights_only=True)
        keys = set(tensors)
        classifier = tuple(tensors[f"{e['heads'][0]}.weight"].shape)
        positions = tuple(tensors[f"{e['prefix']}.embeddings.position_embeddings"].shape)
    else:
        with safe_open(str(snapshot / weights_file), "pt") as file:
            assert file.metadata() == {"format": "pt"}
            keys = set(file.keys())
            classifier = tuple(file.get_slice(f"{e['heads'][0]}.weight").get_shape())
            positions = tuple(file.get_slice(f"{e['prefix']}.embeddings.position_embeddings"
                                             ).get_shape())
    assert keys == expected_keys(repo_id, config["num_hidden_layers"])
    hidden = config["hidden_size"]
    assert hidden < 100, "small dimensions by default"
    # DINOv2's head reads CLS concatenated with the mean patch token.
    assert classifier == (1000, 2 * hidden if e["model_type"] == "dinov2" else hidden)
    grid = (e["image_size"] // e["patch_size"]) ** 2
    assert positions == (1, grid + (2 if e["model_type"] == "deit" else 1), hidden)


OTHER_MODELS_THROUGH_THE_COURSE = r"""
import json, sys
import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import load_file
from helpers.models import load_model

torch.set_num_threads(1)
report = {}
for repo_id in json.loads(sys.argv[1]):
    model, processor = load_model(repo_id)
    _, info = type(model).from_pretrained(repo_id, local_files_only=True, output_loading_info=True)
    try:
        tensors = load_file(transformers.utils.cached_file(repo_id, "model.safetensors",
                                                           local_files_only=True))
    except OSError:  # a repo with pytorch_model.bin only
        tensors = torch.load(transformers.utils.cached_file(repo_id, "pytorch_model.bin",
                                                            local_files_only=True), weights_only=True)
    loaded = list(model.state_dict().values())
    unused = [key for key, tensor in tensors.items()
              if not any(t.shape == tensor.shape and torch.equal(t, tensor) for t in loaded)]
    pixels = processor(images=Image.new("RGB", (300, 200), (255, 0, 128)),
                       return_tensors="pt")["pixel_values"]
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), np.uint8))
    with torch.no_grad():
        out = model(pixel_values=processor(images=noise, return_tensors="pt")["pixel_values"],
                    output_attentions=True)
    cls_row = out.attentions[0][0, :, 0]
    report[repo_id] = {
        "class": type(model).__name__, "processor": type(processor).__name__,
        "attention": model.config._attn_implementation, "labels": model.config.num_labels,
        "loading": {k: [str(x) for x in v] for k, v in info.items() if v}, "unused": unused,
        "pixels": list(pixels.shape), "red": pixels[0, 0, 0, 0].item(),
        "logits": list(out.logits.shape), "attentions": list(out.attentions[0].shape),
        "peak": (cls_row.max(-1).values * cls_row.shape[-1]).mean().item()}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def through_the_course(built):
    """What the course's ``load_model`` makes of each of the other stand-in models, in a fresh
    process with only the stand-in's environment (the hub client reads ``HF_HOME`` at import)."""
    _, env = built
    clean = {k: v for k, v in os.environ.items() if k not in HUB_OVERRIDES}
    result = subprocess.run([sys.executable, "-c", OTHER_MODELS_THROUGH_THE_COURSE,
                             json.dumps(list(EXPECTED))], env={**clean, **env, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("repo_id", list(EXPECTED))
def test_other_models_load_every_weight_through_the_course(through_the_course, repo_id):
    e, got = EXPECTED[repo_id], through_the_course[repo_id]
    assert (got["class"], got["processor"]) == (e["architecture"], e["processor"])
    assert got["attention"] == "eager" and got["labels"] == 1000
    assert not got["loading"], got["loading"]  # no missing, unexpected or mismatched keys
    assert not got["unused"], f"tensors of the file not in the model: {got['unused']}"
    assert got["pixels"] == [1, 3, 224, 224]
    assert abs(got["red"] - (1 - 0.485) / 0.229) < 1e-3  # ImageNet mean/std
    tokens = (224 // e["patch_size"]) ** 2 + len([t for t in e["tokens"] if t != "mask_token"])
    assert got["logits"] == [1, 1000] and got["attentions"][-2:] == [tokens, tokens]
    assert got["peak"] > 3, "CLS attention is nearly uniform"


# --- the fine-tuning data set -----------------------------------------------------------------

def test_cifar10_stand_in_loads_as_the_hub_repo_does(built, hub_env):
    import datasets

    root, env = built
    loaded = datasets.load_dataset(env["COURSE_FINETUNE_DATA"])
    assert set(loaded) == {"train", "test"}
    train = loaded["train"]
    assert list(train.features) == ["img", "label"]
    assert train.features["label"].names == ["airplane", "automobile", "bird", "cat", "deer",
                                             "dog", "frog", "horse", "ship", "truck"]
    assert isinstance(train.features["img"], datasets.Image)
    assert train[0]["img"].size == (32, 32) and train[0]["img"].mode == "RGB"
    for split, per_class in standin.CIFAR10_SPLITS.items():
        labels = loaded[split]["label"]
        assert sorted(set(labels)) == list(range(10))
        assert all(labels.count(c) == per_class for c in range(10))
    # Classes look different: mean colours of two classes differ.
    means = [np.asarray(train[i]["img"], dtype=float).mean((0, 1)) for i in range(2)]
    assert np.abs(means[0] - means[1]).max() > 10

# --- the archive ------------------------------------------------------------------------------

def test_archive_is_imagenet_a_shaped(built):
    root, _ = built
    tar, images = archive_images(root)
    with tar:
        names = tar.getnames()
    assert "imagenet-a/README.txt" in names
    assert all(name == "imagenet-a" or name.startswith("imagenet-a/") for name in names)
    wnids = [wnid for wnid, _, _ in standin.imagenet_a_table()]
    folders = {name.split("/")[1] for name in images}
    assert folders == set(wnids) and len(folders) == 200
    per_class = {wnid: sum(name.split("/")[1] == wnid for name in images) for wnid in wnids}
    assert set(per_class.values()) <= {2, 3}
    assert all(name.endswith(".jpg") for name in images)
    files = [name.split("/")[2] for name in images]
    assert any(" " in f for f in files) and any("," in f for f in files)
    kinds = {(image.format, image.mode) for image in images.values()}
    assert {("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK")} <= kinds
    assert any(image.format == "PNG" for image in images.values()), "no PNG named .jpg"
    long_sides = [max(image.size) for image in images.values()]
    assert min(long_sides) == 84 and max(long_sides) == 1600
    aspect = [image.size[0] / image.size[1] for image in images.values()]
    assert min(aspect) < 0.75 and max(aspect) > 1.33
    assert (root / "imagenet-a.tar").stat().st_size < 15e6


# --- the course's real world against the stand-ins -------------------------------------------

COURSE_REAL_WORLD = r"""
import json, os
import torch
from torch.utils.data import DataLoader
from helpers.data import head_mask
from helpers.models import load_model
from helpers.world import load_dataset, resolve_world

torch.set_num_threads(1)
auto = resolve_world("auto", announce=False)
model, processor = load_model()
dataset = load_dataset(processor=processor)
mask = head_mask(model.config.num_labels)
n = right = right_1k = 0
with torch.no_grad():
    for batch in DataLoader(dataset, batch_size=64, collate_fn=dataset.collate):
        logits = model(pixel_values=batch["pixel_values"]).logits
        label = torch.as_tensor(batch["label"])
        right += int((logits.masked_fill(~mask, float("-inf")).argmax(-1) == label).sum())
        right_1k += int((logits.argmax(-1) == label).sum())
        n += len(label)
print(json.dumps({
    "world": resolve_world(announce=False), "auto": auto, "model": type(model).__name__,
    "attention": model.config._attn_implementation, "labels": model.config.num_labels,
    "processor": type(processor).__name__, "root": str(dataset.root), "n": n, "right": right,
    "right_1k": right_1k, "skipped": len(dataset.skipped),
    "data": sorted(os.listdir(os.environ["COURSE_DATA_DIR"]))}))
"""


def test_course_runs_its_real_world_on_the_stand_ins(built, tmp_path):
    """In a fresh process with only the stand-in's environment, as CI runs the notebooks: the
    course's loaders find the cached model, "download" the archive through ``file://``, verify
    and extract it, read every image, and score about a third right under the protocol."""
    root, env = built
    env = {**env, "COURSE_DATA_DIR": str(tmp_path / "data")}  # keep the built one empty
    (tmp_path / "data").mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in HUB_OVERRIDES}
    result = subprocess.run([sys.executable, "-c", COURSE_REAL_WORLD], cwd=tmp_path,
                            env={**clean, **env, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["world"] == report["auto"] == "real"
    assert report["model"] == "ViTForImageClassification" and report["attention"] == "eager"
    assert report["labels"] == 1000 and report["processor"] == "ViTImageProcessor"
    tar, images = archive_images(root)
    tar.close()
    assert report["n"] == len(images) and report["skipped"] == 0
    assert Path(report["root"]) == Path(env["COURSE_DATA_DIR"]) / "imagenet-a"
    assert {"downloads", "imagenet-a"} <= set(report["data"])
    assert 0.25 <= report["right"] / report["n"] <= 0.45, report
    assert report["right_1k"] < report["right"], "the 1000-way arg-max should score lower"
    facts = json.loads((root / "standin.json").read_text())
    assert abs(facts["fraction_correct"] - report["right"] / report["n"]) < 0.01


# --- determinism ------------------------------------------------------------------------------

def test_building_again_gives_the_same_stand_in(built, tmp_path):
    root, env = built
    again = standin.build(tmp_path / "again")
    assert again["COURSE_IMAGENET_A_MD5"] == env["COURSE_IMAGENET_A_MD5"]
    assert again["COURSE_IMAGENET_A_SIZE"] == env["COURSE_IMAGENET_A_SIZE"]
    for repo_id in [REPO_ID, *standin.EXTRA_MODELS]:
        first, second = snapshot_of(root, repo_id), snapshot_of(tmp_path / "again", repo_id)
        assert first.name == second.name, repo_id  # the same files give the same commit
        for name in {p.name for p in first.iterdir()}:
            assert (first / name).read_bytes() == (second / name).read_bytes(), (repo_id, name)
    for part in sorted((root / "cifar10").rglob("*.*")):
        assert part.read_bytes() == (tmp_path / "again" / part.relative_to(root)).read_bytes()
