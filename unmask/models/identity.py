"""Face-identity backbones: IR-SE-50 (pSp's ID loss) and insightface's arcface ``IResNet``.

Both map a face to a 512-d embedding whose cosine similarity measures identity (Deng et al.,
"ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019). Both have
reference-compatible parameter names so the public weights load with ``strict=True``:

* :class:`IRSEIdentity` -- the layout of pSp/e4e's ``model_ir_se50.pth`` (TreB1eN/InsightFace_Pytorch
  ``Backbone``): ``input_layer.*``, ``body.<i>.*``, ``output_layer.{0,3,4}.*`` (BatchNorm2d,
  Dropout, Flatten, Linear(512*7*7, 512), BatchNorm1d).
* :class:`IResNet` -- insightface ``recognition/arcface_torch`` ``backbone.pth`` (r50, r100, ...):
  ``conv1``, ``bn1``, ``prelu``, ``layer1..4`` of ``IBasicBlock``, ``bn2``, ``fc``, ``features``.

``forward(x)`` takes input that is already preprocessed (cropped, at ``input_size``) and returns
the raw embedding. ``embed(images)`` takes FFHQ-aligned faces (B, 3, H, W) in [-1, 1] at any size,
applies the crop and resize each network was trained with, and returns unit-norm embeddings:

* IR-SE-50 as in pSp's ID loss: on a 256 px FFHQ-aligned face, keep rows 35:223 and columns
  32:220 (a 188 px box around the inner face), then adaptive-average-pool to 112x112. At other
  sizes the box is scaled proportionally. Pixel values stay in [-1, 1].
* arcface iresnets were trained on 112x112 faces warped by a similarity transform onto insightface's
  5-point template, normalised as ``(x / 255 - 0.5) / 0.5`` -- exactly our [-1, 1] RGB. FFHQ alignment
  is a different (eye/mouth based) similarity, so we approximate the arcface warp by a fixed crop of
  the FFHQ image: placing the template's eyes and mouth through the FFHQ alignment rule (square
  of half-side max(2 * eye distance, 1.8 * eye-to-mouth distance) centred 0.1 eye-to-mouth below the
  eye midpoint) puts the 112 px arcface square at about 11.8%-88.3% of the width and 12.0%-88.5%
  of the height (:data:`ARCFACE_BOX_IN_FFHQ`, computed below). The residual error is the per-face
  difference between the two alignments (a few pixels at 112 px, and a 0.3 degree tilt).
  Pass ``crop=False`` for faces that are already in the arcface alignment.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unmask.errors import ConfigError, InputShapeError
from unmask.hub import HubModel
from unmask.models.irse import (
    IRSE_MODES,
    IRSE_STAGE_CHANNELS,
    SE_REDUCTION,
    TRUNK_STRIDE,
    make_body,
    make_stem,
    stage_blocks_for,
    unit_specs,
)

#: pSp's ID-loss crop of a 256 px FFHQ-aligned face: (top, bottom, left, right) in pixels.
PSP_ID_CROP_256 = (35, 223, 32, 220)
PSP_ID_REFERENCE_SIZE = 256
#: insightface's 5-point template for 112x112 arcface crops: eyes, nose tip, mouth corners (x, y).
ARCFACE_TEMPLATE_112 = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                        (41.5493, 92.3655), (70.7299, 92.2041))
ARCFACE_SIZE = 112
#: FFHQ alignment rule (Karras et al., StyleGAN): centre shift along eye-to-mouth, and half-side scales.
FFHQ_CENTER_SHIFT = 0.1
FFHQ_EYE_SCALE = 2.0
FFHQ_MOUTH_SCALE = 1.8
#: Smallest face side ``embed`` accepts.
MIN_FACE_SIZE = 16
#: insightface's iresnet depths -> units per stage.
IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
IRESNET_WIDTHS = (64, 128, 256, 512)


def _arcface_box_in_ffhq() -> tuple[float, float, float, float]:
    """Where the 112 px arcface square lies in an FFHQ-aligned image, as fractions (top, bottom, left, right).

    Treat the template's eyes and mouth corners as the landmarks of a face, apply the FFHQ
    alignment rule to them, and express the arcface square in that FFHQ frame.
    """
    (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = ARCFACE_TEMPLATE_112
    eye = ((lx + rx) / 2, (ly + ry) / 2)
    mouth = ((mlx + mrx) / 2, (mly + mry) / 2)
    eye_to_eye = math.hypot(rx - lx, ry - ly)
    eye_to_mouth = (mouth[0] - eye[0], mouth[1] - eye[1])
    half = max(eye_to_eye * FFHQ_EYE_SCALE, math.hypot(*eye_to_mouth) * FFHQ_MOUTH_SCALE)
    cx = eye[0] + FFHQ_CENTER_SHIFT * eye_to_mouth[0]
    cy = eye[1] + FFHQ_CENTER_SHIFT * eye_to_mouth[1]
    side = 2 * half
    return ((half - cy) / side, (ARCFACE_SIZE + half - cy) / side,
            (half - cx) / side, (ARCFACE_SIZE + half - cx) / side)


#: The arcface crop inside an FFHQ-aligned face, fractions (top, bottom, left, right) of the side.
ARCFACE_BOX_IN_FFHQ = _arcface_box_in_ffhq()
#: pSp's ID crop as fractions of the side, (top, bottom, left, right).
PSP_ID_BOX = tuple(v / PSP_ID_REFERENCE_SIZE for v in PSP_ID_CROP_256)


def check_faces(images: torch.Tensor, who: str) -> None:
    """Raise :class:`InputShapeError` unless ``images`` is a floating (B, 3, H, W) batch with H, W >= 16."""
    if (not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3
            or min(images.shape[-2:]) < MIN_FACE_SIZE):
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputShapeError(f"{who} expects aligned RGB faces (B, 3, H, W) in [-1, 1] with H, W >= "
                              f"{MIN_FACE_SIZE}, got {got}.")
    if not images.is_floating_point():
        raise InputShapeError(f"{who} expects a floating-point tensor in [-1, 1], got {images.dtype}; "
                              "convert uint8 images with x.float() / 127.5 - 1.")


def crop_and_resize(images: torch.Tensor, box: tuple[float, float, float, float] | None, size: int) -> torch.Tensor:
    """Crop a fractional box (top, bottom, left, right) and resize to ``size`` x ``size``.

    Shrinking uses adaptive average pooling (as pSp's ID loss does); enlarging uses bilinear
    interpolation. Differentiable.
    """
    if box is not None:
        h, w = images.shape[-2:]
        top, bottom = round(box[0] * h), round(box[1] * h)
        left, right = round(box[2] * w), round(box[3] * w)
        images = images[:, :, max(top, 0):min(bottom, h), max(left, 0):min(right, w)]
    if tuple(images.shape[-2:]) == (size, size):
        return images
    if min(images.shape[-2:]) >= size:
        return F.adaptive_avg_pool2d(images, size)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def _check_network_input(x: torch.Tensor, size: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (size, size):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputShapeError(f"{who}.forward expects preprocessed faces (B, 3, {size}, {size}) in [-1, 1], got "
                              f"{got}. Use .embed(images) to crop and resize aligned faces of any size.")


def _check_input_size(input_size: int) -> None:
    if input_size < TRUNK_STRIDE or input_size % TRUNK_STRIDE:
        raise ConfigError(f"input_size must be a positive multiple of {TRUNK_STRIDE} (the trunk stride), "
                          f"got {input_size}.")


# ============================================================================ IR-SE-50 (pSp ID loss)
@dataclass(frozen=True)
class IRSEConfig:
    """Architecture of the IR / IR-SE face recogniser. Defaults: pSp's ``model_ir_se50.pth``.

    Attributes:
        num_layers: depth 50, 100 or 152; ignored when ``stage_blocks`` is given.
        mode: ``"ir"`` or ``"ir_se"``.
        input_size: side of the preprocessed face (112 for the public weights); multiple of 16.
        stage_channels: channels of the four stages (the stem uses the first).
        stage_blocks: units per stage; ``None`` takes the published counts for ``num_layers``.
        embedding_dim: output dimension.
        dropout: dropout before the final linear layer (pSp builds the net with 0.6).
        affine: learnable scale/shift in the final BatchNorm1d (True in ``model_ir_se50.pth``).
        se_reduction: squeeze-and-excitation reduction.
    """

    num_layers: int = 50
    mode: str = "ir_se"
    input_size: int = ARCFACE_SIZE
    stage_channels: tuple[int, ...] = IRSE_STAGE_CHANNELS
    stage_blocks: tuple[int, ...] | None = None
    embedding_dim: int = 512
    dropout: float = 0.6
    affine: bool = True
    se_reduction: int = SE_REDUCTION

    def __post_init__(self) -> None:
        if self.mode not in IRSE_MODES:
            raise ConfigError(f"mode must be one of {IRSE_MODES}, got {self.mode!r}.")
        _check_input_size(self.input_size)
        if len(self.stage_channels) != 4:
            raise ConfigError(f"the IR trunk has 4 stages; stage_channels={self.stage_channels}.")
        if self.stage_blocks is None:
            stage_blocks_for(self.num_layers)
        elif len(self.stage_blocks) != 4:
            raise ConfigError(f"stage_blocks must have 4 entries, got {self.stage_blocks}.")
        if self.embedding_dim < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"embedding_dim must be >= 1 and dropout in [0, 1), got {self.embedding_dim}, "
                              f"{self.dropout}.")

    @property
    def blocks(self) -> tuple[int, ...]:
        """Units per stage actually built."""
        return tuple(self.stage_blocks) if self.stage_blocks is not None else stage_blocks_for(self.num_layers)

    @property
    def feature_size(self) -> int:
        """Side of the last feature map: input_size / 16 (7 at 112 px)."""
        return self.input_size // TRUNK_STRIDE


class IRSEIdentity(HubModel):
    """IR-SE face recogniser with the parameter layout of pSp's ``model_ir_se50.pth``.

    ``forward(x)``: (B, 3, input_size, input_size) in [-1, 1] -> raw embedding (B, embedding_dim).
    ``embed(images)``: FFHQ-aligned (B, 3, H, W) in [-1, 1] -> unit-norm (B, embedding_dim).
    """

    config_class = IRSEConfig
    model_card_note = ("IR-SE-50 ArcFace recogniser as used by pSp's identity loss (weights from "
                       "TreB1eN/InsightFace_Pytorch via pixel2style2pixel; MS1M-trained, non-commercial).")

    def __init__(self, config: IRSEConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else IRSEConfig()
        self.config = config
        channels = config.stage_channels
        self.input_layer = make_stem(3, channels[0])
        self.body = make_body(unit_specs(channels[0], channels, config.blocks), config.mode, config.se_reduction)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(channels[-1]),
            nn.Dropout(config.dropout),
            nn.Flatten(),
            nn.Linear(channels[-1] * config.feature_size**2, config.embedding_dim),
            nn.BatchNorm1d(config.embedding_dim, affine=config.affine),
        )

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output (B, C, input_size / 16, input_size / 16) for preprocessed input."""
        _check_network_input(x, self.config.input_size, type(self).__name__)
        return self.body(self.input_layer(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (not normalised) embedding (B, embedding_dim) of preprocessed faces (B, 3, s, s) in [-1, 1]."""
        return self.output_layer(self.feature_map(x))

    def preprocess(self, images: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """pSp's ID-loss preprocessing: crop :data:`PSP_ID_BOX` of an FFHQ-aligned face, pool to input_size."""
        check_faces(images, f"{type(self).__name__}.embed")
        return crop_and_resize(images, PSP_ID_BOX if crop else None, self.config.input_size)

    def embed(self, images: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """Unit-norm identity embeddings (B, embedding_dim) of FFHQ-aligned faces (B, 3, H, W) in [-1, 1].

        Args:
            images: aligned faces, any size >= 16 px (256 px reproduces pSp exactly).
            crop: apply pSp's face crop; ``False`` if ``images`` are already that crop.
        """
        return F.normalize(self(self.preprocess(images, crop)).float(), dim=1)  # float32 cosines under bf16


# ============================================================================ arcface_torch IResNet
@dataclass(frozen=True)
class IResNetConfig:
    """Architecture of insightface's arcface ``IResNet``. Defaults: r50 at 112 px.

    Attributes:
        layers: IBasicBlock units per stage (r50 ``(3, 4, 14, 3)``, r100 ``(3, 13, 30, 3)``).
        widths: channels of the four stages; the stem uses the first.
        input_size: side of the preprocessed face; multiple of 16 (112 for public weights).
        embedding_dim: output dimension (``num_features`` in insightface).
        dropout: dropout before ``fc`` (0 in the published configs).
        fp16: run the convolutional trunk under CUDA autocast (ignored on CPU), as arcface_torch does.

    Example: a teaching-size trunk ``IResNetConfig(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128),
    input_size=64, embedding_dim=128)``.
    """

    layers: tuple[int, ...] = IRESNET_LAYERS[50]
    widths: tuple[int, ...] = IRESNET_WIDTHS
    input_size: int = ARCFACE_SIZE
    embedding_dim: int = 512
    dropout: float = 0.0
    fp16: bool = False

    def __post_init__(self) -> None:
        _check_input_size(self.input_size)
        if len(self.layers) != 4 or len(self.widths) != 4 or min(self.layers) < 1 or min(self.widths) < 1:
            raise ConfigError(f"IResNet needs 4 stages with >= 1 unit and >= 1 channel each, got layers "
                              f"{self.layers}, widths {self.widths}.")
        if self.embedding_dim < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"embedding_dim must be >= 1 and dropout in [0, 1), got {self.embedding_dim}, "
                              f"{self.dropout}.")

    @classmethod
    def from_depth(cls, depth: int, **overrides) -> IResNetConfig:
        """Config of the published iresnet of ``depth`` (18, 34, 50, 100, 200)."""
        if depth not in IRESNET_LAYERS:
            raise ConfigError(f"iresnet depth must be one of {sorted(IRESNET_LAYERS)}, got {depth}.")
        return cls(layers=IRESNET_LAYERS[depth], **overrides)

    @property
    def feature_size(self) -> int:
        """Side of the last feature map: input_size / 16 (7 at 112 px)."""
        return self.input_size // TRUNK_STRIDE

    @property
    def fc_scale(self) -> int:
        """Spatial positions flattened into ``fc`` (insightface's ``fc_scale``, 7*7 at 112 px)."""
        return self.feature_size**2


class IBasicBlock(nn.Module):
    """arcface_torch's residual unit: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus shortcut.

    The shortcut (``downsample``: conv1x1(stride) + BN) exists only when the stride or width changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.prelu = nn.PReLU(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(HubModel):
    """insightface arcface_torch ``IResNet`` (``backbone.pth`` layout), configurable for small variants.

    ``forward(x)``: (B, 3, input_size, input_size) in [-1, 1] -> raw embedding (B, embedding_dim),
    the output of the final BatchNorm1d ``features`` (not normalised).
    ``embed(images)``: FFHQ-aligned (B, 3, H, W) in [-1, 1] -> unit-norm (B, embedding_dim).
    ``feature_map(x)``: the trunk output after ``bn2``, (B, widths[-1], input_size/16, input_size/16).
    (The name ``features`` belongs to the reference's final BatchNorm1d, so it is not a method here.)
    """

    config_class = IResNetConfig
    model_card_note = ("insightface arcface_torch IResNet (Deng et al., CVPR 2019). Public weights: "
                       "github.com/deepinsight/insightface, non-commercial research use.")

    def __init__(self, config: IResNetConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else IResNetConfig()
        self.config = config
        widths = config.widths
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.prelu = nn.PReLU(widths[0])
        in_channels = widths[0]
        for stage, (units, width) in enumerate(zip(config.layers, widths), start=1):
            blocks = [IBasicBlock(in_channels, width, stride=2)]
            blocks += [IBasicBlock(width, width) for _ in range(units - 1)]
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
            in_channels = width
        self.bn2 = nn.BatchNorm2d(widths[-1])
        self.dropout = nn.Dropout(p=config.dropout)
        self.fc = nn.Linear(widths[-1] * config.fc_scale, config.embedding_dim)
        self.features = nn.BatchNorm1d(config.embedding_dim)
        # arcface_torch keeps the embedding BN's scale fixed at 1: only its shift is learned.
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.25)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output after ``bn2``: (B, widths[-1], input_size / 16, input_size / 16)."""
        _check_network_input(x, self.config.input_size, type(self).__name__)
        # Mixed precision only where arcface_torch used it: CUDA. On CPU the flag is a no-op.
        amp = (torch.autocast(device_type="cuda", dtype=torch.float16) if self.config.fp16 and x.is_cuda
               else contextlib.nullcontext())
        with amp:
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.bn2(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (not normalised) embedding (B, embedding_dim) of preprocessed faces (B, 3, s, s) in [-1, 1]."""
        x = self.dropout(self.feature_map(x).flatten(1))
        return self.features(self.fc(x.to(self.fc.weight.dtype)))

    def preprocess(self, images: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """Approximate the arcface alignment on FFHQ-aligned faces: crop :data:`ARCFACE_BOX_IN_FFHQ`, resize."""
        check_faces(images, f"{type(self).__name__}.embed")
        return crop_and_resize(images, ARCFACE_BOX_IN_FFHQ if crop else None, self.config.input_size)

    def embed(self, images: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """Unit-norm identity embeddings (B, embedding_dim) of aligned faces (B, 3, H, W) in [-1, 1].

        Args:
            images: FFHQ-aligned faces of any size >= 16 px (or arcface-aligned with ``crop=False``).
            crop: cut the arcface box out of an FFHQ-aligned face first.
        """
        return F.normalize(self(self.preprocess(images, crop)).float(), dim=1)  # float32 cosines under bf16


def build_identity(config: IRSEConfig | IResNetConfig) -> IRSEIdentity | IResNet:
    """Build the identity network that ``config`` describes."""
    if isinstance(config, IRSEConfig):
        return IRSEIdentity(config)
    if isinstance(config, IResNetConfig):
        return IResNet(config)
    raise ConfigError(f"expected an IRSEConfig or IResNetConfig, got {type(config).__name__}.")
