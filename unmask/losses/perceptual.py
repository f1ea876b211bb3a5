"""LPIPS perceptual loss (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018) through the ``lpips`` package, optionally on the mask's box.

pSp and e4e weigh LPIPS at 0.8 next to L2 at 1.0: L2 alone gives blurry faces. For masked
facial recovery (arXiv 2212.14110) the region under the mask is where blur shows, so
``lpips_mask`` crops output and target to the bounding box of each sample's mask and compares
the crops at a fixed size.

Offline use: the LPIPS linear layers ship inside the ``lpips`` package; only the torchvision
backbone (AlexNet or VGG16 ImageNet weights) is downloaded on first use into
``torch.hub.get_dir()/checkpoints``. ``pretrained_backbone=False`` builds a randomly initialised
backbone instead (lpips's ``pnet_rand=True``): no download, for tests and smoke runs only.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import torch
from torch import nn

from unmask.errors import ConfigError, DependencyError, HubError, InputShapeError
from unmask.faces.io import resize_images
from unmask.losses.base import FrozenNetworkMixin, Loss
from unmask.losses.reconstruction import check_images, prepare_mask

#: Backbones offered by the ``lpips`` package that we support.
NETS = ("alex", "vgg")
#: pSp/e4e compare 1024 px faces after pooling to 256 px; larger inputs are area-pooled to this.
DEFAULT_RESIZE_TO = 256
#: Side of the square that mask crops are resized to before LPIPS.
DEFAULT_CROP_SIZE = 128
#: Smaller inputs are upsampled to this: AlexNet's strided stem leaves nothing of a 16 px image.
MIN_SIZE = 64
#: Seed of the random backbone (``pretrained_backbone=False``), so every run gets the same features.
RANDOM_BACKBONE_SEED = 0
#: A mask pixel above this counts as occluded when finding the box.
MASK_THRESHOLD = 0.5
# torchvision weight files lpips's backbones download (see torchvision.models.*_Weights.IMAGENET1K_V1).
_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def build_lpips(net: str = "alex", pretrained_backbone: bool = True) -> nn.Module:
    """Build a frozen ``lpips.LPIPS`` module, turning install and download failures into clear errors.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        pretrained_backbone: load torchvision's ImageNet backbone (downloads once, then cached);
            ``False`` = random backbone seeded with :data:`RANDOM_BACKBONE_SEED` (no download; a
            random-feature perceptual loss, not calibrated LPIPS).

    Raises:
        DependencyError: ``lpips`` is not installed.
        HubError: the backbone weights are not cached and could not be downloaded.
    """
    if net not in NETS:
        raise ConfigError(f"LPIPS net {net!r} unknown; use one of {NETS}.")
    try:
        import lpips
    except ImportError as err:
        raise DependencyError("the LPIPS loss needs the 'lpips' package: pip install lpips "
                              "(it is in requirements.txt).") from err
    try:
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            # torchvision deprecates lpips's `pretrained=` argument; nothing for our users to do.
            warnings.simplefilter("ignore", UserWarning)
            torch.manual_seed(RANDOM_BACKBONE_SEED)  # a random backbone is the same in every run
            module = lpips.LPIPS(pretrained=True, net=net, pnet_rand=not pretrained_backbone, verbose=False)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a truncated file a RuntimeError
        if not pretrained_backbone:
            raise
        where = f"{torch.hub.get_dir()}/checkpoints/{_BACKBONE_FILES[net]}"
        raise HubError(
            f"LPIPS could not load the torchvision {net} backbone weights ({err}). Connect to the "
            f"internet once so torchvision can cache them, or copy {_BACKBONE_FILES[net]} to {where} "
            f"(set TORCH_HOME to move the cache); pass pretrained_backbone=False only for tests "
            f"(random backbone)."
        ) from err
    module.requires_grad_(False)
    return module.eval()


def mask_boxes(mask: torch.Tensor, margin: float = 0.0) -> list[tuple[int, int, int, int] | None]:
    """Bounding box ``(top, bottom, left, right)`` (end exclusive) of each sample's occluded pixels.

    Args:
        mask: ``(B, 1, H, W)``, 1 = occluded.
        margin: grow each box by this fraction of its side on every edge (clipped to the image).

    Returns:
        one box per sample, ``None`` for a sample with an empty mask.
    """
    height, width = mask.shape[-2:]
    occluded = mask[:, 0] > MASK_THRESHOLD
    boxes: list[tuple[int, int, int, int] | None] = []
    for sample in occluded:
        rows = torch.nonzero(sample.any(dim=1)).flatten()
        cols = torch.nonzero(sample.any(dim=0)).flatten()
        if rows.numel() == 0:
            boxes.append(None)
            continue
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        left, right = int(cols[0]), int(cols[-1]) + 1
        grow_y, grow_x = round(margin * (bottom - top)), round(margin * (right - left))
        boxes.append((max(0, top - grow_y), min(height, bottom + grow_y),
                      max(0, left - grow_x), min(width, right + grow_x)))
    return boxes


class PerceptualLoss(FrozenNetworkMixin, Loss):
    """LPIPS distance between output and target, on the whole image or the mask's bounding box.

    Args:
        net: LPIPS backbone, ``"alex"`` (pSp/e4e's choice) or ``"vgg"``.
        crop_to_mask: compare only each sample's mask bounding box (resized to ``crop_size``);
            samples with an empty mask are left out. Without a mask the whole image is used.
        crop_size: side of the resized crops.
        crop_margin: grow each box by this fraction of its side.
        resize_to: whole images larger than this are area-pooled to it first (pSp's face pool).
        pretrained_backbone: ``False`` maps to lpips's ``pnet_rand=True`` (no download; tests only).
        network: an already built LPIPS-like module ``(pred, target) -> (B, 1, 1, 1)``; overrides
            ``net`` and ``pretrained_backbone`` (lets callers share one network between losses).
        name: the name this instance logs under.
    """

    name: ClassVar[str] = "lpips"
    frozen_modules: ClassVar[tuple[str, ...]] = ("network",)

    def __init__(self, net: str = "alex", *, crop_to_mask: bool = False, crop_size: int = DEFAULT_CROP_SIZE,
                 crop_margin: float = 0.0, resize_to: int | None = DEFAULT_RESIZE_TO,
                 pretrained_backbone: bool = True, network: nn.Module | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        if crop_size < MIN_SIZE:
            raise ConfigError(f"crop_size must be >= {MIN_SIZE} for the LPIPS backbones, got {crop_size}.")
        if crop_margin < 0:
            raise ConfigError(f"crop_margin must be >= 0, got {crop_margin}.")
        self.network = network if network is not None else build_lpips(net, pretrained_backbone)
        self.crop_to_mask = bool(crop_to_mask)
        self.crop_size = int(crop_size)
        self.crop_margin = float(crop_margin)
        self.resize_to = resize_to
        self.name = name or ("lpips_mask" if crop_to_mask else "lpips")  # type: ignore[misc]
        self.freeze()

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample LPIPS ``(B,)`` of two equal-size image batches in ``[-1, 1]``."""
        return self.network(pred, target).reshape(len(pred), -1).mean(dim=1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean LPIPS distance.

        Args:
            pred: ``(B, 3, H, W)`` output in ``[-1, 1]``.
            target: ``(B, 3, H, W)`` ground truth in ``[-1, 1]``.
            mask: optional ``(B, 1, H, W)``, 1 = occluded; used only when ``crop_to_mask``.

        Returns:
            scalar loss (0, attached to the graph, when every mask is empty in crop mode).
        """
        check_images(pred, target, f"{self.name} loss")
        if pred.shape[1] != 3:
            raise InputShapeError(f"LPIPS needs RGB images (B, 3, H, W), got {tuple(pred.shape)}.")
        if not self.crop_to_mask or mask is None:
            size = max(min(pred.shape[-1], self.resize_to or pred.shape[-1]), MIN_SIZE)
            return self.distance(resize_images(pred, size), resize_images(target, size)).mean()
        boxes = mask_boxes(prepare_mask(mask, pred), self.crop_margin)
        pred_crops, target_crops = [], []
        for i, box in enumerate(boxes):
            if box is None:
                continue
            top, bottom, left, right = box
            pred_crops.append(resize_images(pred[i:i + 1, :, top:bottom, left:right], self.crop_size))
            target_crops.append(resize_images(target[i:i + 1, :, top:bottom, left:right], self.crop_size))
        if not pred_crops:
            return pred.sum() * 0.0
        return self.distance(torch.cat(pred_crops), torch.cat(target_crops)).mean()


def lpips_loss(net: str = "alex", pretrained_backbone: bool = True, lpips_network: nn.Module | None = None,
               resize_to: int | None = DEFAULT_RESIZE_TO) -> PerceptualLoss:
    """LPIPS on the whole image (combiner name ``"lpips"``)."""
    return PerceptualLoss(net, pretrained_backbone=pretrained_backbone, network=lpips_network,
                          resize_to=resize_to, name="lpips")


def lpips_mask_loss(net: str = "alex", pretrained_backbone: bool = True,
                    lpips_network: nn.Module | None = None, crop_size: int = DEFAULT_CROP_SIZE,
                    crop_margin: float = 0.0) -> PerceptualLoss:
    """LPIPS on the mask's bounding box (combiner name ``"lpips_mask"``)."""
    return PerceptualLoss(net, crop_to_mask=True, crop_size=crop_size, crop_margin=crop_margin,
                          pretrained_backbone=pretrained_backbone, network=lpips_network, name="lpips_mask")
