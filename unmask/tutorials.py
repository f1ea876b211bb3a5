"""Sizes of the tutorial notebooks (``tutorials/``) per run profile, and which profile runs.

Every notebook's first code cell (tagged ``parameters`` for papermill) reads
``PROFILE = os.environ.get("UNMASK_NB_PROFILE", "auto")``; the next cell calls :func:`choose_profile`,
prints which profile runs and why, and calls :func:`tutorial_sizes`, so that step counts, face counts
and the bundle live in one tested place instead of being scattered over the notebooks.

- ``auto`` (the default): ``full`` where a CUDA GPU is present *and* the ``ffhq`` bundle's Hub weights
  can load (cached, or the Hub answers), ``ci`` everywhere else. A laptop without a GPU, or any machine
  offline without the weights cached, gets ``ci``.
- ``ci``: this CPU, offline, the teaching world, sized for a 2-core CPU: a few minutes per notebook at most
  (``tutorials/run_notebooks.py`` records each one's wall time in its metadata, ``unmask.seconds``, which
  the README's tutorial table shows).
- ``full``: a GPU, the Hub weights (StyleGAN2-FFHQ, e4e, IR-SE-50; **non-commercial research
  only**) and the user's data (``DATA``): the sizes of a real experiment.

Run a notebook in a profile with papermill, for example
``papermill tutorials/04_training_the_unmasking_encoder.ipynb out.ipynb -p PROFILE full -p DATA /path``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from unmask.errors import ConfigError

#: The profiles :func:`tutorial_sizes` knows, in the order the notebooks document them.
PROFILES = ("ci", "full")
#: What the notebooks ask for when ``UNMASK_NB_PROFILE`` is unset: :func:`choose_profile` decides.
AUTO = "auto"

#: The environment variable the notebooks' parameters cell reads.
PROFILE_ENV = "UNMASK_NB_PROFILE"


@dataclass(frozen=True)
class TutorialSizes:
    """How big each notebook's experiments are in one profile.

    Attributes:
        profile: ``ci`` or ``full``.
        bundle: the pipeline bundle the notebooks load (``teaching`` offline, ``ffhq`` from the Hub).
        device: ``cpu`` or ``cuda``.
        needs_hub: whether the profile downloads public weights (cells that need them are skipped in ci).
        show_faces: faces shown in a figure (grids, before/after strips).
        eval_faces: held-out faces the metrics are averaged over.
        refine_steps: refinement steps on the visible pixels (encoder + refine).
        optimize_steps: steps of per-image optimisation (generic inversion).
        train_steps: steps of notebook 04's own training loop, an unmasking encoder from scratch (ci: about
            5 minutes of one CPU core).
        ablation_steps: steps of notebook 04's trainer run (continuing from the notebook's encoder) and of each
            arm of its loss ablation.
        batch_size: training batch of notebook 04.
        log_every: width of notebook 04's running mean over its per-step losses.
        folds: verification folds (notebook 05).
        pairs_per_fold: genuine + impostor pairs per fold (notebook 05).
        identity_steps: steps of each identity-embedding run (notebook 06).
        reid_identities: identities of the re-identification gallery (notebook 06).
        images_per_identity: images per identity in the re-identification set (notebook 06).
        identity_input_size: side the identity embedder's backbone sees in notebook 06's runs (a
            multiple of 16; faces are average-pooled to it, so ci trains a 4x cheaper network).
        val_faces: held-out faces of the training runs' own validation (notebook 04: ``data.val_length``),
            validated several times per run, so fewer than ``eval_faces`` in ci.
    """

    profile: str
    bundle: str
    device: str
    needs_hub: bool
    show_faces: int
    eval_faces: int
    refine_steps: int
    optimize_steps: int
    train_steps: int
    ablation_steps: int
    batch_size: int
    log_every: int
    folds: int
    pairs_per_fold: int
    identity_steps: int
    reid_identities: int
    images_per_identity: int
    identity_input_size: int
    val_faces: int

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"profile must be one of {PROFILES}, got {self.profile!r}.")
        counts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if isinstance(getattr(self, f.name), int) and not isinstance(getattr(self, f.name), bool)}
        bad = [name for name, value in counts.items() if value < 1]
        if bad:
            raise ConfigError(f"tutorial sizes must be >= 1; got {', '.join(f'{n}={counts[n]}' for n in bad)}.")


_SIZES = {
    "ci": TutorialSizes(profile="ci", bundle="teaching", device="cpu", needs_hub=False, show_faces=6,
                        eval_faces=32, refine_steps=20, optimize_steps=40, train_steps=400, ablation_steps=15,
                        batch_size=8, log_every=20, folds=10, pairs_per_fold=4, identity_steps=60,
                        reid_identities=30, images_per_identity=4, identity_input_size=32, val_faces=24),
    "full": TutorialSizes(profile="full", bundle="ffhq", device="cuda", needs_hub=True, show_faces=8,
                          eval_faces=1000, refine_steps=200, optimize_steps=500, train_steps=20_000,
                          ablation_steps=5_000, batch_size=8, log_every=50, folds=10, pairs_per_fold=600,
                          identity_steps=20_000, reid_identities=750, images_per_identity=8,
                          identity_input_size=64, val_faces=1000),
}


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a notebook runs, and why (what :func:`choose_profile` printed).

    Attributes:
        profile: ``ci`` or ``full``.
        reason: one sentence a learner can act on.
    """

    profile: str
    reason: str

    def __str__(self) -> str:
        return f"profile {self.profile}: {self.reason}"


def _gpu_present() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _hub_weights_present(bundle: str = "ffhq") -> bool:
    """Whether every registry file of the built-in ``bundle`` can load here (cached, or the Hub answers);
    ``HF_HUB_OFFLINE=1`` limits this to the cache. Downloads nothing."""
    from unmask import hub
    from unmask.bundle.manifest import builtin_manifest

    parts = builtin_manifest(bundle).components.values()
    return all(part.registry is not None and hub.registered_available(part.registry) for part in parts)


def choose_profile(requested: str | None = None, *, gpu: bool | None = None,
                   hub_weights: bool | None = None) -> ProfileChoice:
    """The profile a notebook runs: ``requested`` as given, or the machine's choice for ``auto``.

    Args:
        requested: ``auto``, ``ci`` or ``full`` (case and spaces ignored); ``None`` reads
            ``UNMASK_NB_PROFILE`` (default ``auto``).
        gpu / hub_weights: what the machine has (``None``: look; tests pass them). The Hub is only asked
            where a GPU is present, so a CPU machine decides at once, without the network.

    Returns:
        ``ProfileChoice``: ``full`` only where a GPU and the ``ffhq`` bundle's Hub weights are both there,
        ``ci`` otherwise, with the reason.

    Raises:
        ConfigError: for an unknown profile, naming the known ones and the environment variable.
    """
    import os

    raw = os.environ.get(PROFILE_ENV, AUTO) if requested is None else requested
    key = str(raw).strip().lower() or AUTO
    if key in PROFILES:
        return ProfileChoice(key, f"asked for ({PROFILE_ENV} or the PROFILE parameter)")
    if key != AUTO:
        tutorial_sizes(key)  # raises the error that names the choices
    if not (_gpu_present() if gpu is None else gpu):
        return ProfileChoice("ci", "auto: no CUDA GPU here, so the CPU-sized teaching-world run (offline); "
                                   f"set {PROFILE_ENV}=full on a GPU machine for the real-face sizes")
    if not (_hub_weights_present() if hub_weights is None else hub_weights):
        return ProfileChoice("ci", "auto: a GPU is here but the ffhq bundle's Hub weights are neither cached nor "
                                   "reachable, so the teaching-world run; connect to the Hub (unset HF_HUB_OFFLINE) "
                                   "for the full profile")
    return ProfileChoice("full", "auto: a CUDA GPU and the ffhq bundle's Hub weights are both here "
                                 "(StyleGAN2-FFHQ, e4e, IR-SE-50: non-commercial research only)")


def tutorial_sizes(profile: str) -> TutorialSizes:
    """The sizes of the notebooks in ``profile`` (``ci`` or ``full``; case and spaces ignored).

    Raises:
        ConfigError: for an unknown profile, naming the known ones and the environment variable.
    """
    key = str(profile).strip().lower()
    if key not in _SIZES:
        raise ConfigError(f"unknown tutorial profile {profile!r}: use one of {', '.join(PROFILES)} or {AUTO} "
                          f"(set {PROFILE_ENV}=ci to run the notebooks on a CPU, offline).")
    return _SIZES[key]
