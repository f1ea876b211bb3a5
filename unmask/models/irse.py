"""IR and IR-SE residual blocks: the backbone of pSp/e4e encoders and of the IR-SE-50 face recogniser.

The "improved residual" (IR) unit of ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss
for Deep Face Recognition", CVPR 2019) is a pre-activation residual unit
``BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN`` whose stride sits on the *second*
convolution; IR-SE appends a squeeze-and-excitation gate (Hu et al., "Squeeze-and-Excitation
Networks", CVPR 2018). pSp (Richardson et al., arXiv 2008.00951) and e4e (Tov et al.,
arXiv 2102.02766) reuse the IR-SE-50 recogniser of TreB1eN/InsightFace_Pytorch as their encoder
trunk, so module names here follow that layout: a unit holds ``shortcut_layer`` and
``res_layer`` (indices 0..4, plus 5 for the SE gate with ``fc1``/``fc2``), and the trunk is a flat
``nn.Sequential`` named ``body`` so its keys read ``body.<unit>.res_layer.<i>.*``.

Everything is parameterised by stage channels and units per stage, so the tiny CPU variants used
in tests and in the teaching world are the very same blocks at smaller widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn

from unmask.errors import ConfigError

#: Units per stage of the published IR/IR-SE trunks, keyed by nominal depth.
IRSE_STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}
#: Output channels of the four stages of every published IR/IR-SE trunk (the stem has 64 too).
IRSE_STAGE_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)
#: Channel reduction of the squeeze-and-excitation gate in the published trunks.
SE_REDUCTION = 16
#: Each stage halves the resolution once (in its first unit), so the trunk downsamples by 2**4.
TRUNK_STRIDE = 16
IRSE_MODES = ("ir", "ir_se")


class UnitSpec(NamedTuple):
    """One residual unit of the trunk: input channels, output channels and stride."""

    in_channels: int
    out_channels: int
    stride: int


def stage_blocks_for(num_layers: int) -> tuple[int, ...]:
    """Units per stage of the published IR/IR-SE trunk of depth ``num_layers`` (50, 100 or 152)."""
    if num_layers not in IRSE_STAGE_BLOCKS:
        raise ConfigError(f"IR/IR-SE depth must be one of {sorted(IRSE_STAGE_BLOCKS)}, got {num_layers}; "
                          "for a custom trunk give `stage_blocks` explicitly.")
    return IRSE_STAGE_BLOCKS[num_layers]


def unit_specs(stem_channels: int, stage_channels: Sequence[int], stage_blocks: Sequence[int]) -> list[UnitSpec]:
    """List the residual units of a trunk, stage by stage.

    The first unit of every stage changes the width and halves the resolution; the others keep
    both (this holds for stage 1 too, whose first unit has equal widths and a stride-2 identity
    shortcut in the published trunks).
    """
    if len(stage_channels) != len(stage_blocks) or not stage_blocks:
        raise ConfigError(f"stage_channels {tuple(stage_channels)} and stage_blocks {tuple(stage_blocks)} "
                          "must be non-empty and of the same length.")
    if min(stage_blocks) < 1 or min(stage_channels) < 1:
        raise ConfigError(f"every stage needs >= 1 unit and >= 1 channel, got blocks {tuple(stage_blocks)}, "
                          f"channels {tuple(stage_channels)}.")
    specs = []
    in_channels = stem_channels
    for channels, units in zip(stage_channels, stage_blocks):
        specs.append(UnitSpec(in_channels, channels, 2))
        specs.extend(UnitSpec(channels, channels, 1) for _ in range(units - 1))
        in_channels = channels
    return specs


def stage_end_indices(stage_blocks: Sequence[int]) -> list[int]:
    """Index in the flat ``body`` of the last unit of each stage (pSp's taps 6, 20, 23 for IR-SE-50)."""
    ends, total = [], 0
    for units in stage_blocks:
        total += units
        ends.append(total - 1)
    return ends


class SEModule(nn.Module):
    """Squeeze-and-excitation gate: rescale each channel by a sigmoid of its global average.

    Args:
        channels: number of channels C.
        reduction: bottleneck factor of the two 1x1 convolutions (C -> C // reduction -> C).
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)  # tiny variants: never a zero-width gate
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class IRBlock(nn.Module):
    """IR (or IR-SE) residual unit: ``res_layer(x) + shortcut_layer(x)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 1, or 2 to halve the resolution (applied by the second 3x3 conv and the shortcut).
        se_reduction: reduction of the SE gate; ``None`` builds a plain IR unit.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, se_reduction: int | None = None) -> None:
        super().__init__()
        if in_channels == out_channels:
            # Parameter-free shortcut: a 1x1 max-pool is a strided pick of pixels.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(kernel_size=1, stride=stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if se_reduction is not None:
            layers.append(SEModule(out_channels, se_reduction))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        return self.res_layer(x) + self.shortcut_layer(x)


def make_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """The ``input_layer``: conv3x3 (no bias) -> BN -> PReLU at full resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.PReLU(out_channels),
    )


def make_body(specs: Sequence[UnitSpec], mode: str = "ir_se", se_reduction: int = SE_REDUCTION) -> nn.Sequential:
    """The trunk ``body``: one flat ``nn.Sequential`` of IR or IR-SE units (keys ``body.<i>.*``)."""
    if mode not in IRSE_MODES:
        raise ConfigError(f"mode must be one of {IRSE_MODES}, got {mode!r}.")
    reduction = se_reduction if mode == "ir_se" else None
    return nn.Sequential(*(IRBlock(s.in_channels, s.out_channels, s.stride, reduction) for s in specs))


def fill_missing_num_batches_tracked(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the ``num_batches_tracked`` counters that checkpoints from PyTorch < 0.4.1 lack.

    Such checkpoints (e.g. some copies of ``model_ir_se50.pth``) load in PyTorch only through a
    version shim; a strict load into our safetensors format needs every key, so missing counters
    are set to 0 (they only matter for BatchNorm with ``momentum=None``).
    """
    out = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value, device="cpu")
    return out
