"""``python -m demo.profile``: where the app's handlers spend CPU, stage by stage, in this process.

Runs the app's own handlers (``/unmask`` of the API, and the page's Unmask button) on the demo examples, one
request at a time on one torch thread (as the server runs each request), and charges the CPU time of this thread
(:class:`unmask.measure.StageClock`) to the stages it passes through: decoding, detection and alignment, the
encoder (mask head and W+), the generator, the identity score, paste-back, provenance (the XMP packet, the changed
region, the visible label) and image encoding; the rest of the handler is "handler, other". Stages are found by
wrapping the functions that do them, so they follow the code (a new generator is still ``pipe._render``).

``python -m unmask.bench app --breakdown`` runs this in a child process and adds what the server spends beyond the
handler (Gradio's own work); run it alone for the handler's share only. Prints JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import time

#: The stages, in the order of a request.
STAGES = ("decode", "detection + alignment", "encoder (mask head + W+)", "generator", "identity score", "paste-back",
          "provenance / XMP", "image encoding", "handler, other")


def instrument(pipe, clock) -> None:
    """Wrap the functions of each stage of ``pipe`` (an UnmaskPipeline) and of the app's output writing."""
    import PIL.Image

    import unmask.faces.io
    import unmask.faces.provenance
    import unmask.pipeline

    for name, stage in (("aligned_crops", "detection + alignment"), ("_predict", "encoder (mask head + W+)"),
                        ("_encode", "encoder (mask head + W+)"), ("_render", "generator"), ("_paste", "paste-back")):
        setattr(pipe, name, clock.wrap(getattr(pipe, name), stage))
    if pipe.identity_net is not None:
        pipe.identity_net.embed = clock.wrap(pipe.identity_net.embed, "identity score")
    unmask.faces.io.load_image = clock.wrap(unmask.faces.io.load_image, "decode")
    unmask.pipeline.changed_box = clock.wrap(unmask.pipeline.changed_box, "provenance / XMP")
    provenance = unmask.faces.provenance
    provenance.Provenance.to_xmp = clock.wrap(provenance.Provenance.to_xmp, "provenance / XMP")
    provenance.label_image = clock.wrap(provenance.label_image, "provenance / XMP")
    PIL.Image.Image.save = clock.wrap(PIL.Image.Image.save, "image encoding")


def profile(requests: int = 20, warmup: int = 3, bundle: str = "teaching") -> dict[str, dict[str, float]]:
    """CPU milliseconds per request by stage for each kind of request: ``{kind: {stage: ms, "total": ms}}``."""
    from demo.handlers import EXAMPLES_DIR, _no_progress, ui_run, unmask
    from demo.models import configure_torch, load_pipeline
    from unmask.measure import StageClock

    configure_torch()
    clock = StageClock()
    instrument(load_pipeline(bundle).pipe, clock)
    aligned = EXAMPLES_DIR / "teaching_kn95.png"
    photo = EXAMPLES_DIR / "photo_astronaut.jpg"
    kinds = {
        f"API /unmask, aligned {aligned.name}": lambda: unmask(str(aligned), None, "auto", 0, 0, bundle, True, False),
        f"API /unmask, photo {photo.name}": lambda: unmask(str(photo), None, "auto", 0, 0, bundle, False, False),
        f"page, aligned {aligned.name}": lambda: ui_run(str(aligned), None, None, None, bundle, "auto", 0, 0, True,
                                                        False, progress=_no_progress),
    }
    out: dict[str, dict[str, float]] = {}
    for kind, call in kinds.items():
        for _ in range(warmup):
            call()
        clock.reset()
        start = time.thread_time()
        for _ in range(requests):
            call()
        total = 1000.0 * (time.thread_time() - start) / requests
        row = {stage: 1000.0 * clock.cpu_s[stage] / requests for stage in STAGES if stage != "handler, other"}
        row["handler, other"] = total - sum(row.values())
        row["total"] = total
        out[kind] = row
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m demo.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--bundle", default="teaching")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    result = profile(args.requests, bundle=args.bundle)
    if args.json:
        print(json.dumps(result))
        return
    kinds = list(result)
    print(f"CPU ms per request, {args.requests} requests each, bundle {args.bundle}")
    print(f"{'stage':<28}" + "".join(f"{k[:34]:>36}" for k in kinds))
    for stage in (*STAGES, "total"):
        print(f"{stage:<28}" + "".join(f"{result[k][stage]:36.1f}" for k in kinds))


if __name__ == "__main__":
    main()
