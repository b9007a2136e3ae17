"""helpers.world: which world `auto` picks, and why it says so (no network: reachability is faked)."""
import pytest
import torch

from helpers import data, models, world


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty data folder and a download source that does not exist."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_IMAGENET_A_URL", (tmp_path / "nowhere.tar").as_uri())
    monkeypatch.setenv("COURSE_IMAGENET_A_SIZE", "1")
    monkeypatch.setenv("COURSE_IMAGENET_A_MD5", "0" * 32)
    monkeypatch.delenv("COURSE_WORLD", raising=False)
    return tmp_path


def model_cached(monkeypatch, cached: bool):
    monkeypatch.setattr(models, "_is_cached", lambda repo_id: cached)
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=3.0: False)


def test_auto_stays_offline_when_the_model_is_cached_but_the_data_cannot_be_had(no_data, monkeypatch,
                                                                                 capsys):
    model_cached(monkeypatch, True)
    assert world.resolve_world("auto") == "offline"
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and "ImageNet-A is neither" in said
    assert "not cached" not in said, "only what is missing is named"


def test_auto_stays_offline_when_the_data_is_there_but_the_model_is_not(no_data, monkeypatch, capsys):
    model_cached(monkeypatch, False)
    (no_data / "nowhere.tar").write_bytes(b"x")  # the download source now answers
    assert world.resolve_world("auto") == "offline"
    said = capsys.readouterr().out
    assert "not cached" in said and "ImageNet-A" not in said


def test_auto_is_real_when_model_and_data_can_be_had(no_data, monkeypatch, capsys):
    model_cached(monkeypatch, True)
    (no_data / "data" / "downloads").mkdir(parents=True)
    (no_data / "data" / data.ARCHIVE).write_bytes(b"x")  # an archive on disk counts
    assert world.resolve_world("auto") == "real"
    assert "World: real" in capsys.readouterr().out


def test_explicit_worlds_are_returned_as_asked_and_typos_are_refused(no_data, monkeypatch):
    model_cached(monkeypatch, False)
    assert world.resolve_world("real", announce=False) == "real"
    monkeypatch.setenv("COURSE_WORLD", "offline")
    assert world.resolve_world(None, announce=False) == "offline"
    with pytest.raises(ValueError, match="COURSE_WORLD"):
        world.resolve_world("reall")


def test_set_data_dir_moves_data_and_caches(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert world.set_data_dir(None) == data.DEFAULT_ROOT
    assert world.set_data_dir(tmp_path / "drive") == tmp_path / "drive"
    from helpers import predict

    assert predict.cache_dir("offline") == tmp_path / "drive" / "cache" / "offline"


def test_untrained_copy_is_the_same_architecture_with_other_weights_and_keeps_the_rng():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(image_size=32, patch_size=16, hidden_size=16,
                                                num_hidden_layers=1, num_attention_heads=2,
                                                intermediate_size=32, num_labels=3))
    with torch.no_grad():
        model.classifier.weight.fill_(3.0)  # "trained"
    state = torch.random.get_rng_state()
    fresh = models.untrained_copy(model, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG is untouched"
    assert fresh.config.to_dict() == model.config.to_dict() and not fresh.training
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    again = models.untrained_copy(model, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), again.parameters()))
