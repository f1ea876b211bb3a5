"""The Hub path offline, through the real ``huggingface_hub`` client: tiny checkpoints in the public formats are
placed in a temporary HF cache exactly where ``hf_hub_download`` / a Space's ``preload_from_hub`` put them (at
``unmask.hub.REGISTRY``'s repo ids, filenames and pinned revisions), then loaded with ``HF_HUB_OFFLINE=1``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unmask import hub
from unmask.bundle import builtin_manifest
from unmask.pipeline import WEIGHTS_DIR

#: role -> REGISTRY name of the ffhq bundle, read from its manifest.
FFHQ_BUNDLE = {role: part.registry for role, part in builtin_manifest("ffhq").components.items()}

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "demo" / "examples" / "photo_astronaut.jpg"
#: The tiny checkpoints stand in for the public files, so their digests cannot match REGISTRY's: the
#: offline subprocesses drop the digests (``test_registered_digest_mismatch_is_refused`` covers the check).
NO_DIGESTS = ("import dataclasses\nfrom unmask import hub\n"
              "hub.REGISTRY.update({n: dataclasses.replace(e, sha256=None) for n, e in hub.REGISTRY.items()})\n")


def place_in_cache(cache: Path, repo_id: str, filename: str, src: Path, commit: str) -> Path:
    """Lay ``src`` out as ``hf_hub_download(repo_id, filename, revision=commit)`` would: the content in
    ``blobs/<sha256>``, a link from ``snapshots/<commit>/<filename>``, and ``refs/main`` naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    blob = repo / "blobs" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        shutil.copyfile(src, blob)
    target = repo / "snapshots" / commit / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(os.path.relpath(blob, target.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return target


def _tiny_public_checkpoints(folder: Path) -> dict[str, Path]:
    """rosinality StyleGAN2 (64 px), e4e (32-px input, same latent) and IR-SE-50 (the public architecture)."""
    from unmask.models.encoder import EncoderConfig, build_encoder
    from unmask.models.identity import IRSEConfig, IRSEIdentity
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(size=64, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=16)).eval()
    paths = {name: folder / Path(hub.REGISTRY[name].filename).name for name in FFHQ_BUNDLE.values()}
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(32)}, paths[FFHQ_BUNDLE["generator"]])
    enc = build_encoder(EncoderConfig(kind="e4e", input_size=32, n_styles=g.n_latent, style_dim=32,
                                      stage_channels=(8, 16, 24, 32), stage_blocks=(1, 2, 1, 1), head_channels=16))
    state = {f"encoder.{k}": v for k, v in enc.state_dict().items() if k != "latent_avg"}
    state.update({f"decoder.{k}": v for k, v in g.state_dict().items()})
    torch.save({"state_dict": state, "latent_avg": g.mean_latent(256, seed=0)[0],
                "opts": {"encoder_type": "Encoder4Editing", "output_size": 64}}, paths[FFHQ_BUNDLE["encoder"]])
    # IR-SE-50's config is fixed by the public file (convert_irse50 builds the published architecture).
    irse = IRSEIdentity(IRSEConfig()).eval()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in irse.state_dict().items()},
               paths[FFHQ_BUNDLE["identity"]])
    return paths


def _run_offline(cache: Path, code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", NO_DIGESTS + code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_registry_pins_full_commits_and_the_ffhq_bundle_uses_only_registry_files():
    for name, entry in hub.REGISTRY.items():
        if entry.package is None:  # a packaged file is pinned by its package version and digest instead
            assert len(entry.revision) == 40 and all(c in "0123456789abcdef" for c in entry.revision), name
        else:
            assert entry.package_version and entry.sha256 is not None, name
        assert entry.sha256 is None or (len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0), name
    assert set(FFHQ_BUNDLE.values()) <= set(hub.REGISTRY)


def test_registered_digest_mismatch_is_refused(tmp_path, monkeypatch):
    # A cached file whose sha256 is not the registry's (a damaged download, or a changed upstream file) is
    # refused with what to do, not loaded.
    from huggingface_hub import constants

    from unmask.errors import WeightsError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    name = FFHQ_BUNDLE["identity"]
    entry = hub.REGISTRY[name]
    assert entry.sha256 is not None
    src = tmp_path / "damaged.pth"
    src.write_bytes(b"not the published weights")
    place_in_cache(tmp_path / "cache", entry.repo_id, entry.filename, src, entry.revision)
    with pytest.raises(WeightsError, match=f"expected {entry.sha256} for {name}.*delete it from the cache"):
        hub.download_registered(name, cache_dir=str(tmp_path / "cache"))


def test_registered_available_reads_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    src = tmp_path / "file.pt"
    src.write_bytes(b"weights")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    name = FFHQ_BUNDLE["generator"]
    assert not hub.registered_available(name)
    entry = hub.REGISTRY[name]
    place_in_cache(tmp_path / "cache", entry.repo_id, entry.filename, src, entry.revision)
    assert hub.registered_available(name)
    assert not hub.registered_available(FFHQ_BUNDLE["identity"], ask_hub=False)


@pytest.mark.slow
def test_ffhq_bundle_loads_offline_from_the_hf_cache_and_unmasks_a_photo(tmp_path):
    cache = tmp_path / "hf-cache"
    for name, path in _tiny_public_checkpoints(tmp_path).items():
        entry = hub.REGISTRY[name]
        place_in_cache(cache, entry.repo_id, entry.filename, path, entry.revision)
    code = f"""
import json
import numpy as np
from unmask.faces.io import load_image
from unmask.pipeline import UnmaskPipeline, available_bundles
bundles = list(available_bundles(ask_hub=False))
pipe = UnmaskPipeline.from_pretrained("ffhq", refine_steps=2)
photo = load_image({str(PHOTO)!r})
result = pipe(photo, seed=0)
face = result.faces[0]
x0, y0, x1, y1 = face.box
changed = np.abs(result.output.astype(int) - photo.astype(int)).sum(axis=2) > 0
ys, xs = np.nonzero(changed)
verification, _ = pipe.verify(photo, photo, result=result)
print(json.dumps({{"bundles": bundles, "default_mode": pipe.config.default_mode, "mode": result.mode,
    "refine_steps": pipe.config.refine_steps, "shape": list(result.output.shape), "photo_shape": list(photo.shape),
    "changed": int(changed.sum()), "changed_box": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
    "face_box": [float(x0), float(y0), float(x1), float(y1)], "timings": sorted(result.timings),
    "mask_source": face.mask_source, "network": verification.network, "masked": verification.masked,
    "threshold": verification.threshold}}))
"""
    out = _run_offline(cache, code)
    assert out["bundles"][0] == "ffhq" and "teaching" in out["bundles"]
    assert out["default_mode"] == out["mode"] == "encoder+refine"
    assert out["refine_steps"] == 2 and "refine" in out["timings"]  # the override no longer raises TypeError
    assert out["shape"] == out["photo_shape"]
    assert out["changed"] > 0 and out["mask_source"] == "estimated"
    # Only the region around the face changed (the mask is pasted back inside the aligned crop).
    fx0, fy0, fx1, fy1 = out["face_box"]
    side = max(fx1 - fx0, fy1 - fy0)
    cx0, cy0, cx1, cy1 = out["changed_box"]
    assert cx0 >= fx0 - side and cy0 >= fy0 - side and cx1 <= fx1 + side and cy1 <= fy1 + side
    assert "IR-SE-50" in out["network"] and abs(out["masked"]) <= 1.0 + 1e-5
    assert out["threshold"] == pytest.approx(0.23)


@pytest.mark.slow
@pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(), reason="teaching weights not present")
def test_teaching_bundle_loads_by_hub_repo_id_offline(tmp_path):
    cache, repo_id, commit = tmp_path / "hf-cache", "unmask-project/teaching", "1" * 40
    bundle = WEIGHTS_DIR / "teaching"
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        place_in_cache(cache, repo_id, path.relative_to(bundle).as_posix(), path, commit)
    code = f"""
import json
from unmask.pipeline import UnmaskPipeline
pipe = UnmaskPipeline.from_pretrained({repo_id!r}, revision={commit!r})
local = UnmaskPipeline.from_pretrained("teaching")
result = pipe({str(ROOT / "demo" / "examples" / "teaching_kn95.png")!r}, aligned=True)
same = local({str(ROOT / "demo" / "examples" / "teaching_kn95.png")!r}, aligned=True)
print(json.dumps({{"mode": result.mode, "default_mode": pipe.config.default_mode,
                   "equal": bool((result.output == same.output).all()), "device": str(pipe.device)}}))
"""
    out = _run_offline(cache, code)
    assert out["mode"] == out["default_mode"] == "encoder"
    assert out["equal"]  # the same weights, whether read from weights/ or from the Hub cache
