"""The notebooks' profile sizes (unmask.tutorials): ci fits this CPU, full is a real experiment."""

import dataclasses

import pytest

from unmask.errors import ConfigError
from unmask.tutorials import PROFILES, TutorialSizes, tutorial_sizes


def test_every_profile_resolves_and_is_named():
    for name in PROFILES:
        assert tutorial_sizes(name).profile == name
    assert tutorial_sizes(" CI ") is tutorial_sizes("ci")


def test_ci_is_offline_cpu_teaching_and_smaller_than_full():
    ci, full = tutorial_sizes("ci"), tutorial_sizes("full")
    assert (ci.bundle, ci.device, ci.needs_hub) == ("teaching", "cpu", False)
    assert (full.bundle, full.device, full.needs_hub) == ("ffhq", "cuda", True)
    for field in dataclasses.fields(TutorialSizes):
        value = getattr(ci, field.name)
        if isinstance(value, int) and not isinstance(value, bool):
            assert value <= getattr(full, field.name), field.name
    # the short ci training run must still log a curve of several points
    assert ci.train_steps // ci.log_every >= 4


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match="ci, full.*UNMASK_NB_PROFILE"):
        tutorial_sizes("gpu")


def test_sizes_are_validated():
    with pytest.raises(ConfigError, match="train_steps=0"):
        dataclasses.replace(tutorial_sizes("ci"), train_steps=0)
    with pytest.raises(ConfigError, match="profile"):
        dataclasses.replace(tutorial_sizes("ci"), profile="cpu")


def test_identity_input_size_is_a_backbone_size():
    from unmask.models.embedding import EmbeddingConfig

    for name in PROFILES:
        side = tutorial_sizes(name).identity_input_size
        assert side % 16 == 0
        assert EmbeddingConfig(input_size=side).input_size == side  # the embedder accepts it
    with pytest.raises(ConfigError, match="identity_input_size=0"):
        dataclasses.replace(tutorial_sizes("ci"), identity_input_size=0)


def test_auto_chooses_ci_without_a_gpu_and_never_asks_the_hub(monkeypatch):
    from unmask import tutorials

    def hub_asked():
        raise AssertionError("a machine without a GPU must decide without the Hub")

    monkeypatch.setattr(tutorials, "_hub_weights_present", hub_asked)
    monkeypatch.setattr(tutorials, "_gpu_present", lambda: False)
    monkeypatch.delenv(tutorials.PROFILE_ENV, raising=False)
    choice = tutorials.choose_profile()  # what a notebook does when nothing is set
    assert choice.profile == "ci" and "no CUDA GPU" in choice.reason
    assert tutorials.choose_profile("AUTO ").profile == "ci"


def test_auto_chooses_full_only_with_a_gpu_and_the_hub_weights():
    from unmask.tutorials import choose_profile

    assert choose_profile("auto", gpu=True, hub_weights=True).profile == "full"
    no_weights = choose_profile("auto", gpu=True, hub_weights=False)
    assert no_weights.profile == "ci" and "Hub weights" in no_weights.reason
    assert choose_profile("auto", gpu=False, hub_weights=True).profile == "ci"


def test_an_asked_profile_wins_and_a_wrong_one_is_named(monkeypatch):
    from unmask.tutorials import PROFILE_ENV, choose_profile

    assert choose_profile("full", gpu=False).profile == "full"  # papermill -p PROFILE full
    monkeypatch.setenv(PROFILE_ENV, "ci")
    assert choose_profile(gpu=True, hub_weights=True).profile == "ci"
    assert "profile ci" in str(choose_profile())
    with pytest.raises(ConfigError, match="ci, full or auto"):
        choose_profile("gpu")
