"""Files and the Hugging Face Hub: reading configs and weights strictly, downloading with clear errors, pushing.

Legacy public ``.pt``/``.pth`` checkpoints are read with ``torch.load(weights_only=True)`` and never
execute pickled code. Every failure surfaces as :class:`unmask.errors.HubError` or
:class:`unmask.errors.WeightsError` with a message that says what to do. Nothing here downloads at
import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmask.errors import HubError, WeightsError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``config.json`` into a dict, with a clear error when it is not JSON."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read model config {path}: {exc}. Re-download or re-save the model.") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"model config {path} is not a JSON object.")
    return data



def load_safetensors_strict(model: nn.Module, path: str | os.PathLike, *, source: str = "") -> None:
    """Load a safetensors file into ``model`` with ``strict=True``; explain any mismatch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise WeightsError(
            f"cannot read weights {path}: {exc}. The file is damaged or not safetensors; re-download it."
        ) from exc
    load_state_dict_strict(model, state, source=source or str(path))


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a message listing what does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"{len(wrong_shape)} with wrong shape (e.g. {k}: file {tuple(state[k].shape)} "
                         f"vs model {tuple(own[k].shape)})")
        raise WeightsError(
            f"weights from {source} do not fit {type(model).__name__}: " + "; ".join(parts)
            + ". Check that the config matches the checkpoint (size, channels, layers) or convert the "
              "file with `python -m unmask.convert`."
        )
    model.load_state_dict(state, strict=True)



def resolve_file(source: str | os.PathLike, filename: str, *, revision: str | None = None,
                 subfolder: str | None = None, **hub_kwargs: Any) -> Path:
    """Path of ``filename`` in a local folder, or downloaded from the Hub repo ``source``.

    Raises:
        HubError: with a message for each way the Hub can fail (offline, no repo, no file,
            bad revision, gated/private repo).
    """
    if subfolder:
        filename = f"{subfolder.strip('/')}/{filename}"
    local = Path(source)
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            raise HubError(f"{filename} not found in folder {local}. Save the model there with "
                           "`save_pretrained` or convert a checkpoint with `python -m unmask.convert`.")
        return path
    if local.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        raise HubError(f"{source!s} is neither a model folder nor a Hub repo id of the form 'owner/name'.")
    return hub_download(str(source), filename, revision=revision, **hub_kwargs)


#: Values of ``HF_HUB_OFFLINE`` that huggingface_hub itself reads as true (case-insensitive; anything else is false).
HUB_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def hub_offline() -> bool:
    """Whether the Hub is switched off, read now from the environment exactly as huggingface_hub reads it.

    ``HF_HUB_OFFLINE`` (or, when it is unset or empty, the legacy ``TRANSFORMERS_OFFLINE``) set to
    ``1``, ``on``, ``yes`` or ``true`` in any case; every other value means online.
    """
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in HUB_TRUE_VALUES


def hub_download(repo_id: str, filename: str, *, revision: str | None = None, **hub_kwargs: Any) -> Path:
    """``hf_hub_download`` with every failure turned into one :class:`HubError` that says what to do."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    where = f"{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision, **hub_kwargs))
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as exc:
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hub cannot be reached"
        raise HubError(f"cannot fetch {where}: {why} and the file is not in the local cache. Connect to "
                       "the internet and unset HF_HUB_OFFLINE, or download it elsewhere and pass the local "
                       "folder/file instead.") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise HubError(f"revision {revision!r} does not exist in {repo_id}: pick a commit or tag listed on "
                       "the repo's history page.") from exc
    except hf_errors.EntryNotFoundError as exc:
        raise HubError(f"{repo_id} has no file {filename!r} (revision {revision or 'main'}). "
                       "Check the filename in unmask.hub.REGISTRY or the repo's file list.") from exc
    except hf_errors.GatedRepoError as exc:
        raise HubError(f"{repo_id} is gated: accept its terms on the Hub and log in with "
                       "`huggingface-cli login`.") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise HubError(f"Hub repo {repo_id!r} not found (or private). Check the repo id, or log in if it "
                       "is private.") from exc
    except (hf_errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise HubError(f"cannot fetch {where}: {exc}. Check the network, the repo id and the revision.") from exc



def load_legacy_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a public ``.pt``/``.pth`` checkpoint safely (``weights_only=True``: no code runs).

    Raises:
        WeightsError: not a file, not a torch checkpoint, or it holds pickled objects other than
            tensors and plain containers (such files need the original code; we refuse them).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist.")
    import argparse

    try:
        # rosinality training checkpoints store their argparse.Namespace; it only holds plain values.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError…
        raise WeightsError(
            f"cannot read {path} as a weights-only torch checkpoint: {str(exc).splitlines()[0]}. "
            "The file may be truncated, or it pickles objects beyond tensors (refused for safety)."
        ) from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a dict of tensors.")
    return obj



def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()



def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False,
                commit_message: str = "unmask training export") -> str:
    """Upload a model folder (``save_pretrained`` output) to the Hub repo ``repo_id``, created if missing.

    Returns:
        the commit URL.

    Raises:
        HubError: offline, not logged in, or the upload failed.
    """
    if hub_offline():
        raise HubError(f"cannot push {folder} to {repo_id}: HF_HUB_OFFLINE is set. Unset it and log in, or "
                       f"upload the folder later with `huggingface-cli upload {repo_id} {folder}`.")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message)
    except Exception as exc:  # huggingface_hub raises HTTP, auth and OS errors
        raise HubError(f"pushing {folder} to {repo_id} failed: {exc}. Check the network and that you are logged in "
                       "(`huggingface-cli login`) with write access; the model stays in the local folder.") from exc
    return str(getattr(info, "commit_url", info))

