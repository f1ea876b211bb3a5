"""Spaces / local entry point: ``python app.py [--bundle NAME]`` serves the unmask demo (README front matter = Space
config).

The default bundle (what ``auto`` means) is ``--bundle``, else ``UNMASK_BUNDLE``, else ``ffhq`` where its files are
already in the Hugging Face cache or a GPU is present, else ``teaching`` (offline, CPU); the choice is printed, and
so is the size of a download before it starts. That bundle is loaded and warmed (models, face detector and
landmarks, one request of each kind) before the server answers, so the first visitor waits no longer than the
next. On a GPU (or a ZeroGPU Space) every bundle offered is loaded at start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from demo.app import CONCURRENCY_LIMIT, build_demo, gpu_attached, launch_kwargs, limit_malloc_arenas, preload
from demo.handlers import warm_start
from demo.models import BUNDLE_ENV, configure_torch, describe_download, download_plan, set_default_bundle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", help=f"the default bundle: teaching, ffhq, digiface or auto (default: ${BUNDLE_ENV}"
                                         ", else the rule above)")
    parser.add_argument("--no-warm", action="store_true", help="load the models on the first request instead")
    args = parser.parse_args(argv)
    limit_malloc_arenas()  # before the server's threads exist: see demo.app.limit_malloc_arenas
    from unmask.errors import UnmaskError

    try:
        bundle, why = set_default_bundle(args.bundle)
        print(f"unmask: default bundle {bundle} ({why})", flush=True)
        plan = download_plan(bundle)
        if plan:
            print(f"unmask: {bundle}: {describe_download(plan)}", flush=True)
        configure_torch()
        if gpu_attached():
            preload()
        if not args.no_warm:
            t0 = time.perf_counter()
            seconds = warm_start(bundle)
            print(f"unmask: warmed {bundle} in {time.perf_counter() - t0:.1f} s ("
                  + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + ")", flush=True)
    except UnmaskError as exc:
        sys.exit(f"unmask: {exc}")
    build_demo().queue(max_size=64, default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(),
    )


if __name__ == "__main__":
    main()
