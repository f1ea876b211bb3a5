"""What the app's buttons and endpoints do: read uploads, run ``UnmaskPipeline``, write outputs.

Every uploaded file is decoded here through :func:`unmask.faces.io.load_image` (the input components
hand over raw file paths), so a bad upload gets the project's own message, checked by a validator before
any model runs. Outputs are written to unique files, so identical requests running at once never share a
file (see :class:`OutputFiles`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: Largest upload accepted by the server (Gradio refuses bigger files before they reach the app).
MAX_FILE_SIZE = "25mb"
#: Requests that run models at the same time: one per CPU core (each request is mostly one torch thread
#: on the small teaching models), at most 4; on a GPU one at a time.
CONCURRENCY_LIMIT = max(1, min(4, os.cpu_count() or 1))
#: torch threads per process on a CPU: the requests running at once share the cores one thread each. On a
#: loaded 2-core machine the teaching example takes 170 ms with 1 thread and 1.8 s with 2 (threads spin-wait).
TORCH_THREADS = max(1, (os.cpu_count() or 1) // CONCURRENCY_LIMIT)
#: ``gr.Blocks(delete_cache=...)``: every 5 minutes, delete the uploads and results Gradio cached over 15 minutes
#: ago (examples cached on disk are kept).
CACHE_CLEANUP = (300, 900)
#: Seconds the app's result files live (:class:`OutputFiles` removes them itself): in a 30-minute soak of this app
#: Gradio's scheduled deletion removed none of them (``python -m unmask.bench app --soak 1800``: +2 files per
#: request throughout), so the app does not rely on it. At 10 requests a second this keeps ~20 minutes of
#: results, ~0.6 GB.
OUTPUT_MAX_AGE_S = 900.0
#: ``launch(state_session_capacity=...)``: sessions whose state Gradio keeps in memory (its default: 10,000). Each
#: session copies every component's config (~90 KB for this page), and every REST or MCP call made without a
#: session hash is a new session, so the default let the server grow by ~0.9 GB under API traffic
#: (``python -m unmask.bench app --soak``). The app keeps no ``gr.State``; a session evicted from this store
#: only loses per-session copies of the defaults.
SESSION_CAPACITY = 256
#: On a CPU, a refinement is capped to this many seconds (from a measured seconds-per-step): the ffhq one at
#: 256 px would take minutes; the teaching one at 64 px never reaches it.
REFINE_BUDGET_S = 60.0
#: Seconds a ZeroGPU Space may hold the GPU for one request.
GPU_DURATION_S = 120
#: Margin around the face box in the zoomed before/after, as a fraction of the box side.
ZOOM_MARGIN = 0.6
AUTO = "auto"

TEACHING_NOTE = (
    "**Teaching models.** `teaching` was trained on the project's procedural faces (`unmask.synthetic`), so it "
    "recovers *procedural* faces; on a real photo it draws a teaching-world face. It runs offline on a CPU. "
    "Real photos need `ffhq` (StyleGAN2-FFHQ + e4e + IR-SE-50 from the Hugging Face Hub; non-commercial "
    "research licences), offered here when its files are in the Hub cache or the Hub answers. `digiface` (offered "
    "where the `gan-face-generate` package is installed) draws a photo-like 64-px face with a DCGAN trained on "
    "DigiFace-1M (non-commercial research only), but on the real photos packages ship it moved dlib's distance to "
    "the unmasked original further than the mask did (0.499 masked, 0.564 recovered; teaching 0.546: `python -m "
    "unmask.evaluate photos`), so `auto` stays `teaching`."
)
FFHQ_NOTE = (
    "**Real-photo models** (`ffhq`: StyleGAN2-FFHQ, e4e, IR-SE-50; non-commercial research licences). No "
    "unmasking encoder for FFHQ is public, so `ffhq` refines the e4e inversion on the visible pixels "
    "(`encoder+refine`). On a CPU the refinement is capped to {budget:.0f} s from a measured time per step; "
    "a GPU runs every step."
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

try:  # Hugging Face ZeroGPU: a GPU is attached only while a decorated function runs
    import spaces

    gpu = spaces.GPU(duration=GPU_DURATION_S)
except ImportError:  # not on a Space: the decorator does nothing
    def gpu(fn):
        return fn


_LOAD_LOCK = threading.Lock()
_PIPELINES: dict[str, Any] = {}


def load_pipeline(name: str):
    """One pipeline per bundle name, built on first use on the automatic device (CUDA when present)."""
    with _LOAD_LOCK:
        if name not in _PIPELINES:
            from unmask.pipeline import UnmaskPipeline

            _PIPELINES[name] = UnmaskPipeline.from_pretrained(name, device="auto")
        return _PIPELINES[name]


def preload(bundles: list[str] | None = None) -> None:
    """Load the bundles now (ZeroGPU wants the models on cuda when the app starts)."""
    from unmask.pipeline import available_bundles

    for name in bundles if bundles is not None else available_bundles():
        load_pipeline(name)


def configure_torch() -> None:
    """On a CPU, give torch ``TORCH_THREADS`` threads (the app serves ``CONCURRENCY_LIMIT`` requests at once)."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(TORCH_THREADS)


def gpu_attached() -> bool:
    """A Space with the ``spaces`` package, or a local CUDA device: load the models at start."""
    import torch

    return importlib.util.find_spec("spaces") is not None or torch.cuda.is_available()


class OutputFiles:
    """Unique output files in ``root`` (default: ``unmask-outputs/`` in Gradio's cache), removed after
    ``max_age_s``.

    Gradio names a returned *array* by the hash of its encoded bytes and rewrites that file in place, so two
    identical requests at once write the file one of them is streaming ("Too little data for declared
    Content-Length"); hence unique files. A returned path outside Gradio's cache is hashed and copied into it
    (a SHA-256 pass and a second file per output), one inside is served as it is: hence Gradio's cache.
    """

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
        self._root = Path(root) if root is not None else None
        self.max_age_s = max_age_s
        self._last_sweep = time.monotonic()
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder the files go to (created on first use; Gradio's cache is read then, after ``TMPDIR``
        or ``GRADIO_TEMP_DIR`` are set)."""
        with self._lock:
            if self._root is None:
                from gradio.utils import get_upload_folder

                self._root = Path(get_upload_folder()) / "unmask-outputs"
            self._root.mkdir(parents=True, exist_ok=True)
            return self._root

    def save(self, image: np.ndarray, stem: str, provenance=None, *, label: bool = False) -> str:
        """Write uint8 ``(H, W)`` or ``(H, W, 3)`` ``image`` to a new file; PNG, or JPEG above 2 megapixels.

        ``provenance`` (:class:`unmask.faces.provenance.Provenance`) goes into the file's XMP, and into a signed C2PA
        manifest in the photo and the recovered crops: every image of a recovery carries it. ``label`` adds the
        visible "face region synthesised" band below the image.
        """
        from PIL import Image

        from unmask.faces.provenance import encode_image

        self._sweep()
        fmt = "jpg" if image.shape[0] * image.shape[1] > 2_000_000 else "png"
        options = {"format": "PNG", "compress_level": 1} if fmt == "png" else {"format": "JPEG", "quality": 92}
        fd, path = tempfile.mkstemp(prefix=f"{stem}-", suffix=f".{fmt}", dir=self.root)
        with os.fdopen(fd, "wb") as handle:
            if provenance is None:
                Image.fromarray(image).save(handle, **options)
            else:
                handle.write(encode_image(image, options.pop("format"), provenance, label=label, **options))
        return path

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.max_age_s / 4:
            return
        self._last_sweep = now
        cutoff = time.time() - self.max_age_s
        for path in self.root.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:  # another request removed it first
                pass


OUTPUTS = OutputFiles()


# ---------------------------------------------------------------------------------------------- inputs
def file_path(value: Any) -> str | None:
    """The path in a Gradio file value (a path string, a FileData-like dict or an object with ``.path``)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return str(getattr(value, "path", value))


def read_image(value: Any, label: str) -> np.ndarray:
    """Decode an uploaded file with the project's checks; errors name the upload by its own file name."""
    from unmask.errors import ImageError
    from unmask.faces.io import load_image

    path = file_path(value)
    if path is None:
        raise ImageError(f"no {label} given: upload a photo, or pick an example.")
    return load_image(path, name=f"the {label} ({Path(path).name})")


def read_mask(value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """A mask image (white = covered) as float ``(H, W)`` in [0, 1]; ``None`` when not given."""
    from unmask.errors import InputShapeError

    if file_path(value) is None:
        return None
    mask = read_image(value, "mask image").astype(np.float32).mean(axis=2) / 255.0
    if mask.shape != shape:
        raise InputShapeError(f"the mask image is {mask.shape[1]}×{mask.shape[0]} but the photo is "
                              f"{shape[1]}×{shape[0]}; give a mask of the photo's size (white = covered).")
    return mask


def painted_mask(editor_value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """What the user painted on the editor's layers, as float ``(H, W)`` (1 = covered); ``None`` if nothing."""
    import cv2

    if not isinstance(editor_value, dict):
        return None
    painted = None
    for layer in editor_value.get("layers") or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue
        alpha = layer[..., 3].astype(np.float32) / 255.0
        if alpha.shape != shape:
            alpha = cv2.resize(alpha, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        painted = alpha if painted is None else np.maximum(painted, alpha)
    if painted is None or painted.max() < 0.5:
        return None
    return painted


def check_file(value: Any, label: str, required: bool) -> dict:
    """``gr.validate`` for one file input: decoded with the project's checks before any model runs."""
    import gradio as gr

    from unmask.errors import UnmaskError

    if file_path(value) is None:
        return gr.validate(not required, f"no {label} given: upload a photo, or pick an example." if required else "")
    try:
        read_image(value, label)
    except UnmaskError as exc:
        return gr.validate(False, str(exc))
    return gr.validate(True, "")


def validate_page(image, mask, editor, reference, *rest) -> list:
    """Validator of the page's Unmask button (one entry per input)."""
    return [check_file(image, "photo", True), check_file(mask, "mask image", False), None,
            check_file(reference, "reference photo", False), *[None] * len(rest)]


def validate_unmask(image, mask, *rest) -> list:
    """Validator of ``/unmask``."""
    return [check_file(image, "photo", True), check_file(mask, "mask image", False), *[None] * len(rest)]


def validate_verify(image, reference, *rest) -> list:
    """Validator of ``/verify``."""
    return [check_file(image, "photo", True), check_file(reference, "reference photo", True), *[None] * len(rest)]


# ---------------------------------------------------------------------------------------------- work
def default_bundle(bundles: list[str]) -> str:
    """``ffhq`` where it can load, else the first bundle."""
    return "ffhq" if "ffhq" in bundles else bundles[0]


#: pipeline -> its measured seconds per refinement step (:func:`seconds_per_refine_step`).
_SECONDS_PER_STEP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SECONDS_PER_STEP_LOCK = threading.Lock()


def seconds_per_refine_step(pipe, steps: int = 3) -> float:
    """Measured wall seconds of one ``encoder+refine`` step of ``pipe`` on its device (the first call for a
    pipeline times ``steps`` steps on a blank face, under a lock so that concurrent requests measure once;
    later calls return that number)."""
    with _SECONDS_PER_STEP_LOCK:
        if pipe not in _SECONDS_PER_STEP:
            import torch

            x = torch.zeros(1, 3, pipe.size, pipe.size)
            m = torch.zeros(1, 1, pipe.size, pipe.size)
            m[..., pipe.size // 2:, :] = 1.0
            pipe.recover_batch(x, m, mode="encoder+refine", steps=1)  # warm-up: first-call allocations
            timings: dict[str, float] = {}
            pipe.recover_batch(x, m, mode="encoder+refine", steps=steps, timings=timings)
            _SECONDS_PER_STEP[pipe] = timings["refine"] / steps
        return _SECONDS_PER_STEP[pipe]


def plan_steps(pipe, mode: str, steps: int) -> tuple[int | None, str]:
    """Steps to run and a note: 0 = the bundle's default; on a CPU capped to ``REFINE_BUDGET_S``."""
    n = int(steps) if steps else None
    if mode == "encoder":
        return n, ""
    if n is None:
        n = pipe.config.refine_steps if mode == "encoder+refine" else pipe.config.optimize_steps
    if pipe.device.type == "cpu":
        per_step = seconds_per_refine_step(pipe)
        cap = max(1, int(REFINE_BUDGET_S / per_step))
        if n > cap:
            return cap, (f"CPU: {n} steps capped to {cap} ({per_step:.2f} s per step measured, "
                         f"{REFINE_BUDGET_S:.0f} s budget); a GPU runs all {n}.")
    return n, ""


@gpu
def recover(photo: np.ndarray, mask: np.ndarray | None, model: str, mode: str, steps: int, seed: int,
            aligned: bool, all_faces: bool, reference: np.ndarray | None = None, progress=None):
    """Run the pipeline (and the verification when ``reference`` is given); returns (result, verification, note)."""
    pipe = load_pipeline(model)
    mode = pipe.config.default_mode if mode in (None, "", AUTO) else mode
    n, note = plan_steps(pipe, mode, steps)
    report = (lambda fraction, message: progress(fraction, desc=message)) if progress else None
    result = pipe(photo, mode=mode, steps=n, seed=int(seed), mask=mask, aligned=bool(aligned),
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
        guess, never evidence of identity: the photo's XMP metadata and its signed C2PA manifest (Content
        Credentials) say so (IPTC DigitalSourceType compositeWithTrainedAlgorithmicMedia, the bundle, the mode, the
        mask region's box).
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
        track(0.0, desc="loading models")
        result, verification, note = recover(photo, region, model, mode, steps, seed, aligned, all_faces,
                                             reference=ref, progress=track)
    except UnmaskError as exc:
        _raise_for_user(exc)
    x0, y0, x1, y1 = zoom_box(result, photo.shape[:2])
    made = result.provenance.with_parent(file_path(image))  # the upload: the manifest's parent ingredient
    pair = (OUTPUTS.save(photo[y0:y1, x0:x1], "before", made.for_role("input")),
            OUTPUTS.save(result.output[y0:y1, x0:x1], "after", made.cropped(x0, y0, x1, y1)))
    crops = []
    for i, face in enumerate(result.faces):
        mask_u8 = (face.mask * 255).round().astype(np.uint8)
        crops += [(OUTPUTS.save(face.aligned_input, "input", made.for_role("input")), f"face {i + 1}: aligned input"),
                  (OUTPUTS.save(mask_u8, "mask", made.for_role("mask")), f"face {i + 1}: mask ({face.mask_source})"),
                  (OUTPUTS.save(face.recovered, "recovered", made.for_role("recovered")),
                   f"face {i + 1}: recovered (synthesised)")]
    info = details(result, model, steps, note, verification)
    full = OUTPUTS.save(result.output, "unmasked", made, label=True)  # the download says so, visibly
    return pair, full, crops, verification_markdown(verification), json.dumps(info, indent=2)


def example_run(image, model, mode, steps, seed, aligned, all_faces, reference):
    """What a clicked example shows (cached lazily: the first click computes it)."""
    return ui_run(image, None, None, reference, model, mode, steps, seed, aligned, all_faces,
                  progress=lambda *a, **k: None)


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
    try:
        path = OUTPUTS.save(read_image(image, "photo"), "editor")
    except UnmaskError as exc:
        gr.Warning(str(exc))
        return None
    return {"background": path, "layers": [], "composite": path}


def _model_or_default(model: str) -> str:
    from unmask.errors import ConfigError
    from unmask.pipeline import available_bundles

    bundles = list(available_bundles())
    if model in (None, "", AUTO):
        return default_bundle(bundles)
    if model not in bundles:
        raise ConfigError(f"model {model!r} cannot load here; choose one of {bundles} (ffhq needs its files in "
                          "the Hugging Face cache or a reachable Hub).")
    return model
