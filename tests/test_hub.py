"""unmask.hub: strict save/load, clear errors, offline behaviour, safe legacy checkpoints."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re

import pytest
import torch
from torch import nn

from unmask import hub
from unmask.errors import HubError, WeightsError


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    width: int = 4
    depths: tuple[int, ...] = (1, 2)


class TinyNet(hub.HubModel):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig | None = None):
        super().__init__()
        self.config = config or TinyConfig()
        self.lin = nn.Linear(self.config.width, sum(self.config.depths))
        self.register_buffer("scale", torch.ones(1))

    def forward(self, x):
        return self.lin(x) * self.scale


class OtherNet(TinyNet):
    pass


def test_round_trip_is_exact_and_keeps_config(tmp_path):
    model = TinyNet(TinyConfig(width=3, depths=(2, 3)))
    with torch.no_grad():
        model.scale.fill_(2.5)
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors", "README.md"}
    assert json.loads((tmp_path / "m" / "config.json").read_text())["architecture"] == "TinyNet"
    loaded = TinyNet.from_pretrained(tmp_path / "m")
    assert loaded.config == TinyConfig(width=3, depths=(2, 3))
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training


def test_generic_loader_builds_the_class_named_in_config(tmp_path):
    OtherNet(TinyConfig(width=2)).save_pretrained(tmp_path / "o")
    assert type(hub.from_pretrained(tmp_path / "o")) is OtherNet
    # The more specific subclass is built even when asked through the parent class.
    assert type(TinyNet.from_pretrained(tmp_path / "o")) is OtherNet


def test_wrong_architecture_is_refused(tmp_path):
    TinyNet().save_pretrained(tmp_path / "t")
    with pytest.raises(WeightsError, match="holds a 'TinyNet' model, not a OtherNet"):
        OtherNet.from_pretrained(tmp_path / "t")


def test_missing_and_mismatched_weights_name_the_keys(tmp_path):
    TinyNet(TinyConfig(width=4)).save_pretrained(tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg["width"] = 5  # config no longer fits the weights
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"wrong shape \(e\.g\. lin\.weight"):
        TinyNet.from_pretrained(tmp_path / "a")

    model = TinyNet()
    state = dict(model.state_dict())
    state.pop("scale")
    state["extra"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"1 missing \(e\.g\. \['scale'\]\); 1 unexpected"):
        hub.load_state_dict_strict(model, state, source="test")


def test_unknown_config_key_and_damaged_files(tmp_path):
    TinyNet().save_pretrained(tmp_path / "b")
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**cfg, "bogus": 1}))
    with pytest.raises(WeightsError, match=r"does not fit TinyConfig: unknown key 'bogus'"):
        TinyNet.from_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "b" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="damaged or not safetensors"):
        TinyNet.from_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="cannot read model config"):
        TinyNet.from_pretrained(tmp_path / "b")


def test_missing_folder_file_and_bad_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubError, match="config.json not found in folder"):
        TinyNet.from_pretrained(tmp_path / "empty")
    with pytest.raises(HubError, match="neither a model folder nor a Hub repo id"):
        TinyNet.from_pretrained(tmp_path / "does" / "not" / "exist")


def test_offline_hub_fails_fast_with_advice():
    # conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported.
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set") as info:
        TinyNet.from_pretrained("unmask-test/does-not-exist", revision="0" * 40)
    assert "unset HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        hub.download_registered("stylegan2-ffhq-config-f")


def test_subfolder_of_a_bundle(tmp_path):
    TinyNet(TinyConfig(width=6)).save_pretrained(tmp_path / "bundle" / "encoder")
    loaded = hub.from_pretrained(tmp_path / "bundle", subfolder="encoder")
    assert loaded.config.width == 6


def test_registry_entries_are_complete():
    assert {"stylegan2-ffhq-config-f", "psp-ffhq-encode", "e4e-ffhq-encode", "ir-se50"} <= set(hub.REGISTRY)
    for entry in hub.REGISTRY.values():
        if entry.package is None:  # pinned to a Hub commit
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry.repo_id), entry
            assert entry.revision is None or re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry
        else:  # pinned to a package version, and its file to a digest
            assert re.fullmatch(r"\d+(\.\d+)+", entry.package_version or ""), entry
            assert entry.distribution and re.fullmatch(r"[0-9a-f]{64}", entry.sha256 or ""), entry
        assert "non-commercial" in entry.licence, entry
        assert entry.kind in {"stylegan2", "psp", "e4e", "irse50", "iresnet50", "iresnet100", "insightface", "dcgan"}
    with pytest.raises(HubError, match="unknown public weights"):
        hub.download_registered("nope")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_legacy_checkpoint_loader_is_weights_only(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"g_ema": {"w": torch.ones(2)}, "latent_avg": torch.zeros(3)}, good)
    assert torch.equal(hub.load_legacy_checkpoint(good)["g_ema"]["w"], torch.ones(2))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(WeightsError, match="refused for safety"):
        hub.load_legacy_checkpoint(evil)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(WeightsError, match="cannot read"):
        hub.load_legacy_checkpoint(truncated)
    with pytest.raises(WeightsError, match="does not exist"):
        hub.load_legacy_checkpoint(tmp_path / "missing.pt")
