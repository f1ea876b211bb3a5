"""The public weights we know: each pinned to a Hub commit (or to a version of the PyPI package that ships the
file), with its licence and (where known) its sha256."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from unmask.errors import HubError, WeightsError
from unmask.hub.io import hub_download, sha256_file

NON_COMMERCIAL = ("non-commercial research only (FFHQ is CC BY-NC-SA 4.0; the released weights carry the "
                  "original authors' non-commercial terms)")
#: DigiFace-1M (Bae et al., WACV 2023; Microsoft): its licence allows non-commercial research use only.
DIGIFACE_NON_COMMERCIAL = ("code MIT (gan-face-generate, Chien Liu); the weights are trained on DigiFace-1M, whose "
                           "licence is non-commercial research only, so use them for non-commercial research only")


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
        package: for weights shipped inside a PyPI package instead of a Hub repo: the import name of the
            package (``filename`` is then relative to its folder, ``repo_id`` and ``revision`` are empty).
        package_version: the package version pinned (its ``pip install`` line is :attr:`install_hint`).
        distribution: the package's name on PyPI.
    """

    name: str
    kind: str
    repo_id: str
    filename: str
    revision: str
    licence: str
    source: str
    sha256: str | None = None
    package: str | None = None
    package_version: str | None = None
    distribution: str | None = None

    @property
    def install_hint(self) -> str:
        """The command that installs a packaged entry (without its declared dependencies)."""
        return f"pip install --no-deps {self.distribution}=={self.package_version}"


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
    # A DCGAN (z of 100 -> 64 px) trained on DigiFace-1M, inside the wheel of gan-face-generate 1.1.1 (14.3 MB).
    PublicWeights("digiface-dcgan", "dcgan", "", "weights.tar", "", DIGIFACE_NON_COMMERCIAL,
                  "chien-liu/DCGAN-PyTorch generator (PyTorch DCGAN tutorial architecture) trained on DigiFace-1M, "
                  "shipped in the PyPI wheel gan-face-generate 1.1.1",
                  "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
                  package="gan_face_generate", package_version="1.1.1", distribution="gan-face-generate"),
)}


def packaged_file(entry: PublicWeights) -> Path:
    """The file of a packaged entry inside its installed package, version and sha256 checked.

    Raises:
        WeightsError: the package is missing (with the ``pip install --no-deps`` line to run), is another version,
            or its file is absent or has another digest.
    """
    import importlib.metadata
    import importlib.util

    assert entry.package is not None
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"{entry.name} ships inside the PyPI package {entry.distribution}, which is not "
                           f"installed; run `{entry.install_hint}` (--no-deps: its wheel declares wandb, which "
                           "unmask does not need).")
    try:
        version = importlib.metadata.version(entry.distribution or entry.package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if entry.package_version is not None and version != entry.package_version:
        raise WeightsError(f"{entry.name} is pinned to {entry.distribution} {entry.package_version}, but "
                           f"{version} is installed; run `{entry.install_hint}`.")
    path = Path(next(iter(spec.submodule_search_locations))) / entry.filename
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed {entry.distribution}; reinstall it with "
                           f"`{entry.install_hint} --force-reinstall`.")
    return path


def registered_available(name: str, *, ask_hub: bool = True, timeout: float = 5.0) -> bool:
    """Whether ``REGISTRY[name]`` can load here: its file is in the Hugging Face cache at the pinned revision,
    or (with ``ask_hub`` and ``HF_HUB_OFFLINE`` unset) the Hub answers a metadata request for it within
    ``timeout`` seconds. Downloads nothing."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if name not in REGISTRY:
        raise HubError(f"unknown public weights {name!r}; known: {sorted(REGISTRY)}.")
    entry = REGISTRY[name]
    if entry.package is not None:
        try:
            packaged_file(entry)
        except WeightsError:
            return False
        return True
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
    """The public file ``REGISTRY[name]``: downloaded at its pinned revision, or found in its installed package
    (:func:`packaged_file`); its sha256 verified where known."""
    if name not in REGISTRY:
        raise HubError(f"unknown public weights {name!r}; known: {sorted(REGISTRY)}.")
    entry = REGISTRY[name]
    if entry.package is not None:
        path = packaged_file(entry)
    else:
        path = hub_download(entry.repo_id, entry.filename, revision=entry.revision, **hub_kwargs)
    if entry.sha256 is not None:
        digest = sha256_file(path)
        if digest != entry.sha256:
            fix = (f"reinstall it with `{entry.install_hint} --force-reinstall`" if entry.package is not None
                   else "delete it from the cache and retry")
            raise WeightsError(f"{path} has sha256 {digest}, expected {entry.sha256} for {name}. The file "
                               f"is damaged or the upstream file changed; {fix}.")
    return path

