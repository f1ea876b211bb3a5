"""``python -m unmask.evaluate generator``: dlib face rate and G(z) against render(z)."""

from __future__ import annotations

import pytest
import torch

from unmask.evaluate import generator as evalgen
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.synthetic import FaceWorld, WorldConfig
from unmask.synthetic.latent import FACTOR_NAMES, render_z


def tiny_teaching(size: int = 32) -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(size=size, style_dim=128, n_mlp=2, channel_max=16, channel_multiplier=1,
                                     z_names=FACTOR_NAMES)).eval()


@pytest.mark.slow
def test_face_rate_finds_the_worlds_faces_and_not_flat_images():
    world = FaceWorld(WorldConfig(size=64))
    z = evalgen.held_out_z(6, 128)
    faces = render_z(world, z).images.float()
    rate = evalgen.face_rate(faces)
    assert rate["either"] >= 0.5 and rate["either"] >= rate["upsample_0"]
    assert evalgen.face_rate(torch.zeros(3, 3, 64, 64))["either"] == 0.0


def test_fidelity_is_perfect_for_the_renders_and_finite_for_a_random_generator(monkeypatch):
    world = FaceWorld(WorldConfig(size=32))
    generator = tiny_teaching()
    z = evalgen.held_out_z(4, 128, seed=1)
    random = evalgen.fidelity(generator, world, z)
    assert 0 < random["psnr"] < 30 and -1 <= random["ssim"] <= 1
    # a "generator" that draws exactly the world's render scores the PSNR cap
    monkeypatch.setattr(evalgen, "draw", lambda g, part, truncation=1.0: render_z(world, part).images.float())
    exact = evalgen.fidelity(generator, world, z)
    assert exact["psnr"] > 90 and exact["ssim"] > 0.999


def test_draw_is_deterministic_and_truncation_moves_towards_the_mean():
    generator = tiny_teaching()
    z = evalgen.held_out_z(3, 128, seed=2)
    a, b = evalgen.draw(generator, z), evalgen.draw(generator, z)
    assert torch.equal(a, b) and a.shape == (3, 3, 32, 32)
    assert not torch.equal(evalgen.draw(generator, z, truncation=0.5), a)


@pytest.mark.slow
def test_cli_prints_both_tables_and_writes_the_grid(tmp_path, capsys):
    folder = tmp_path / "g"
    tiny_teaching().save_pretrained(folder)
    grid = tmp_path / "grid.png"
    assert evalgen.main(["--generator", str(folder), "--samples", "3", "--held-out", "4", "--grid", str(grid),
                         "--grid-faces", "2"]) == 0
    out = capsys.readouterr().out
    assert "render(z)" in out and "psnr_db" in out and grid.is_file()
    from PIL import Image

    assert Image.open(grid).size == (2 * 32 * 2, 2 * 32 * 2)  # 2 faces wide, renders over drawings, 2x
