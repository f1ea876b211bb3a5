"""Serve the Gradio app on 127.0.0.1 for a test module (as ``python app.py`` does, on a free port)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_demo() -> Iterator[str]:
    """Build the demo, launch it with the app's queue and launch settings, yield its URL, close it."""
    from demo.app import CONCURRENCY_LIMIT, build_demo, launch_kwargs

    demo = build_demo()
    port = free_port()
    demo.queue(max_size=64, default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
