"""Spaces / local entry point: ``python app.py`` serves the unmask demo (README front matter = Space config).

The bundles offered are those that can load here (``ffhq`` when its Hub files are cached or the Hub answers;
``teaching`` always). On a GPU (or a ZeroGPU Space) the models load at start; on a CPU on first use.
"""

from __future__ import annotations

import os

from demo.app import CONCURRENCY_LIMIT, build_demo, gpu_attached, launch_kwargs, limit_malloc_arenas, preload

if __name__ == "__main__":
    limit_malloc_arenas()  # before the server's threads exist: see demo.app.limit_malloc_arenas
    if gpu_attached():
        preload()
    build_demo().queue(max_size=64, default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(),
    )
