"""Saving and loading models: local folders and the Hugging Face Hub.

Format: a folder (or Hub repo) with ``config.json`` (the model's frozen config plus an
``architecture`` key naming the class), ``model.safetensors`` and a ``README.md`` model card.
Weights always load with ``strict=True``. Legacy public ``.pt``/``.pth`` checkpoints are read
with ``torch.load(weights_only=True)`` and never execute pickled code; ``unmask.convert``
turns them into this format.

Every failure to fetch or load surfaces as :class:`unmask.errors.HubError` or
:class:`unmask.errors.WeightsError` with a message that says what to do. Nothing here
downloads at import time.
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

from unmask.errors import HubError, WeightsError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ARCHITECTURE_KEY = "architecture"

T = TypeVar("T", bound="HubModel")

# architecture name -> class, filled by HubModel.__init_subclass__ as model modules are imported.
_ARCHITECTURES: dict[str, type[HubModel]] = {}
# Modules that define HubModel subclasses, imported on demand by `from_pretrained(source)`.
_MODEL_MODULES = (
    "unmask.models.stylegan2",
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
        config = config_from_dict(cls.config_class, raw, source=str(source))
        model = cls(config)
        weights_path = resolve_file(source, WEIGHTS_NAME, revision=revision, subfolder=subfolder, **hub_kwargs)
        load_safetensors_strict(model, weights_path, source=str(source))
        model.to(map_location)
        model.eval()
        return model


# -------------------------------------------------------------------- helpers
def config_to_dict(config: Any) -> dict[str, Any]:
    """A frozen dataclass config as a JSON-ready dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"model config must be a dataclass instance, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(config_class: type, raw: Mapping[str, Any], *, source: str = "config") -> Any:
    """Build ``config_class`` from a dict, turning lists back into tuples and naming unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise WeightsError(
            f"{source}: config.json has keys {unknown} that {config_class.__name__} does not know. "
            "The files were written by another architecture or a newer unmask; upgrade unmask or "
            "check the repo id."
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return config_class(**values)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{source}: config.json is not a valid {config_class.__name__}: {exc}") from exc


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


# -------------------------------------------------------------------- registry of public weights
NON_COMMERCIAL = ("non-commercial research only (FFHQ is CC BY-NC-SA 4.0; the released weights carry the "
                  "original authors' non-commercial terms)")


@dataclasses.dataclass(frozen=True)
class PublicWeights:
    """One public checkpoint we know how to convert and load.

    Attributes:
        name: our short name (``python -m unmask.convert`` KIND is ``kind``).
        kind: converter to use: ``stylegan2``, ``psp``, ``e4e``, ``irse50``, ``iresnet50``, ``iresnet100``,
            ``insightface``.
        repo_id / filename: where it lives on the Hugging Face Hub.
        revision: the commit we pin (40 hex digits).
        licence: the terms the weights come with.
        sha256: expected digest of the file, where known.
        source: the original project the weights come from.
    """

    name: str
    kind: str
    repo_id: str
    filename: str
    revision: str
    licence: str
    source: str
    sha256: str | None = None


REGISTRY: dict[str, PublicWeights] = {w.name: w for w in (
    PublicWeights("stylegan2-ffhq-config-f", "stylegan2", "ZeqiangLai/StyleGAN2", "stylegan2-ffhq-config-f.pt",
                  "bb4e00dc8ac0afbb9e0a5b6f72754c679673ee2e", NON_COMMERCIAL,
                  "NVlabs StyleGAN2 config-f FFHQ 1024, rosinality/stylegan2-pytorch conversion (g_ema)"),
    PublicWeights("psp-ffhq-encode", "psp", "trysem/pixel2style2pixel", "psp_ffhq_encode.pt",
                  "dd4308f2149943e240c2c7e963b3e2f294eefb02", NON_COMMERCIAL,
                  "eladrich/pixel2style2pixel FFHQ inversion (GradualStyleEncoder IR-SE-50, 18 styles)"),
    PublicWeights("e4e-ffhq-encode", "e4e", "AIRI-Institute/HairFastGAN",
                  "pretrained_models/encoder4editing/e4e_ffhq_encode.pt",
                  "47855f8ea72b02294649385211a1ae1fd7dcb58e", NON_COMMERCIAL,
                  "omertov/encoder4editing FFHQ encoder (Encoder4Editing IR-SE-50, 18 styles)"),
    # The same file as pSp's pretrained_models/model_ir_se50.pth (175,367,323 bytes, this sha256).
    PublicWeights("ir-se50", "irse50", "lithiumice/ArcFace_PyTorch", "InsightFace_Pytorch+model_ir_se50.pth",
                  "086811ee76897fdfd94335ea4ff40ae074136022",
                  NON_COMMERCIAL + "; trained on MS-Celeb-1M-derived data",
                  "TreB1en/InsightFace_Pytorch IR-SE-50 (the identity net of pSp's ID loss)",
                  "a035c768259b98ab1ce0e646312f48b9e1e218197a0f80ac6765e88f8b6ddf28"),
    PublicWeights("arcface-r50", "iresnet50", "lithiumice/ArcFace_PyTorch", "ms1mv3_arcface_r50_fp16.pth",
                  "086811ee76897fdfd94335ea4ff40ae074136022",
                  NON_COMMERCIAL + "; insightface models are for non-commercial research",
                  "deepinsight/insightface arcface_torch IResNet-50 trained on MS1MV3",
                  "ef005ba502a2d0f40e7b94245054d3a23e375776f7035080fcbce45ae49cfb01"),
    PublicWeights("arcface-r100", "iresnet100", "lithiumice/ArcFace_PyTorch", "ms1mv3_arcface_r100_fp16.pth",
                  "086811ee76897fdfd94335ea4ff40ae074136022",
                  NON_COMMERCIAL + "; insightface models are for non-commercial research",
                  "deepinsight/insightface arcface_torch IResNet-100 trained on MS1MV3",
                  "a566a62357f0c55b679d9ff2f022a294486568be0c00665d39029d0e46a8109b"),
    PublicWeights("insightface-buffalo_l", "insightface", "public-data/insightface", "models/buffalo_l/det_10g.onnx",
                  "33c1063c49c785b7652d3fd529f86fa4f149392b",
                  "insightface model packs: non-commercial research only",
                  "deepinsight/insightface buffalo_l (SCRFD detector, 1k3d68 landmarks, w600k_r50)"),
)}


def registered_available(name: str, *, ask_hub: bool = True, timeout: float = 5.0) -> bool:
    """Whether ``REGISTRY[name]`` can load here: its file is in the Hugging Face cache at the pinned revision,
    or (with ``ask_hub`` and ``HF_HUB_OFFLINE`` unset) the Hub answers a metadata request for it within
    ``timeout`` seconds. Downloads nothing."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if name not in REGISTRY:
        raise HubError(f"unknown public weights {name!r}; known: {sorted(REGISTRY)}.")
    entry = REGISTRY[name]
    cached = try_to_load_from_cache(entry.repo_id, entry.filename, revision=entry.revision)
    if isinstance(cached, str) and Path(cached).is_file():
        return True
    if not ask_hub or constants.HF_HUB_OFFLINE:
        return False
    try:
        get_hf_file_metadata(hf_hub_url(entry.repo_id, entry.filename, revision=entry.revision), timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure (network, 404, gated) means "not loadable here"
        return False
    return True


def download_registered(name: str, **hub_kwargs: Any) -> Path:
    """Download the public file ``REGISTRY[name]`` at its pinned revision; verify sha256 where known."""
    if name not in REGISTRY:
        raise HubError(f"unknown public weights {name!r}; known: {sorted(REGISTRY)}.")
    entry = REGISTRY[name]
    path = hub_download(entry.repo_id, entry.filename, revision=entry.revision, **hub_kwargs)
    if entry.sha256 is not None:
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise WeightsError(f"{path} has sha256 {digest}, expected {entry.sha256} for {name}. The download "
                               "is damaged or the upstream file changed; delete it from the cache and retry.")
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------- push
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


# -------------------------------------------------------------------- bundle manifests
#: The manifest of a bundle folder (or Hub repo): pipeline settings plus a ``components`` table.
PIPELINE_FILE = "pipeline.json"
COMPONENTS_KEY = "components"
#: Roles a bundle fills; ``generator`` and ``encoder`` are required.
COMPONENT_ROLES = ("generator", "encoder", "identity")
REQUIRED_ROLES = ("generator", "encoder")
#: Built-in manifests (bundles assembled from public weights), one ``<name>.json`` each.
MANIFESTS_DIR = Path(__file__).resolve().parent / "manifests"


@dataclasses.dataclass(frozen=True)
class ComponentSource:
    """Where one model of a bundle comes from: exactly one of ``subfolder``, ``registry`` or ``path``.

    In a manifest a component is either a string (a ``subfolder``, what ``save_pretrained`` writes)
    or an object with these keys.

    Attributes:
        subfolder: a folder inside the bundle, in the ``save_pretrained`` format.
        registry: a :data:`REGISTRY` name: downloaded at its pinned revision, converted with its ``kind``.
        path: a model folder or Hub repo id in the ``save_pretrained`` format or, with ``kind``, a
            public checkpoint file.
        kind: the converter of the file at ``path`` (``unmask.models.public.KINDS``).
    """

    subfolder: str | None = None
    registry: str | None = None
    path: str | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("subfolder", "registry", "path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise WeightsError(f"a bundle component needs exactly one of 'subfolder', 'registry' or 'path', got "
                               f"{given or 'none'}.")
        if self.kind is not None and self.path is None:
            raise WeightsError("'kind' names the converter of a checkpoint file and goes with 'path' only.")
        if self.registry is not None and self.registry not in REGISTRY:
            raise WeightsError(f"unknown public weights {self.registry!r}; known: {sorted(REGISTRY)}.")

    @classmethod
    def from_json(cls, raw: Any, *, source: str) -> ComponentSource:
        """Parse a manifest entry: a subfolder name, or an object with the fields above."""
        if isinstance(raw, str):
            return cls(subfolder=raw)
        if not isinstance(raw, Mapping):
            raise WeightsError(f"{source}: a component must be a subfolder name or an object, got {raw!r}.")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise WeightsError(f"{source}: component keys {unknown} are unknown; use {fields}.")
        return cls(**{k: str(v) for k, v in raw.items()})

    def to_json(self) -> str | dict[str, str]:
        if self.subfolder is not None:
            return self.subfolder
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class BundleManifest:
    """A bundle's recipe: pipeline settings (``PipelineConfig`` fields) and where each model comes from.

    Attributes:
        settings: the pipeline's settings as plain JSON values; the pipeline validates them.
        components: ``{role: ComponentSource}`` with ``generator``, ``encoder`` and optionally ``identity``.
    """

    settings: Mapping[str, Any]
    components: Mapping[str, ComponentSource]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], *, source: str = "manifest") -> BundleManifest:
        """Parse a manifest dict (the content of ``pipeline.json``)."""
        if not isinstance(raw, Mapping):
            raise WeightsError(f"{source} is not a JSON object.")
        settings = {k: v for k, v in raw.items() if k != COMPONENTS_KEY}
        parts = raw.get(COMPONENTS_KEY, {})
        if not isinstance(parts, Mapping):
            raise WeightsError(f"{source}: {COMPONENTS_KEY!r} must map roles to components, got {parts!r}.")
        unknown = sorted(set(parts) - set(COMPONENT_ROLES))
        if unknown:
            raise WeightsError(f"{source} names components {unknown}; a bundle has {list(COMPONENT_ROLES)}.")
        for role in REQUIRED_ROLES:
            if role not in parts:
                raise WeightsError(f"{source} names no {role!r} component.")
        components = {role: ComponentSource.from_json(parts[role], source=f"{source} [{role}]")
                      for role in COMPONENT_ROLES if parts.get(role)}
        return cls(settings=dict(settings), components=components)

    def to_json(self) -> dict[str, Any]:
        return {**self.settings, COMPONENTS_KEY: {role: c.to_json() for role, c in self.components.items()}}


def read_manifest(source: str | os.PathLike, *, revision: str | None = None) -> BundleManifest:
    """The manifest of a bundle folder or Hub repo (its ``pipeline.json``)."""
    path = resolve_file(source, PIPELINE_FILE, revision=revision)
    return BundleManifest.from_json(read_config(path), source=f"{source}/{PIPELINE_FILE}")


def builtin_manifests() -> list[str]:
    """Names of the built-in manifests (``unmask/manifests/*.json``), e.g. ``["ffhq"]``."""
    return sorted(p.stem for p in MANIFESTS_DIR.glob("*.json"))


def builtin_manifest(name: str) -> BundleManifest:
    """The built-in manifest ``name`` (a bundle assembled from :data:`REGISTRY` entries)."""
    path = MANIFESTS_DIR / f"{name}.json"
    if not path.is_file():
        raise WeightsError(f"no built-in bundle manifest {name!r}; known: {builtin_manifests()}.")
    return BundleManifest.from_json(read_config(path), source=f"manifest {name!r}")


def write_manifest(folder: str | os.PathLike, manifest: BundleManifest) -> Path:
    """Write ``folder/pipeline.json`` atomically; returns its path."""
    from unmask.faces.io import atomic_write

    return atomic_write(Path(folder) / PIPELINE_FILE, json.dumps(manifest.to_json(), indent=2) + "\n")
