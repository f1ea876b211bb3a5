"""Saving and loading models: local folders and the Hugging Face Hub.

* :mod:`unmask.hub.model`: the :class:`HubModel` base (``save_pretrained`` / strict ``from_pretrained`` /
  ``push_to_hub``, safetensors + ``config.json`` + model card) and :func:`from_pretrained` for any model;
* :mod:`unmask.hub.io`: file and Hub I/O (configs, strict weights, downloads with clear errors, legacy
  checkpoints read weights-only, pushing a folder);
* :mod:`unmask.hub.registry`: the pinned :data:`REGISTRY` of public weights with their licences.

Bundles (a generator, an encoder and an identity network with a ``pipeline.json`` manifest) live in
:mod:`unmask.bundle`. Nothing here downloads at import time.
"""

from __future__ import annotations

from unmask.hub.io import (
    CONFIG_NAME,
    HUB_TRUE_VALUES,
    WEIGHTS_NAME,
    hub_download,
    hub_offline,
    load_legacy_checkpoint,
    load_safetensors_strict,
    load_state_dict_strict,
    push_folder,
    read_config,
    resolve_file,
    sha256_file,
)
from unmask.hub.model import ARCHITECTURE_KEY, HubModel, config_to_dict, from_pretrained, parse_config
from unmask.hub.registry import (
    DIGIFACE_NON_COMMERCIAL,
    NON_COMMERCIAL,
    REGISTRY,
    PublicWeights,
    download_registered,
    packaged_file,
    registered_available,
)

__all__ = [
    "ARCHITECTURE_KEY",
    "CONFIG_NAME",
    "DIGIFACE_NON_COMMERCIAL",
    "HUB_TRUE_VALUES",
    "NON_COMMERCIAL",
    "REGISTRY",
    "WEIGHTS_NAME",
    "HubModel",
    "PublicWeights",
    "config_to_dict",
    "download_registered",
    "from_pretrained",
    "hub_download",
    "hub_offline",
    "load_legacy_checkpoint",
    "load_safetensors_strict",
    "load_state_dict_strict",
    "packaged_file",
    "parse_config",
    "push_folder",
    "read_config",
    "registered_available",
    "resolve_file",
    "sha256_file",
]
