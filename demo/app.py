"""Gradio UI for unmask. It only lays out the interface: the work is in :mod:`demo.handlers` and
``UnmaskPipeline``."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from demo.handlers import (
    CACHE_CLEANUP,
    EXAMPLES_DIR,
    FFHQ_NOTE,
    MAX_FILE_SIZE,
    RESPONSIBLE_USE_NOTE,
    SESSION_CAPACITY,
    TEACHING_NOTE,
    editor_background,
    example_run,
    input_credentials,
    signing_note,
    ui_run,
    unmask,
    verification_markdown,
    verify,
)
from demo.models import (
    AUTO,
    CONCURRENCY_LIMIT,
    MAX_STEPS,
    REFINE_BUDGET_S,
    configure_torch,
    default_bundle,
    gpu_attached,
    offered_bundles,
    preload,
)
from demo.uploads import validate_page, validate_unmask, validate_verify

__all__ = ["build_demo", "launch_kwargs", "limit_malloc_arenas", "example_rows", "photo_input", "gpu_attached",
           "preload",
           "CONCURRENCY_LIMIT", "EXAMPLES_DIR"]


def example_rows(default_model: str) -> list[list[Any]]:
    """Examples in demo/examples: masked teaching faces (aligned, with their unmasked target as the
    reference) and a real photo."""
    rows = []
    for path in sorted(EXAMPLES_DIR.glob("teaching_*.png")):
        target = EXAMPLES_DIR / "targets" / path.name
        rows.append([str(path), "teaching", AUTO, 0, 0, True, False, str(target) if target.is_file() else None])
    for path in sorted(EXAMPLES_DIR.glob("photo_*.jpg")):
        rows.append([str(path), default_model, AUTO, 0, 0, False, False, None])
    return rows


def photo_input(**kwargs):
    """A ``gr.Image`` (upload, webcam, clipboard) that hands the raw file path to the app undecoded, so that
    ``unmask.faces.io`` does every check: ``gr.Image``'s own preprocessing opens the file with PIL first and
    fails with Gradio's generic error. (Set on the instance: a ``gr.Image`` subclass would make Gradio write a
    ``.pyi`` stub beside this module.)"""
    import types

    import gradio as gr

    component = gr.Image(type="filepath", **kwargs)
    image_preprocess = component.preprocess

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return image_preprocess(payload)  # webcam / clipboard data URLs: Gradio writes the file
        return payload.path

    component.preprocess = types.MethodType(preprocess, component)
    return component


def build_demo():
    """Build the Gradio Blocks app (``app.py`` loads and warms the default bundle before it serves; elsewhere the
    models load on first use)."""
    import gradio as gr

    from unmask.pipeline import MODES

    configure_torch()
    bundles = offered_bundles()
    default_model = default_bundle()
    if default_model not in bundles:  # asked for by name (it downloads on first use)
        bundles.append(default_model)
    with gr.Blocks(title="unmask: recover the face under a mask", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown("# unmask\nRecover the face hidden under a protective mask with a specialised StyleGAN2 "
                    "inversion (Randhawa et al., arXiv 2212.14110), and see whether recovery helps face "
                    "recognition. Upload a photo (or use the webcam or clipboard), optionally paint over the mask "
                    "or add a reference photo, and press **Unmask**.")
        gr.Markdown(FFHQ_NOTE.format(budget=REFINE_BUDGET_S) if default_model == "ffhq" else TEACHING_NOTE)
        gr.Markdown(f"{RESPONSIBLE_USE_NOTE} {signing_note()}", elem_id="responsible-use")
        with gr.Row():
            with gr.Column():
                image = photo_input(label="Masked photo", sources=["upload", "webcam", "clipboard"],
                                   elem_id="input-image")
                credentials = gr.Markdown("", elem_id="input-credentials")  # what the upload says about itself
                with gr.Accordion("Paint the region to recover (optional)", open=False):
                    editor = gr.ImageEditor(label="Paint over the mask", type="numpy", image_mode="RGBA",
                                            sources=(), elem_id="input-editor")
                    mask = photo_input(label="…or a mask image (white = covered)",
                                       sources=["upload"], elem_id="input-mask")
                reference = photo_input(label="Reference: the same person, unmasked (optional)",
                                        sources=["upload", "webcam", "clipboard"], elem_id="input-reference")
                model = gr.Dropdown([AUTO, *bundles], value=default_model, label="Models", elem_id="model",
                                    info=f"{AUTO}: {default_model}, this server's default")
                mode = gr.Radio([AUTO, *MODES], value=AUTO, label="Mode",
                                info="auto: the bundle's default (teaching: encoder; ffhq: encoder+refine). "
                                     f"A refinement is capped to about {REFINE_BUDGET_S:.0f} s.")
                aligned = gr.Checkbox(False, label="Input is an aligned face crop (skip detection)",
                                      elem_id="aligned")
                with gr.Accordion("Options", open=False):
                    steps = gr.Slider(0, MAX_STEPS, value=0, step=5, label="Optimisation steps (0 = bundle default)")
                    seed = gr.Number(0, precision=0, label="Seed")
                    all_faces = gr.Checkbox(False, label="All faces (one result per face)")
                button = gr.Button("Unmask", variant="primary", elem_id="unmask-button")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after (zoomed on the face)", type="filepath",
                                        elem_id="before-after")
                full = gr.File(label="Full photo, recovered (labelled: face region synthesised)",
                               elem_id="full-output")
                verification = gr.Markdown(verification_markdown(None), elem_id="verification")
                crops = gr.Gallery(label="Per face: aligned input · mask used · recovered", columns=3,
                                   height="auto", elem_id="crops")
                info = gr.Code(label="Details (mode, mask source, timings)", language="json", elem_id="details")
        image.change(editor_background, inputs=image, outputs=editor, api_visibility="private", queue=False)
        image.change(input_credentials, inputs=image, outputs=credentials, api_visibility="private", queue=False)
        ui_inputs = [image, mask, editor, reference, model, mode, steps, seed, aligned, all_faces]
        button.click(ui_run, inputs=ui_inputs, outputs=[slider, full, crops, verification, info],
                     validator=validate_page,
                     api_visibility="private", concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="models")

        # Plain-file API endpoints, also MCP tools (gradio[mcp]); the docstrings of unmask / verify
        # describe both, and gradio names each tool after its function.
        with gr.Group(visible=False):
            out_full = gr.Image(type="filepath", format="png", label="recovered photo")
            out_mask = gr.Image(type="filepath", format="png", label="mask used")
            out_json = gr.Textbox(label="details (JSON)")
            verify_json = gr.Textbox(label="verification (JSON)")
            # The API's steps: a plain number, so that a value beyond MAX_STEPS reaches the validator and gets the
            # project's message (the page's slider would make Gradio refuse it with a bare HTTP 400).
            api_steps = gr.Number(0, precision=0, label="steps")
            api_unmask_button = gr.Button("api unmask")
            api_verify_button = gr.Button("api verify")
        api_unmask_button.click(unmask, inputs=[image, mask, mode, api_steps, seed, model, aligned, all_faces],
                                outputs=[out_full, out_mask, out_json], api_name="unmask",
                                validator=validate_unmask,
                                concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="models")
        api_verify_button.click(verify, inputs=[image, reference, model, aligned], outputs=verify_json,
                                api_name="verify",
                                validator=validate_verify,
                                concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="models")
        rows = example_rows(default_model)
        if rows:
            gr.Examples(rows, inputs=[image, model, mode, steps, seed, aligned, all_faces, reference],
                        outputs=[slider, full, crops, verification, info], fn=example_run, cache_examples=True,
                        cache_mode="lazy", label="Examples (teaching faces are aligned; their reference is the "
                                                 "same face unmasked)")
    return demo


#: glibc malloc arenas the server may use (``MALLOC_ARENA_MAX``); glibc's default is 8 per core.
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (``mallopt(M_ARENA_MAX)``, what ``MALLOC_ARENA_MAX`` sets at
    start), unless ``MALLOC_ARENA_MAX`` is already set. Gradio runs each request on a pool thread and glibc gives
    threads their own arenas, whose freed pages it seldom returns. In two 25-minute soaks side by side
    (``python -m unmask.bench app --soak 1500 --clients 8 --client http``, README "Serving under load") the server
    grew +1.9 % after the warm-up with glibc's default arenas and +0.2 % with 2, and stayed 24 MiB smaller. Call
    it before threads start. Returns whether the cap was set (False off glibc)."""
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-8, int(arenas)))  # M_ARENA_MAX = -8 in glibc's malloc.h
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False


def launch_kwargs() -> dict[str, Any]:
    """``launch`` arguments shared by ``app.py`` and the tests: file size limit, sessions kept in memory, MCP where
    installed."""
    kwargs: dict[str, Any] = {"max_file_size": MAX_FILE_SIZE, "state_session_capacity": SESSION_CAPACITY}
    if importlib.util.find_spec("mcp") is not None:  # gradio[mcp]
        kwargs["mcp_server"] = True
    return kwargs

