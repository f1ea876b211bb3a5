"""What the app's buttons and endpoints do: run the recovery and lay its results out for the page, the API and
MCP.

Uploads are read by :mod:`demo.uploads`, outputs written by :mod:`demo.outputs`, and the models chosen, loaded,
batched and bounded by :mod:`demo.models`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from demo.models import AUTO, default_bundle, gpu, load_pipeline, offered_bundles, plan_steps
from demo.outputs import OUTPUTS
from demo.uploads import file_path, painted_mask, read_image, read_mask

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: Largest upload accepted by the server (Gradio refuses bigger files before they reach the app).
MAX_FILE_SIZE = "25mb"
#: ``gr.Blocks(delete_cache=...)``: every 5 minutes, delete the uploads and results Gradio cached over 15 minutes
#: ago (examples cached on disk are kept).
CACHE_CLEANUP = (300, 900)
#: ``launch(state_session_capacity=...)``: sessions whose state Gradio keeps in memory (its default: 10,000). Each
#: session copies every component's config (~90 KB for this page), and every REST or MCP call made without a
#: session hash is a new session, so the default let the server grow by ~0.9 GB under API traffic
#: (``python -m unmask.bench app --soak``). The app keeps no ``gr.State``; a session evicted from this store
#: only loses per-session copies of the defaults.
SESSION_CAPACITY = 256
#: Margin around the face box in the zoomed before/after, as a fraction of the box side.
ZOOM_MARGIN = 0.6

TEACHING_NOTE = (
    "**Teaching models.** `teaching` was trained on the project's procedural faces (`unmask.synthetic`), so it "
    "recovers *procedural* faces; on a real photo it draws a teaching-world face. It runs offline on a CPU. "
    "Real photos need `ffhq` (StyleGAN2-FFHQ + e4e + IR-SE-50 from the Hugging Face Hub; non-commercial "
    "research licences), offered here when its files are in the Hub cache or the Hub answers. `digiface` (offered "
    "where the `gan-face-generate` package is installed) draws a photo-like 64-px face with a DCGAN trained on "
    "DigiFace-1M (non-commercial research only), but on the real photos packages ship it moved dlib's distance to "
    "the unmasked original further than the mask did (0.499 masked, 0.564 recovered; teaching 0.546: `python -m "
    "unmask.evaluate photos`), so it is never the default."
)
FFHQ_NOTE = (
    "**Real-photo models** (`ffhq`: StyleGAN2-FFHQ, e4e, IR-SE-50; non-commercial research licences). No "
    "unmasking encoder for FFHQ is public, so `ffhq` refines the e4e inversion on the visible pixels "
    "(`encoder+refine`). A refinement is capped to {budget:.0f} s per request, on every device, from a measured "
    "time per step."
)

#: The page's notice: what a recovered face is, what it is for and what not (README "Responsible use").
RESPONSIBLE_USE_NOTE = (
    "**The recovered face is a guess, not the person's face.** The generator draws the lower face from what the "
    "rest of the face suggests. Use unmask for research and teaching, and for 1:1 verification against a "
    "reference photo that you supply; never to identify an unknown person, as evidence, or to search for "
    "someone. AI mask removal is not suitable for identification (Cooper & Farid, "
    "[arXiv 2603.27747](https://arxiv.org/abs/2603.27747), 2026), and our own numbers agree: dlib's face ResNet "
    "matched the teaching bundle's recovered faces *worse* than the masked ones (gap closed −21 % on held-out "
    "teaching faces; the masked astronaut's distance to her unmasked photo rose from 0.435 to 0.481). Every "
    "image this page writes says in its metadata that the face region is synthesised (IPTC digital source type "
    "*compositeWithTrainedAlgorithmicMedia*), the recovered photos also in signed Content Credentials (C2PA), and "
    "the full photo carries a visible label."
)
#: What a verification score means, on the page and in ``/verify``'s JSON.
SCORE_MEANING = ("similarity to the reference you gave, computed on a partly synthesised face: how close the guess "
                 "came to that photo, not proof of identity")


@gpu
def recover(photo: np.ndarray, mask: np.ndarray | None, model: str, mode: str, steps: int, seed: int,
            aligned: bool, all_faces: bool, reference: np.ndarray | None = None, progress=None):
    """Run the pipeline (and the verification when ``reference`` is given); returns (result, verification, note).

    Concurrent requests in ``encoder`` mode share one batch of the models (:mod:`unmask.serving`)."""
    serving = load_pipeline(model)
    pipe = serving.pipe
    mode = pipe.config.default_mode if mode in (None, "", AUTO) else mode
    n, note = plan_steps(pipe, mode, steps)
    report = (lambda fraction, message: progress(fraction, desc=message)) if progress else None
    result = serving(photo, mode=mode, steps=n, seed=int(seed), mask=mask, aligned=bool(aligned),
                  which="all" if all_faces else "largest", progress=report)
    verification = None
    if reference is not None:
        verification, _ = pipe.verify(photo, reference, result=result, aligned=bool(aligned))
    return result, verification, note


def zoom_box(result, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` around every processed face, with ``ZOOM_MARGIN``; the whole photo for aligned input."""
    h, w = shape
    boxes = [f.box for f in result.faces if f.box is not None]
    if not boxes:
        return 0, 0, w, h
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    margin = ZOOM_MARGIN * max(x1 - x0, y1 - y0)
    return (int(max(0, x0 - margin)), int(max(0, y0 - margin)), int(min(w, x1 + margin)), int(min(h, y1 + margin)))


def details(result, model: str, steps: int | None, note: str, verification=None) -> dict[str, Any]:
    """What the page and the API report besides images: mode, mask sources, scores, timings."""
    out: dict[str, Any] = {
        "model": model, "mode": result.mode, "precision": result.precision, "steps": steps, "faces": len(result.faces),
        "mask_source": [f.mask_source for f in result.faces],
        "identity_similarity_to_input": [None if f.identity_similarity is None else round(f.identity_similarity, 4)
                                         for f in result.faces],
        "timings_ms": {k: round(v * 1000, 1) for k, v in result.timings.items()},
    }
    if note:
        out["note"] = note
    if verification is not None:
        out["verification"] = verification_dict(verification)
    return out


def verification_dict(v) -> dict[str, Any]:
    return {"network": v.network, "metric": v.metric, "threshold": round(v.threshold, 4),
            "masked_vs_reference": round(v.masked, 4), "recovered_vs_reference": round(v.recovered, 4),
            "same_person_masked": v.same_masked, "same_person_recovered": v.same_recovered,
            "meaning": SCORE_MEANING}


def verification_markdown(v) -> str:
    if v is None:
        return ("Add a *reference* photo of the same person, unmasked, to see whether recovery helps recognition: "
                "1:1 verification against a photo that you supply. The scores are similarities to that photo, not "
                "proof of identity.")
    rule = "same person above" if v.metric == "cosine" else "same person below"
    word = {True: "same person", False: "not the same person"}
    return (f"**Verification** with {v.network} ({v.metric}; {rule} {v.threshold:.3f})\n\n"
            f"| pair | score | the network's call |\n|---|---|---|\n"
            f"| masked vs reference | {v.masked:.3f} | {word[v.same_masked]} |\n"
            f"| recovered vs reference | {v.recovered:.3f} | {word[v.same_recovered]} |\n\n"
            f"Each score is the {SCORE_MEANING}.")


def _raise_for_user(exc: Exception):
    import gradio as gr

    raise gr.Error(str(exc)) from exc


# The app's /unmask endpoint and MCP tool: gradio names the tool after this function and reads its docstring.
def unmask(image, mask=None, mode: str = AUTO, steps: int = 0, seed: int = 0, model: str = AUTO,
           aligned: bool = False, all_faces: bool = False):
    """Recover the face under a mask in a photo. The recovered face is a guess, never evidence of identity.

    Args:
        image: the photo, a file.
        mask: optional image file of the covered region (white = covered); else it is predicted or estimated.
        mode: auto (the bundle's default), encoder, encoder+refine or optimize.
        steps: optimisation steps; 0 = the bundle's default.
        seed: random seed of the optimisation.
        model: the bundle: auto, teaching, digiface or ffhq.
        aligned: the photo is already an aligned face crop (skip detection).
        all_faces: recover every face in the photo, not only the largest.

    Returns:
        The recovered photo, the mask used (the largest face's aligned crop, white = recovered) and a JSON string
        with mode, mask source, the face's zoom box, scores and timings. The recovered face is a synthesised
        guess, never evidence of identity: the photo's XMP metadata says so (IPTC DigitalSourceType
        compositeWithTrainedAlgorithmicMedia, the bundle, the mode, the mask region's box).
    """
    from unmask.errors import UnmaskError

    try:
        photo = read_image(image, "photo")
        region = read_mask(mask, photo.shape[:2])
        model = _model_or_default(model)
        result, _, note = recover(photo, region, model, mode, steps, seed, aligned, all_faces)
    except UnmaskError as exc:
        _raise_for_user(exc)
    info = {**details(result, model, steps, note), "zoom_box": list(zoom_box(result, photo.shape[:2]))}
    mask_u8 = (result.faces[0].mask * 255).round().astype(np.uint8)
    made = result.provenance.with_parent(file_path(image))  # the upload: the manifest's parent ingredient
    return (OUTPUTS.save(result.output, "unmasked", made), OUTPUTS.save(mask_u8, "mask", made.for_role("mask")),
            json.dumps(info, indent=2))


# The app's /verify endpoint and MCP tool, named and described like unmask.
def verify(image, reference, model: str = AUTO, aligned: bool = False):
    """Does recovery help recognition? Scores the masked face and the recovered face against an unmasked
    reference photo of the same person with the bundle's identity network (dlib's face ResNet for real photos
    under the teaching bundle). A score is a similarity to the reference given, computed on a synthesised face,
    never proof of identity.

    Args:
        image: the masked photo, a file.
        reference: an unmasked photo of the same person, a file.
        model: the bundle: auto, teaching, digiface or ffhq.
        aligned: both photos are already aligned face crops (skip detection).

    Returns:
        A JSON string: network, metric, threshold, both scores, both decisions and what they mean.
    """
    from unmask.errors import UnmaskError

    try:
        photo = read_image(image, "photo")
        ref = read_image(reference, "reference photo")
        model = _model_or_default(model)
        _, verification, _ = recover(photo, None, model, AUTO, 0, 0, aligned, False, reference=ref)
    except UnmaskError as exc:
        _raise_for_user(exc)
    return json.dumps(verification_dict(verification), indent=2)


def ui_run(image, mask, editor_value, reference, model, mode, steps, seed, aligned, all_faces, progress=None):
    """The page's action: zoomed before/after, full photo, per-face crops, verification, details."""
    import gradio as gr

    from unmask.errors import UnmaskError

    track = progress or gr.Progress()
    try:
        photo = read_image(image, "photo")
        region = read_mask(mask, photo.shape[:2])
        painted = painted_mask(editor_value, photo.shape[:2])
        if painted is not None:
            region = painted if region is None else np.maximum(region, painted)
        ref = read_image(reference, "reference photo") if file_path(reference) else None
        model = _model_or_default(model)
        track(0.0, desc="loading models")
        result, verification, note = recover(photo, region, model, mode, steps, seed, aligned, all_faces,
                                             reference=ref, progress=track)
    except UnmaskError as exc:
        _raise_for_user(exc)
    x0, y0, x1, y1 = zoom_box(result, photo.shape[:2])
    made = result.provenance.with_parent(file_path(image))  # the upload: the manifest's parent ingredient
    # What the page only shows is a JPEG preview; the download is lossless and labelled (demo.outputs).
    pair = (OUTPUTS.save(photo[y0:y1, x0:x1], "before", made.for_role("input"), preview=True),
            OUTPUTS.save(result.output[y0:y1, x0:x1], "after", made.cropped(x0, y0, x1, y1), preview=True))
    crops = []
    for i, face in enumerate(result.faces):
        mask_u8 = (face.mask * 255).round().astype(np.uint8)
        crops += [(OUTPUTS.save(face.aligned_input, "input", made.for_role("input"), preview=True),
                   f"face {i + 1}: aligned input"),
                  (OUTPUTS.save(mask_u8, "mask", made.for_role("mask")), f"face {i + 1}: mask ({face.mask_source})"),
                  (OUTPUTS.save(face.recovered, "recovered", made.for_role("recovered"), preview=True),
                   f"face {i + 1}: recovered (synthesised)")]
    info = details(result, model, steps, note, verification)
    full = OUTPUTS.save(result.output, "unmasked", made, label=True)  # the download says so, visibly
    return pair, full, crops, verification_markdown(verification), json.dumps(info, indent=2)


def _no_progress(*args, **kwargs) -> None:
    """A ``gr.Progress`` stand-in that shows nothing (examples and warm-up run outside a page's request)."""


def example_run(image, model, mode, steps, seed, aligned, all_faces, reference):
    """What a clicked example shows (cached lazily: the first click computes it)."""
    return ui_run(image, None, None, reference, model, mode, steps, seed, aligned, all_faces, progress=_no_progress)


def signing_note() -> str:
    """Who signs this server's Content Credentials, for the page (the operator's key, or the untrusted test chain)."""
    from unmask.faces.provenance.signing import signing_identity

    return "Content Credentials from this page are " + signing_identity().describe()


def input_credentials(image) -> str:
    """What an uploaded photo says about itself (Content Credentials, unmask's XMP), shown before it is unmasked;
    ``""`` when it says nothing."""
    from unmask.faces.provenance.report import inspect, report_markdown

    path = file_path(image)
    return report_markdown(inspect(path, name=Path(path).name)) if path else ""


def editor_background(image):
    """Put the uploaded photo (decoded by us) into the painting editor."""
    import gradio as gr

    from unmask.errors import UnmaskError

    if file_path(image) is None:
        return None
    try:  # kept decoded: the Unmask button's validator and handler read it again
        path = OUTPUTS.save(read_image(image, "photo", keep=True), "editor", preview=True)
    except UnmaskError as exc:
        gr.Warning(str(exc))
        return None
    return {"background": path, "layers": [], "composite": path}


def _model_or_default(model: str) -> str:
    from unmask.errors import ConfigError

    if model in (None, "", AUTO):
        return default_bundle()
    bundles = offered_bundles()
    if model not in bundles:
        raise ConfigError(f"model {model!r} cannot load here; choose one of {bundles} (ffhq needs its files in "
                          "the Hugging Face cache or a reachable Hub).")
    return model


def warm_start(name: str) -> dict[str, float]:
    """Load bundle ``name`` and run what a first visitor would make it run, so that the first request is no slower
    than the next: the models, the detector and its landmarks, the mask head, the identity score, dlib's face
    ResNet (verification of real photos), image encoding with provenance, and for a bundle that refines by default
    the seconds of a refinement step. (Under an ``encoder`` bundle the first refinement asked for measures its step
    then: its autograd buffers would hold ~200 MB from the start for a mode few ask for.)

    Returns the seconds each part took (printed by ``app.py``).
    """
    import time

    from demo.models import seconds_per_refine_step

    # The page's handler too: its previews, labelled download and verification panel (no Gradio progress here).
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    # Gradio wraps every call in a switch of matplotlib's backend, importing it on the first call (a second of the
    # first request here); import it now, with the backend it switches to.
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.get_backend()
    seconds["matplotlib"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    serving = load_pipeline(name)
    seconds["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    serving.pipe.detector()  # the detector and the 68-landmark model
    seconds["detector"] = time.perf_counter() - t0
    if serving.pipe.config.default_mode != "encoder":  # a refining bundle: its time budget, measured once
        t0 = time.perf_counter()
        seconds_per_refine_step(serving.pipe)
        seconds["refine step"] = time.perf_counter() - t0
    photo = EXAMPLES_DIR / "photo_astronaut.jpg"
    aligned = sorted(EXAMPLES_DIR.glob("teaching_*.png"))
    t0 = time.perf_counter()
    for path, is_aligned in [*((p, True) for p in aligned[:1]), (photo, False)]:
        if path.is_file():
            # encoder mode: the same models and first-call work without a refinement's seconds (ffhq on a CPU
            # would spend its 60-s budget on each); /verify runs the bundle's default mode, so only where it encodes
            unmask(str(path), None, "encoder", 0, 0, name, is_aligned, False)
            ui_run(str(path), None, None, str(path), name, "encoder", 0, 0, is_aligned, False, progress=_no_progress)
            if serving.pipe.config.default_mode == "encoder":
                verify(str(path), str(path), name, is_aligned)
    seconds["requests"] = time.perf_counter() - t0
    return seconds
