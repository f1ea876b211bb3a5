"""Identity embedding network for joint discriminative + metric learning.

"Joint Discriminative and Metric Embedding Learning for Person Re-Identification" (Sabri,
Randhawa, Doretto, arXiv 2212.14107): a backbone, an embedding head, a batch-norm neck, an
angular-margin classifier and attribute heads, trained with softmax + batch-hard triplet +
attribute losses (:mod:`unmask.losses.metric`).

Which feature each loss sees (the BN-neck of Luo et al., "Bag of Tricks and a Strong Baseline
for Deep Person Re-Identification", 2019):

* ``embedding`` -- the backbone's embedding head output (``fc`` + BatchNorm1d of the iresnet /
  IR-SE), *before* the neck. The batch-hard triplet loss works here, with Euclidean distances
  that are free to use the whole space.
* ``neck`` -- ``BatchNorm1d(embedding)`` with a fixed zero shift, so features spread around the
  origin of the hypersphere. The angular-margin softmax works on cosines between the neck feature
  and the classifier's class weights (``cosine``), and the attribute heads read it too.
* ``embed(images)`` -- the L2-normalised neck feature (or the pre-neck one, ``embed_feature``):
  what verification, re-id retrieval and the unmasker's identity loss compare by cosine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unmask.errors import ConfigError
from unmask.hub import HubModel
from unmask.models.identity import IResNet, IResNetConfig, IRSEConfig, IRSEIdentity

BACKBONES = ("iresnet", "irse")
EMBED_FEATURES = ("neck", "embedding")


def cosine_logits(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between each feature and each class weight.

    Args:
        features: ``(B, D)`` features (any norm).
        weight: ``(C, D)`` class weights (any norm).

    Returns:
        ``(B, C)`` cosines in ``[-1, 1]``.
    """
    return F.linear(F.normalize(features, dim=1), F.normalize(weight, dim=1))


@dataclass(frozen=True)
class EmbeddingConfig:
    """Architecture of :class:`IdentityEmbedder`; flat fields so it round-trips through ``config.json``.

    Attributes:
        backbone: ``"iresnet"`` (arcface_torch IResNet) or ``"irse"`` (IR / IR-SE of pSp).
        input_size: side the backbone sees; a multiple of 16.
        layers: units per stage (iresnet ``layers``, IR-SE ``stage_blocks``).
        widths: channels per stage (iresnet ``widths``, IR-SE ``stage_channels``).
        irse_mode: ``"ir"`` or ``"ir_se"`` when ``backbone="irse"``.
        embedding_dim: dimension ``D`` of every feature.
        dropout: dropout before the backbone's final linear layer.
        num_classes: training identities ``C`` of the angular-margin classifier; 0 = none (inference).
        num_attributes: binary attributes ``A`` predicted from the neck feature; 0 = none.
        attribute_names: optional names of those attributes (for reports).
        crop: cut the backbone's face box out of an FFHQ-aligned input first (real faces); the
            teaching world's faces are already tight, so it defaults to off.
        embed_feature: which feature :meth:`IdentityEmbedder.embed` normalises, ``"neck"`` or ``"embedding"``.
    """

    backbone: str = "iresnet"
    input_size: int = 64
    layers: tuple[int, ...] = (1, 1, 1, 1)
    widths: tuple[int, ...] = (16, 32, 64, 128)
    irse_mode: str = "ir_se"
    embedding_dim: int = 128
    dropout: float = 0.0
    num_classes: int = 0
    num_attributes: int = 0
    attribute_names: tuple[str, ...] = ()
    crop: bool = False
    embed_feature: str = "neck"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}.")
        if self.embed_feature not in EMBED_FEATURES:
            raise ConfigError(f"embed_feature must be one of {EMBED_FEATURES}, got {self.embed_feature!r}.")
        if self.num_classes < 0 or self.num_attributes < 0:
            raise ConfigError("num_classes and num_attributes must be >= 0.")
        if self.attribute_names and len(self.attribute_names) != self.num_attributes:
            raise ConfigError(f"{len(self.attribute_names)} attribute names for num_attributes={self.num_attributes}.")
        self.backbone_config()  # validates sizes and stages now

    def backbone_config(self) -> IResNetConfig | IRSEConfig:
        """The config of the trunk these fields describe."""
        if self.backbone == "iresnet":
            return IResNetConfig(layers=tuple(self.layers), widths=tuple(self.widths), input_size=self.input_size,
                                 embedding_dim=self.embedding_dim, dropout=self.dropout)
        return IRSEConfig(mode=self.irse_mode, input_size=self.input_size, stage_channels=tuple(self.widths),
                          stage_blocks=tuple(self.layers), embedding_dim=self.embedding_dim, dropout=self.dropout)

    @classmethod
    def irse50(cls, **overrides) -> EmbeddingConfig:
        """IR-SE-50 at 112 px with 512-d embeddings, for real faces (crop on)."""
        values = {"backbone": "irse", "input_size": 112, "layers": (3, 4, 14, 3), "widths": (64, 128, 256, 512),
                  "embedding_dim": 512, "dropout": 0.0, "crop": True}
        return cls(**{**values, **overrides})


class IdentityEmbedder(HubModel):
    """Backbone + embedding head + BN neck + angular-margin classifier + attribute heads.

    ``forward(images)`` returns a dict:

    * ``embedding`` ``(B, D)``: pre-neck feature (batch-hard triplet);
    * ``neck`` ``(B, D)``: post-BN feature (softmax, attributes, retrieval);
    * ``cosine`` ``(B, C)``: cosines between ``neck`` and the class weights (only if ``num_classes > 0``);
    * ``attributes`` ``(B, A)``: attribute logits (only if ``num_attributes > 0``).

    ``embed(images)`` returns ``(B, D)`` unit-norm embeddings.
    Images are ``(B, 3, H, W)`` in ``[-1, 1]``; other sizes than ``input_size`` are resized.
    """

    config_class = EmbeddingConfig
    model_card_note = ("Identity embedding trained with angular-margin softmax + batch-hard triplet + attribute "
                       "losses (Sabri, Randhawa, Doretto, arXiv 2212.14107).")

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else EmbeddingConfig()
        self.config = config
        trunk_config = config.backbone_config()
        self.trunk = IResNet(trunk_config) if isinstance(trunk_config, IResNetConfig) else IRSEIdentity(trunk_config)
        dim = config.embedding_dim
        self.neck = nn.BatchNorm1d(dim)
        # A zero, frozen shift keeps the neck features centred, as the BN-neck prescribes.
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, config.num_classes, bias=False) if config.num_classes else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.01)
        self.attribute_head = nn.Linear(dim, config.num_attributes) if config.num_attributes else None

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Crop (if ``config.crop``) and resize faces to ``(B, 3, input_size, input_size)``."""
        return self.trunk.preprocess(images, crop=self.config.crop)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features for the losses (see the class docstring)."""
        embedding = self.trunk(self.preprocess(images))
        neck = self.neck(embedding)
        out = {"embedding": embedding, "neck": neck}
        if self.classifier is not None:
            out["cosine"] = cosine_logits(neck, self.classifier.weight)
        if self.attribute_head is not None:
            out["attributes"] = self.attribute_head(neck)
        return out

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm identity embeddings ``(B, D)`` (differentiable; call ``eval()`` first for inference)."""
        embedding = self.trunk(self.preprocess(images))
        feature = self.neck(embedding) if self.config.embed_feature == "neck" else embedding
        return F.normalize(feature.float(), dim=1)  # float32 cosines under bf16 autocast

    def without_classifier(self) -> IdentityEmbedder:
        """A copy for inference: same weights, no class weights (``num_classes = 0``), in eval mode."""
        model = IdentityEmbedder(dataclasses.replace(self.config, num_classes=0))
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("classifier.")}
        model.load_state_dict(state, strict=True)
        return model.to(next(self.parameters()).device).eval()
