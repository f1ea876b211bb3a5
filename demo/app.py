"""Gradio UI for unmask. It only lays out the interface: all the work is ``UnmaskPipeline``."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"

TEACHING_NOTE = (
    "**Teaching models.** The default bundle was trained on the project's procedural faces "
    "(`unmask.synthetic`), so it recovers *procedural* faces. It runs offline on a CPU and is meant for "
    "learning and testing, not for real photos: on a real photo it will draw a teaching-world face. "
    "For real photos choose `ffhq` (StyleGAN2-FFHQ + e4e + IR-SE-50 from the Hugging Face Hub; "
    "non-commercial research licences; needs network and ideally a GPU)."
)
FFHQ_NOTE = ("**Real-photo models** (StyleGAN2-FFHQ, e4e, IR-SE-50): public weights under non-commercial "
             "research licences. No unmasking encoder for FFHQ is public, so the default mode refines the "
             "e4e inversion on the visible pixels.")


@functools.lru_cache(maxsize=2)
def load_pipeline(name: str):
    """One pipeline per bundle name, built on first use (the app starts without loading models)."""
    from unmask.pipeline import UnmaskPipeline

    return UnmaskPipeline.from_pretrained(name)


def editor_to_inputs(value: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Split an ImageEditor value into the photo (RGB uint8) and the painted mask (or None).

    The photo is the editor's background; anything the user painted on the layers marks the
    region to recover (1 = covered). With nothing painted, the pipeline estimates the region.
    """
    from unmask.errors import ImageError
    from unmask.faces.io import load_image

    if value is None:
        raise ImageError("no image given: upload a photo of a person wearing a mask, or pick an example.")
    if isinstance(value, dict):
        background = value.get("background")
        if background is None:
            background = value.get("composite")
        if background is None:
            raise ImageError("no image given: upload a photo of a person wearing a mask, or pick an example.")
        photo = load_image(np.asarray(background))
        painted = None
        for layer in value.get("layers") or []:
            layer = np.asarray(layer)
            if layer.ndim == 3 and layer.shape[2] == 4 and layer.shape[:2] == photo.shape[:2]:
                alpha = layer[..., 3].astype(np.float32) / 255.0
                painted = alpha if painted is None else np.maximum(painted, alpha)
        if painted is not None and painted.max() < 0.5:
            painted = None
        return photo, painted
    return load_image(value), None


def run(editor_value: Any, model: str, mode: str, steps: int, seed: int, aligned: bool, all_faces: bool,
        progress=None):
    """The app's one action: returns (before/after pair, crops gallery, identity score text, details JSON)."""
    import gradio as gr

    from unmask.errors import UnmaskError

    track = progress or gr.Progress()
    try:
        photo, painted = editor_to_inputs(editor_value)
        track(0.0, desc="loading models")
        pipe = load_pipeline(model)
        result = pipe(photo, mode=mode, steps=int(steps), seed=int(seed), mask=painted, aligned=aligned,
                      which="all" if all_faces else "largest",
                      progress=lambda fraction, message: track(fraction, desc=message))
    except UnmaskError as exc:
        raise gr.Error(str(exc)) from exc
    crops = []
    for i, face in enumerate(result.faces):
        mask_rgb = np.repeat((face.mask[..., None] * 255).round().astype(np.uint8), 3, axis=2)
        crops += [(face.aligned_input, f"face {i + 1}: aligned input"), (mask_rgb, f"face {i + 1}: mask"),
                  (face.recovered, f"face {i + 1}: recovered")]
    scores = [f.identity_similarity for f in result.faces if f.identity_similarity is not None]
    score = ", ".join(f"{s:.3f}" for s in scores) if scores else "no identity network in this bundle"
    details = {"mode": result.mode, "faces": len(result.faces),
               "timings_ms": {k: round(v * 1000, 1) for k, v in result.timings.items()}}
    return (photo, result.output), crops, score, json.dumps(details, indent=2)


def example_rows() -> list[list[Any]]:
    """Examples shipped in demo/examples: masked teaching faces (aligned) and a real photo."""
    rows = []
    for path in sorted(EXAMPLES_DIR.glob("teaching_*.png")):
        rows.append([str(path), "teaching", "encoder", 30, 0, True, False])
    for path in sorted(EXAMPLES_DIR.glob("photo_*.jpg")):
        rows.append([str(path), "teaching", "encoder", 30, 0, False, False])
    return rows


def build_demo():
    """Build the Gradio Blocks app (models load lazily on the first request)."""
    import gradio as gr

    from unmask.pipeline import MODES, available_bundles

    bundles = list(available_bundles())
    with gr.Blocks(title="unmask: recover the face under a mask") as demo:
        gr.Markdown("# unmask\nRecover the face hidden under a protective mask with a specialised StyleGAN2 "
                    "inversion (Randhawa et al., arXiv 2212.14110). Upload a photo, optionally paint over the "
                    "mask to correct the region, and press **Unmask**.")
        gr.Markdown(TEACHING_NOTE if bundles and bundles[0] == "teaching" else FFHQ_NOTE)
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(label="Masked photo (paint over the mask to set the region)",
                                        type="numpy", image_mode="RGBA", sources=("upload", "clipboard"),
                                        elem_id="input-editor")
                model = gr.Dropdown(bundles, value=bundles[0], label="Models", elem_id="model")
                mode = gr.Radio(list(MODES), value="encoder", label="Mode",
                                info="encoder: one pass; encoder+refine: then optimise on visible pixels; "
                                     "optimize: generic per-image inversion (slow)")
                aligned = gr.Checkbox(False, label="Input is an aligned face crop (skip detection)",
                                      elem_id="aligned")
                with gr.Accordion("Options", open=False):
                    steps = gr.Slider(5, 500, value=30, step=5, label="Optimisation steps")
                    seed = gr.Number(0, precision=0, label="Seed")
                    all_faces = gr.Checkbox(False, label="All faces (not only the largest)")
                button = gr.Button("Unmask", variant="primary", elem_id="unmask-button")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", elem_id="before-after")
                crops = gr.Gallery(label="Aligned input · mask · recovered", columns=3, height="auto",
                                   elem_id="crops")
                score = gr.Textbox(label="Identity similarity (recovered vs. masked input, cosine)",
                                   elem_id="identity-score")
                details = gr.Code(label="Details", language="json")
        inputs = [editor, model, mode, steps, seed, aligned, all_faces]
        outputs = [slider, crops, score, details]
        button.click(run, inputs=inputs, outputs=outputs, api_name="unmask")
        rows = example_rows()
        if rows:
            gr.Examples(rows, inputs=inputs, label="Examples (teaching faces are already aligned)")
    return demo
