"""pSp and e4e encoders: a face image (optionally with its mask as a 4th channel) to StyleGAN2 W+.

Both encoders (Richardson et al., "Encoding in Style: a StyleGAN Encoder for Image-to-Image
Translation", arXiv 2008.00951; Tov et al., "Designing an Encoder for StyleGAN Image
Manipulation", arXiv 2102.02766) share one body:

* an IR-SE trunk (``input_layer`` + flat ``body``, see :mod:`unmask.models.irse`);
* a three-level feature pyramid taken at the ends of trunk stages 2, 3 and 4 (for IR-SE-50 at
  256 px: unit 6 -> 128 ch at 64x64, unit 20 -> 256 ch at 32x32, unit 23 -> 512 ch at 16x16), merged
  top-down by 1x1 lateral convs ``latlayer1`` (stage 3) and ``latlayer2`` (stage 2) plus bilinear
  upsampling (``align_corners=True``, as in the reference);
* one ``GradualStyleBlock`` per style (``styles.<i>``): stride-2 3x3 convs down to 1x1, then an
  equalised linear layer. Styles 0-2 read the coarsest map, 3-6 the middle one, 7+ the finest.

An optional occlusion-mask head (``config.mask_head``, :class:`MaskHead`) decodes the finest
pyramid level back to the input size: the unmasking encoder that reads the masked image alone (3
channels, as in arXiv 2212.14110, where the user gives no mask) also says where the mask is. The
4-channel encoder, for when a mask is given, has no head. Public checkpoints have no head either.

pSp predicts every style independently. e4e predicts one base code ``w`` from ``styles[0]`` on
the coarsest map, copies it to every layer, and adds a per-layer offset from ``styles[i]`` for the
layers its progressive training stage has switched on (all of them at inference).

The parameter names equal the ``encoder.*`` entries of the public pSp (``psp_ffhq_encode.pt``) and
e4e (``e4e_ffhq_encode.pt``) checkpoints with the prefix stripped, so those weights load with
``strict=True`` after :func:`convert_psp_checkpoint`. Our module also keeps the checkpoint's
``latent_avg`` as a buffer and, with ``config.add_latent_avg``, adds it to the output, which makes
the encoder's raw prediction an offset from the average latent (as pSp's ``start_from_latent_avg``).

Input size: the reference was trained on 256 px faces. Any power of two from 32 to 1024 works; the
pyramid always taps the ends of stages 2-4, i.e. maps at size/4, size/8 and size/16, which exist
down to 32 px (2x2 at the coarsest level), and each style block uses log2 of its map size
stride-2 convs to reach 1x1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.errors import ConfigError, InputShapeError, WeightsError
from unmask.hub import HubModel
from unmask.models.irse import (
    IRSE_MODES,
    IRSE_STAGE_BLOCKS,
    IRSE_STAGE_CHANNELS,
    SE_REDUCTION,
    make_body,
    make_stem,
    stage_blocks_for,
    stage_end_indices,
    unit_specs,
)
from unmask.models.stylegan2 import EqualLinear  # the same equalised-lr layer as the generator's

#: Styles [0, COARSE_END) read the coarsest pyramid level, [COARSE_END, MIDDLE_END) the middle one.
COARSE_END = 3
MIDDLE_END = 7
#: Negative slope of the LeakyReLU in the style blocks (PyTorch's default, used by the reference).
STYLE_BLOCK_SLOPE = 0.01
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 1024
ENCODER_KINDS = ("psp", "e4e")
#: Size the public pSp/e4e encoders were trained at (their inputs are resized to it).
REFERENCE_INPUT_SIZE = 256
#: Width of the occlusion-mask head's convs (a light decoder: the pyramid already did the work).
MASK_HEAD_CHANNELS = 32
#: The finest pyramid level is input_size / 4: two 2x upsampling stages reach the input size.
MASK_HEAD_UPSAMPLINGS = 2


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a pSp / e4e encoder. Defaults are the public FFHQ checkpoints.

    Attributes:
        kind: ``"psp"`` (GradualStyleEncoder) or ``"e4e"`` (Encoder4Editing).
        num_layers: IR/IR-SE depth 50, 100 or 152; ignored when ``stage_blocks`` is given.
        mode: ``"ir"`` or ``"ir_se"`` units.
        input_nc: input channels: 3 (RGB) or 4 (RGB + mask, 1 = occluded).
        input_size: square input side, a power of two in [32, 1024].
        n_styles: number of W+ entries; must equal the generator's ``n_latent = 2*log2(size) - 2``.
        style_dim: width of each style code (512 for StyleGAN2).
        add_latent_avg: add the ``latent_avg`` buffer to the output.
        stage_channels: output channels of the four trunk stages (the stem uses the first); the
            last one is also the pyramid width.
        stage_blocks: units per stage; ``None`` takes the published counts for ``num_layers``.
        head_channels: channels of the convs in each style block.
        se_reduction: squeeze-and-excitation reduction of the IR-SE units.
        mask_head: add the occlusion-mask head (``mask_head.*`` weights); needs ``input_nc=3``.
        mask_head_channels: width of the mask head's convs.
    """

    kind: str = "psp"
    num_layers: int = 50
    mode: str = "ir_se"
    input_nc: int = 3
    input_size: int = REFERENCE_INPUT_SIZE
    n_styles: int = 18
    style_dim: int = 512
    add_latent_avg: bool = True
    stage_channels: tuple[int, ...] = IRSE_STAGE_CHANNELS
    stage_blocks: tuple[int, ...] | None = None
    head_channels: int = 512
    se_reduction: int = SE_REDUCTION
    mask_head: bool = False
    mask_head_channels: int = MASK_HEAD_CHANNELS

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise ConfigError(f"encoder kind must be one of {ENCODER_KINDS}, got {self.kind!r}.")
        if self.mode not in IRSE_MODES:
            raise ConfigError(f"encoder mode must be one of {IRSE_MODES}, got {self.mode!r}.")
        size = self.input_size
        if not (MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE) or size & (size - 1):
            raise ConfigError(f"input_size must be a power of two in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}], "
                              f"got {size}.")
        if len(self.stage_channels) != 4:
            raise ConfigError(f"the encoder trunk has 4 stages; stage_channels={self.stage_channels}.")
        if self.stage_blocks is None:
            stage_blocks_for(self.num_layers)  # raises ConfigError for an unpublished depth
        elif len(self.stage_blocks) != 4 or min(self.stage_blocks) < 1:
            raise ConfigError(f"stage_blocks must be 4 positive unit counts, got {self.stage_blocks}.")
        for name in ("input_nc", "n_styles", "style_dim", "head_channels", "se_reduction", "mask_head_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.mask_head and self.input_nc != 3:
            raise ConfigError(f"mask_head predicts the mask from the masked image alone, so it needs input_nc=3, "
                              f"got {self.input_nc}; a 4-channel encoder is given the mask and has no head.")

    @property
    def blocks(self) -> tuple[int, ...]:
        """Units per trunk stage actually built."""
        return tuple(self.stage_blocks) if self.stage_blocks is not None else stage_blocks_for(self.num_layers)

    @property
    def pyramid_sizes(self) -> tuple[int, int, int]:
        """Side of the (coarse, middle, fine) pyramid maps: input_size / 16, / 8, / 4."""
        return self.input_size // 16, self.input_size // 8, self.input_size // 4


def style_level(index: int) -> int:
    """Pyramid level read by style ``index``: 0 coarse, 1 middle, 2 fine."""
    return 0 if index < COARSE_END else 1 if index < MIDDLE_END else 2


class GradualStyleBlock(nn.Module):
    """Map a (B, C, S, S) pyramid level to one style code (B, style_dim).

    ``log2(S)`` stride-2 3x3 convs (each followed by LeakyReLU) bring the map to 1x1, then an
    :class:`EqualLinear` gives the code. Keys: ``convs.<2k>.weight/bias``, ``linear.weight/bias``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_features: int, spatial: int) -> None:
        super().__init__()
        num_convs = int(math.log2(spatial))
        if 2**num_convs != spatial or num_convs < 1:
            raise ConfigError(f"style block input must be a power-of-two map >= 2 px, got {spatial}.")
        layers: list[nn.Module] = []
        for k in range(num_convs):
            layers += [nn.Conv2d(in_channels if k == 0 else hidden_channels, hidden_channels, kernel_size=3,
                                 stride=2, padding=1),
                       nn.LeakyReLU(STYLE_BLOCK_SLOPE)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(hidden_channels, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, out_features)."""
        return self.linear(self.convs(x).flatten(1))


class MaskHead(nn.Module):
    """Occlusion-mask decoder: the finest pyramid level (and the image) to mask logits at the input size.

    A 1x1 conv narrows the (B, C, S/4, S/4) level to ``channels``; two stages of 2x bilinear
    upsampling + 3x3 conv + ReLU bring it to S; a 3x3 conv over those features concatenated with
    the input image gives one logit per pixel, so mask edges can follow the image's edges.

    Keys: ``reduce.{weight,bias}``, ``ups.<i>.{weight,bias}``, ``out.{weight,bias}``.
    """

    def __init__(self, in_channels: int, image_channels: int, channels: int = MASK_HEAD_CHANNELS) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, channels, kernel_size=1)
        self.ups = nn.ModuleList(nn.Conv2d(channels, channels, kernel_size=3, padding=1)
                                 for _ in range(MASK_HEAD_UPSAMPLINGS))
        self.out = nn.Conv2d(channels + image_channels, 1, kernel_size=3, padding=1)

    def forward(self, fine: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``fine (B, C, S/4, S/4)``, ``image (B, image_channels, S, S)`` -> logits ``(B, 1, S, S)``."""
        x = F.relu(self.reduce(fine))
        for conv in self.ups:
            x = F.relu(conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)))
        if x.shape[-2:] != image.shape[-2:]:
            x = F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.cat([x, image], dim=1))


def upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``top`` to the lateral map's size and add them (the FPN merge step)."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class GradualStyleEncoder(HubModel):
    """pSp encoder: IR-SE trunk + feature pyramid + one style block per W+ entry.

    Args:
        config: architecture; ``config.kind`` must be ``"psp"`` (use :func:`build_encoder` to
            dispatch on the kind).

    Call ``encoder(x)`` with ``x`` (B, input_nc, input_size, input_size) in [-1, 1] (channel 4, if
    any, the mask in {0, 1}); it returns ``w_plus`` (B, n_styles, style_dim), including
    ``latent_avg`` when ``config.add_latent_avg``. With ``config.mask_head``,
    :meth:`forward_with_mask` also returns the occlusion-mask logits and :meth:`predict_mask`
    only the mask probabilities.
    """

    config_class = EncoderConfig
    kind = "psp"
    model_card_note = ("pSp encoder (Richardson et al., arXiv 2008.00951). Public FFHQ weights: "
                       "github.com/eladrich/pixel2style2pixel, non-commercial research use.")

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else EncoderConfig(kind=self.kind)
        if config.kind != self.kind:
            raise ConfigError(f"{type(self).__name__} needs config.kind={self.kind!r}, got {config.kind!r}; "
                              "build encoders with unmask.models.encoder.build_encoder(config).")
        self.config = config
        channels = config.stage_channels
        self.input_layer = make_stem(config.input_nc, channels[0])
        self.body = make_body(unit_specs(channels[0], channels, config.blocks), config.mode, config.se_reduction)
        # Pyramid taps: last unit of stages 2, 3, 4 (units 6, 20, 23 in IR-SE-50).
        self._taps = tuple(stage_end_indices(config.blocks)[1:])
        sizes = config.pyramid_sizes
        width = channels[-1]
        self.styles = nn.ModuleList(
            GradualStyleBlock(width, config.head_channels, config.style_dim, sizes[style_level(i)])
            for i in range(config.n_styles)
        )
        self.latlayer1 = nn.Conv2d(channels[2], width, kernel_size=1)
        self.latlayer2 = nn.Conv2d(channels[1], width, kernel_size=1)
        self.register_buffer("latent_avg", torch.zeros(config.n_styles, config.style_dim))
        if config.mask_head:
            self.mask_head = MaskHead(width, config.input_nc, config.mask_head_channels)

    @property
    def n_styles(self) -> int:
        """Number of W+ entries produced (the generator's ``n_latent``)."""
        return self.config.n_styles

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputShapeError` unless ``x`` is (B, input_nc, input_size, input_size) floating."""
        c, s = self.config.input_nc, self.config.input_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != c or tuple(x.shape[2:]) != (s, s):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            hint = " (RGB in [-1, 1] plus the mask, 1 = occluded, as channel 4)" if c == 4 else " (RGB in [-1, 1])"
            raise InputShapeError(f"{type(self).__name__} expects images of shape (B, {c}, {s}, {s}){hint}, "
                                  f"got {got}. Align and resize the face to {s}x{s} first.")
        if not x.is_floating_point():
            raise InputShapeError(f"{type(self).__name__} expects a floating-point tensor in [-1, 1], got {x.dtype}; "
                                  "convert uint8 images with x.float() / 127.5 - 1.")

    def pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Trunk features at the three taps: fine (size/4), middle (size/8), coarse (size/16)."""
        self.check_input(x)
        x = self.input_layer(x)
        taps = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self._taps:
                taps[i] = x
        fine, middle, coarse = (taps[i] for i in self._taps)
        return fine, middle, coarse

    def levels(self, x: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
        """The first ``n_levels`` map2style inputs: coarse c3, then c3 ↑+ latlayer1(c2), then that ↑+ latlayer2(c1).

        Only the levels asked for are computed (e4e's early progressive stages need only the coarse one).
        """
        c1, c2, c3 = self.pyramid(x)
        levels = [c3]
        if n_levels > 1:
            levels.append(upsample_add(c3, self.latlayer1(c2)))
        if n_levels > 2:
            levels.append(upsample_add(levels[1], self.latlayer2(c1)))
        return levels

    def _with_latent_avg(self, w_plus: torch.Tensor) -> torch.Tensor:
        return w_plus + self.latent_avg if self.config.add_latent_avg else w_plus

    def _levels_needed(self) -> int:
        """Pyramid levels the style blocks read."""
        return style_level(self.n_styles - 1) + 1

    def _w_plus(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """W+ (B, n_styles, style_dim) from the pyramid levels: one style block per entry."""
        codes = [block(levels[style_level(i)]) for i, block in enumerate(self.styles)]
        return self._with_latent_avg(torch.stack(codes, dim=1))

    @property
    def has_mask_head(self) -> bool:
        """Whether this encoder predicts the occlusion mask (``config.mask_head``)."""
        return self.config.mask_head

    def forward(self, x: torch.Tensor, *, with_mask: bool = False):
        """Encode images to W+.

        Args:
            x: (B, input_nc, input_size, input_size) in [-1, 1].
            with_mask: return :meth:`forward_with_mask`'s pair instead (a trainer calls this through its
                distributed wrapper, which only forwards ``__call__``).

        Returns:
            w_plus: (B, n_styles, style_dim); with ``with_mask``, ``(w_plus, mask_logits)``.
        """
        if with_mask:
            return self.forward_with_mask(x)
        return self._w_plus(self.levels(x, self._levels_needed()))

    def forward_with_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ and the occlusion-mask logits from one pass through the trunk (training and inference).

        Args:
            x: (B, 3, input_size, input_size) masked faces in [-1, 1].

        Returns:
            ``(w_plus (B, n_styles, style_dim), mask_logits (B, 1, input_size, input_size))``;
            ``sigmoid(mask_logits)`` is the probability that a pixel is occluded.

        Raises:
            ConfigError: the encoder has no mask head.
        """
        self._require_mask_head()
        levels = self.levels(x, 3)
        return self._w_plus(levels), self.mask_head(levels[2], x)

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Occlusion probabilities (B, 1, input_size, input_size) in [0, 1], 1 = occluded; skips the style blocks.

        Raises:
            ConfigError: the encoder has no mask head; use a mask from the user or the landmark template.
        """
        self._require_mask_head()
        return torch.sigmoid(self.mask_head(self.levels(x, 3)[2], x))

    def _require_mask_head(self) -> None:
        if not self.config.mask_head:
            raise ConfigError(f"this {type(self).__name__} has no mask head (config.mask_head=False); give the mask "
                              "yourself or fall back to the landmark template.")


class Encoder4Editing(GradualStyleEncoder):
    """e4e encoder: one base code plus per-layer offsets, same modules as pSp.

    ``progressive_stage`` (an int, not saved with the weights) is how many offsets are active:
    0 gives the same ``w`` for every layer, ``k`` adds offsets to layers 1..k, and any value
    >= ``n_styles - 1`` (the default, ``n_styles``, is e4e's "Inference" stage) uses all of them.
    """

    kind = "e4e"
    model_card_note = ("e4e encoder (Tov et al., arXiv 2102.02766). Public FFHQ weights: "
                       "github.com/omertov/encoder4editing, non-commercial research use.")

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__(config)
        self.progressive_stage = self.config.n_styles

    def set_progressive_stage(self, stage: int) -> None:
        """Switch on the offsets of layers 1..``stage`` (0 <= stage <= n_styles)."""
        if not 0 <= int(stage) <= self.n_styles:
            raise ConfigError(f"progressive stage must be in [0, {self.n_styles}], got {stage}.")
        self.progressive_stage = int(stage)

    def _levels_needed(self) -> int:
        return style_level(self._active() - 1) + 1

    def _active(self) -> int:
        return min(self.progressive_stage + 1, self.n_styles)

    def _w_plus(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """W+ = base ``w`` broadcast to every layer + the active per-layer offsets."""
        active = self._active()
        base = self.styles[0](levels[0])
        codes = [base] + [base + self.styles[i](levels[style_level(i)]) if i < active else base
                          for i in range(1, self.n_styles)]
        return self._with_latent_avg(torch.stack(codes, dim=1))


def encoder_input(masked: torch.Tensor, mask: torch.Tensor, *, mask_channel: bool,
                  size: int | None = None) -> torch.Tensor:
    """What an unmasking encoder reads, the same in training and at inference.

    Args:
        masked: ``(B, 3, S, S)`` faces in ``[-1, 1]``.
        mask: ``(B, 1, S, S)``, 1 = occluded; joined as a 4th channel when ``mask_channel`` (variant (b)).
        size: the encoder's input side, when it differs from ``S`` (bilinear, antialiased).

    Returns:
        ``(B, 3 or 4, size, size)``.
    """
    x = torch.cat([masked, mask.to(masked.dtype)], dim=1) if mask_channel else masked
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def build_encoder(config: EncoderConfig) -> GradualStyleEncoder:
    """Build the encoder class named by ``config.kind`` (``"psp"`` or ``"e4e"``)."""
    cls = Encoder4Editing if config.kind == "e4e" else GradualStyleEncoder
    return cls(config)


# --------------------------------------------------------------------------- public checkpoints
PSP_ENCODER_PREFIX = "encoder."


def _infer_trunk(state: Mapping[str, torch.Tensor]) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """Stage channels, units per stage and mode, read off the ``body.*`` weight shapes."""
    units = sorted({int(k.split(".")[1]) for k in state if k.startswith("body.")})
    if not units or units != list(range(len(units))):
        raise WeightsError("checkpoint encoder has no contiguous body.<i> units; it is not a pSp/e4e encoder.")
    channels: list[int] = []
    blocks: list[int] = []
    for i in units:
        out_c, in_c = state[f"body.{i}.res_layer.1.weight"].shape[:2]
        # A new stage starts where the width changes, or at unit 0 (stage 1 keeps the stem width).
        if i == 0 or out_c != in_c:
            channels.append(int(out_c))
            blocks.append(0)
        blocks[-1] += 1
    mode = "ir_se" if "body.0.res_layer.5.fc1.weight" in state else "ir"
    return tuple(channels), tuple(blocks), mode


def convert_psp_checkpoint(ckpt: Mapping[str, Any], kind: str | None = None,
                           input_size: int = REFERENCE_INPUT_SIZE) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """Turn a public pSp / e4e checkpoint dict into our encoder config and state dict.

    Mapping: ``ckpt["state_dict"]["encoder.<key>"] -> "<key>"`` (``decoder.*`` and anything else
    dropped) and ``ckpt["latent_avg"]`` ((n_styles, 512), or (512,) which is repeated) ->
    ``"latent_avg"``. The architecture is read from the weights; the kind from ``kind`` or
    ``ckpt["opts"]["encoder_type"]``.

    Args:
        ckpt: the dict from ``unmask.hub.load_legacy_checkpoint(path)``.
        kind: ``"psp"`` or ``"e4e"``; ``None`` reads it from the checkpoint's options.
        input_size: input side the encoder was trained at (256 for the public models).

    Returns:
        ``(config, state)`` that load into ``build_encoder(config)`` with ``strict=True``.
    """
    raw = ckpt.get("state_dict", ckpt)
    state = {k[len(PSP_ENCODER_PREFIX):]: v for k, v in raw.items() if k.startswith(PSP_ENCODER_PREFIX)}
    if not state:
        raise WeightsError("the checkpoint has no 'encoder.*' weights; expected a pSp or e4e checkpoint.")
    opts = ckpt.get("opts") or {}
    if kind is None:
        encoder_type = opts.get("encoder_type") if isinstance(opts, Mapping) else None
        kinds = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e"}
        if encoder_type not in kinds:
            raise WeightsError(f"cannot tell pSp from e4e: opts['encoder_type'] is {encoder_type!r}. "
                               "Pass kind='psp' or kind='e4e'.")
        kind = kinds[encoder_type]
    channels, blocks, mode = _infer_trunk(state)
    n_styles = len({k.split(".")[1] for k in state if k.startswith("styles.")})
    style_dim, head_channels = state["styles.0.linear.weight"].shape
    published = {v: k for k, v in IRSE_STAGE_BLOCKS.items()}
    se_reduction = SE_REDUCTION
    if mode == "ir_se":
        # Read it off the widest unit: narrow units may have clamped their gate to one channel.
        last = sum(blocks) - 1
        se_reduction = max(1, channels[-1] // state[f"body.{last}.res_layer.5.fc1.weight"].shape[0])
    latent_avg = ckpt.get("latent_avg")
    add_latent_avg = latent_avg is not None and bool(opts.get("start_from_latent_avg", True))
    config = EncoderConfig(
        kind=kind, num_layers=published.get(blocks, 50), mode=mode,
        input_nc=int(state["input_layer.0.weight"].shape[1]), input_size=input_size, n_styles=n_styles,
        style_dim=int(style_dim), add_latent_avg=add_latent_avg, stage_channels=channels,
        stage_blocks=None if blocks in published else blocks, head_channels=int(head_channels),
        se_reduction=se_reduction,
    )
    if latent_avg is None:
        state["latent_avg"] = torch.zeros(n_styles, int(style_dim))
    else:
        latent_avg = torch.as_tensor(latent_avg, dtype=torch.float32).reshape(-1, int(style_dim))
        if latent_avg.shape[0] not in (1, n_styles):
            raise WeightsError(f"latent_avg has {latent_avg.shape[0]} rows; expected 1 or {n_styles}.")
        state["latent_avg"] = latent_avg.expand(n_styles, -1).clone()
    return config, state
