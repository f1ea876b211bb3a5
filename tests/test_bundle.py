"""Bundles: manifests (``pipeline.json``, built-in ``ffhq``), and ``python -m unmask.bundle``: a loadable bundle
with teaching cards, plus the comparison's extra encoders."""

from __future__ import annotations

import pytest
import torch

from unmask import bundle, hub
from unmask.bundle.build import main
from unmask.cards import has_responsible_use
from unmask.errors import WeightsError
from unmask.models.encoder import EncoderConfig, GradualStyleEncoder, build_encoder
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.pipeline import UnmaskPipeline

SIZE = 32
SMALL = {"stage_channels": (8, 8, 16, 16), "stage_blocks": (1, 1, 1, 1), "head_channels": 8}


def _encoder(input_nc: int, head: bool, seed: int):
    torch.manual_seed(seed)
    return build_encoder(EncoderConfig(kind="psp", input_size=SIZE, n_styles=8, style_dim=32, input_nc=input_nc,
                                       mask_head=head, mask_head_channels=8, **SMALL))


def test_bundle_with_extra_encoders(tmp_path):
    torch.manual_seed(0)
    Generator(GeneratorConfig(size=SIZE, style_dim=32, n_mlp=2, channel_max=16)).save_pretrained(tmp_path / "g")
    _encoder(3, True, 1).save_pretrained(tmp_path / "a")
    generic = _encoder(3, False, 2)
    generic.save_pretrained(tmp_path / "generic")
    _encoder(4, False, 3).save_pretrained(tmp_path / "b")
    out = tmp_path / "bundle"
    assert main(["--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "a"), "--out", str(out),
                 "--encoder-mask-channel", str(tmp_path / "b"), "--encoder-generic", str(tmp_path / "generic")]) == 0
    pipe = UnmaskPipeline.from_pretrained(out)
    assert pipe.has_mask_head and not pipe.config.mask_channel  # the default encoder is variant (a)
    loaded = GradualStyleEncoder.from_pretrained(out / "encoder_generic")
    for key, value in generic.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert GradualStyleEncoder.from_pretrained(out / "encoder_mask_channel").config.input_nc == 4
    card = (out / "encoder_generic" / "README.md").read_text()
    assert "configs/generic_teaching.yaml" in card and "teaching model" in card.lower()
    assert has_responsible_use(card)  # Intended use, Out-of-scope use, Limitations


def test_unknown_extra_is_refused(tmp_path):
    from unmask.bundle.build import build_bundle

    with pytest.raises(ValueError, match="encoder_generic"):
        build_bundle(tmp_path / "g", tmp_path / "e", tmp_path / "o", extras={"encoder_c": tmp_path})


# ------------------------------------------------------------------------------ bundle manifests
def test_builtin_ffhq_manifest_names_registry_entries_of_the_right_kind():
    assert "ffhq" in bundle.builtin_manifests()
    manifest = bundle.builtin_manifest("ffhq")
    kinds = {role: hub.REGISTRY[part.registry].kind for role, part in manifest.components.items()}
    assert kinds == {"generator": "stylegan2", "encoder": "e4e", "identity": "irse50"}
    assert manifest.settings["world"] == "ffhq" and manifest.settings["mask_channel"] is False
    with pytest.raises(WeightsError, match="no built-in bundle manifest 'nope'"):
        bundle.builtin_manifest("nope")


def test_manifest_round_trip_and_component_forms(tmp_path):
    raw = {"world": "teaching", "align_size": 32,
           "components": {"generator": "generator", "encoder": {"path": "some/folder"},
                          "identity": {"path": "ir.pth", "kind": "irse50"}}}
    manifest = bundle.BundleManifest.from_json(raw)
    assert manifest.components["generator"] == bundle.ComponentSource(subfolder="generator")
    assert manifest.components["identity"] == bundle.ComponentSource(path="ir.pth", kind="irse50")
    assert manifest.to_json() == raw
    bundle.write_manifest(tmp_path, manifest)
    assert bundle.read_manifest(tmp_path) == manifest
    assert not (tmp_path / "pipeline.json.tmp").exists()


@pytest.mark.parametrize(("components", "message"), [
    ({"encoder": "encoder"}, "names no 'generator' component"),
    ({"generator": "g", "encoder": "e", "decoder": "d"}, r"names components \['decoder'\]"),
    ({"generator": {"registry": "nope"}, "encoder": "e"}, "unknown public weights 'nope'"),
    ({"generator": {"registry": "ir-se50", "path": "x"}, "encoder": "e"}, "exactly one of"),
    ({"generator": {"subfolder": "g", "kind": "stylegan2"}, "encoder": "e"}, "goes with 'path' only"),
    ({"generator": {"folder": "g"}, "encoder": "e"}, r"component keys \['folder'\] are unknown"),
    ({"generator": 3, "encoder": "e"}, "subfolder name or an object"),
])
def test_bad_manifests_say_what_is_wrong(components, message):
    with pytest.raises(WeightsError, match=message):
        bundle.BundleManifest.from_json({"world": "teaching", "components": components})
