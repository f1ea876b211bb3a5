"""The model base: every unmask model with weights is a :class:`HubModel` built from one frozen config.

Format: a folder (or Hub repo) with ``config.json`` (the model's frozen config plus an
``architecture`` key naming the class), ``model.safetensors`` and a ``README.md`` model card.
Weights always load with ``strict=True``; ``config.json`` is parsed by the one dict->dataclass
parser of the project (:func:`unmask.config.parse_dataclass`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from unmask.config import parse_dataclass
from unmask.errors import ConfigError, WeightsError
from unmask.hub.io import CONFIG_NAME, WEIGHTS_NAME, load_safetensors_strict, read_config, resolve_file

ARCHITECTURE_KEY = "architecture"

T = TypeVar("T", bound="HubModel")

# architecture name -> class, filled by HubModel.__init_subclass__ as model modules are imported.
_ARCHITECTURES: dict[str, type[HubModel]] = {}
# Modules that define HubModel subclasses, imported on demand by `from_pretrained(source)`.
_MODEL_MODULES = (
    "unmask.models.stylegan2",
    "unmask.models.dcgan",
    "unmask.models.painter",
    "unmask.models.encoder",
    "unmask.models.identity",
    "unmask.models.embedding",
)


class HubModel(nn.Module, PyTorchModelHubMixin, library_name="unmask", tags=["unmask"]):
    """Base class of every model with weights: an ``nn.Module`` built from one frozen config.

    Subclasses set ``config_class`` (a frozen dataclass) and take ``config`` as the only
    constructor argument. They gain ``save_pretrained``, ``push_to_hub`` and a strict
    ``from_pretrained`` that works on local folders and Hub repos alike.
    """

    config_class: ClassVar[type]
    #: Text added to the generated model card (source, licence, training data).
    model_card_note: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _ARCHITECTURES[cls.__name__] = cls

    # ---------------------------------------------------------------- saving
    def save_pretrained(self, save_directory: str | os.PathLike, *, model_card: str | None = None,
                        **kwargs: Any) -> Any:
        """Write ``config.json``, ``model.safetensors`` and a model card to ``save_directory``.

        Args:
            save_directory: target folder (created if missing).
            model_card: optional Markdown replacing the generated card (e.g. source and licence); either way the
                card gets the "Intended use", "Out-of-scope use" and "Limitations" sections (:mod:`unmask.cards`).
            **kwargs: passed to ``PyTorchModelHubMixin.save_pretrained`` (``push_to_hub``, ``repo_id``…).
        """
        from unmask.cards import with_responsible_use

        config = config_to_dict(self.config)
        result = super().save_pretrained(save_directory, config={**config, ARCHITECTURE_KEY: type(self).__name__},
                                         **kwargs)
        if model_card is not None:
            Path(save_directory, "README.md").write_text(with_responsible_use(model_card), encoding="utf-8")
        return result

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        """The card written when none is given: the class's note, its size, and the responsible-use sections."""
        from huggingface_hub import ModelCard

        from unmask.cards import responsible_use_sections

        name = type(self).__name__
        parameters = sum(p.numel() for p in self.parameters())
        return ModelCard(
            f"---\nlibrary_name: unmask\ntags: [unmask]\n---\n\n# {name}\n\n"
            + (f"{self.model_card_note}\n\n" if self.model_card_note else "")
            + f"- Architecture: `{type(self).__module__}.{name}`, {parameters:,} parameters; config in `config.json`.\n"
            f"- Load: `unmask.hub.from_pretrained(FOLDER_OR_REPO)` (weights-only, `strict=True`).\n\n"
            + responsible_use_sections())

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = Path(save_directory) / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", ARCHITECTURE_KEY: type(self).__name__})
        os.replace(tmp, Path(save_directory) / WEIGHTS_NAME)

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls: type[T], source: str | os.PathLike, *, revision: str | None = None,
                        map_location: str | torch.device = "cpu", subfolder: str | None = None,
                        **hub_kwargs: Any) -> T:
        """Build the model from ``config.json`` and load ``model.safetensors`` with ``strict=True``.

        Args:
            source: a local folder or a Hub repo id (``owner/name``).
            revision: Hub commit, branch or tag; pin a commit for reproducible downloads.
            map_location: device for the loaded tensors.
            subfolder: folder inside ``source`` that holds the model (e.g. in a pipeline bundle).
            **hub_kwargs: passed to ``hf_hub_download`` (``cache_dir``, ``token``, ``local_files_only``).

        Raises:
            HubError: the files cannot be fetched.
            WeightsError: config or weights do not fit this class.
        """
        config_path = resolve_file(source, CONFIG_NAME, revision=revision, subfolder=subfolder, **hub_kwargs)
        raw = read_config(config_path)
        arch = raw.pop(ARCHITECTURE_KEY, cls.__name__)
        if arch != cls.__name__:
            target = _ARCHITECTURES.get(arch)
            if target is None or not issubclass(target, cls):
                raise WeightsError(
                    f"{source!s} holds a {arch!r} model, not a {cls.__name__}. "
                    f"Load it with unmask.hub.from_pretrained({str(source)!r}) or pick the right repo."
                )
            cls = target  # a subclass of the requested class: build the more specific one
        config = parse_config(cls.config_class, raw, source=str(source))
        model = cls(config)
        weights_path = resolve_file(source, WEIGHTS_NAME, revision=revision, subfolder=subfolder, **hub_kwargs)
        load_safetensors_strict(model, weights_path, source=str(source))
        model.to(map_location)
        model.eval()
        return model



def config_to_dict(config: Any) -> dict[str, Any]:
    """A frozen dataclass config as a JSON-ready dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"model config must be a dataclass instance, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def parse_config(config_class: type, raw: Mapping[str, Any], *, source: str = "config") -> Any:
    """``config_class`` from the dict of a ``config.json`` (or a bundle's ``pipeline.json``).

    :func:`unmask.config.parse_dataclass` does the parsing (field checks, lists back to tuples); its
    error becomes a :class:`WeightsError` naming the file, since the files, not the user, are wrong.
    """
    try:
        return parse_dataclass(config_class, raw)
    except ConfigError as exc:
        raise WeightsError(f"{source}: config.json does not fit {config_class.__name__}: {exc} The files were "
                           "written by another architecture or a newer unmask; upgrade unmask or check the "
                           "repo id.") from exc


def from_pretrained(source: str | os.PathLike, *, revision: str | None = None,
                    map_location: str | torch.device = "cpu", subfolder: str | None = None,
                    **hub_kwargs: Any) -> HubModel:
    """Load any unmask model from a folder or Hub repo; the class comes from ``config.json``."""
    import importlib

    config_path = resolve_file(source, CONFIG_NAME, revision=revision, subfolder=subfolder, **hub_kwargs)
    arch = read_config(config_path).get(ARCHITECTURE_KEY)
    if arch is None:
        raise WeightsError(f"{source!s}: config.json has no {ARCHITECTURE_KEY!r} key, so the model class "
                           "is unknown. Load it with the class's own from_pretrained.")
    for module in _MODEL_MODULES:
        if arch in _ARCHITECTURES:
            break
        importlib.import_module(module)
    if arch not in _ARCHITECTURES:
        raise WeightsError(f"{source!s}: unknown architecture {arch!r}; known: {sorted(_ARCHITECTURES)}.")
    return _ARCHITECTURES[arch].from_pretrained(source, revision=revision, map_location=map_location,
                                                subfolder=subfolder, **hub_kwargs)

