"""The app's default bundle, chosen on purpose and said: ``--bundle``, ``UNMASK_BUNDLE``, then ffhq only where it is
cached or a GPU is present, else teaching; and the size of a download before it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from demo import models
from unmask.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def machine(monkeypatch):
    """A machine whose ffhq cache, GPU and offered bundles the test sets."""
    state = {"cached": False, "gpu": False, "offered": ["teaching"]}
    monkeypatch.delenv(models.BUNDLE_ENV, raising=False)
    monkeypatch.setattr(models, "ffhq_cached", lambda: state["cached"])
    monkeypatch.setattr(models, "gpu_attached", lambda: state["gpu"])
    monkeypatch.setattr(models, "offered_bundles", lambda: list(state["offered"]))
    return state


def test_a_cpu_without_cached_ffhq_runs_teaching_even_online(machine):
    machine["offered"] = ["ffhq", "teaching"]  # the Hub answers: ffhq could download, but nobody asked
    bundle, why = models.choose_bundle()
    assert bundle == "teaching" and "--bundle ffhq" in why


def test_ffhq_is_the_default_where_it_is_cached_or_a_gpu_is_present(machine):
    machine["cached"] = True
    assert models.choose_bundle() == ("ffhq", "its files are in the Hugging Face cache")
    machine["cached"], machine["gpu"], machine["offered"] = False, True, ["ffhq", "teaching"]
    assert models.choose_bundle()[0] == "ffhq"
    machine["offered"] = ["teaching"]  # a GPU, but offline and not cached: nothing to run ffhq with
    assert models.choose_bundle()[0] == "teaching"


def test_the_flag_wins_over_the_environment_and_both_over_the_rule(machine, monkeypatch):
    machine["cached"] = True
    monkeypatch.setenv(models.BUNDLE_ENV, "teaching")
    assert models.choose_bundle() == ("teaching", "UNMASK_BUNDLE teaching")
    assert models.choose_bundle("ffhq") == ("ffhq", "--bundle ffhq")
    assert models.choose_bundle("auto")[0] == "teaching"  # auto: the environment, then the rule
    with pytest.raises(ConfigError, match=r"--bundle 'ffhg' is not a bundle; choose one of .*ffhq"):
        models.choose_bundle("ffhg")
    monkeypatch.setenv(models.BUNDLE_ENV, "nope")
    with pytest.raises(ConfigError, match="UNMASK_BUNDLE 'nope' is not a bundle"):
        models.choose_bundle()


def test_a_download_is_announced_with_its_size():
    line = models.describe_download([("stylegan2-ffhq-config-f", 381_000_000), ("ir-se50", 175_367_323)])
    assert line.startswith("downloading 2 files, 0.56 GB (stylegan2-ffhq-config-f 381 MB, ir-se50 175 MB)")
    assert "and more" in models.describe_download([("e4e-ffhq-encode", None), ("ir-se50", 175_367_323)])
    assert models.download_plan("teaching") == []  # shipped: nothing to download


def test_app_py_refuses_an_unknown_bundle_with_the_projects_message():
    done = subprocess.run([sys.executable, "app.py", "--bundle", "ffhg"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PATH": "", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "unmask: --bundle 'ffhg' is not a bundle" in done.stderr
