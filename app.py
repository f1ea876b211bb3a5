"""Spaces / local entry point: ``python app.py`` serves the unmask demo on the embedded teaching models."""

from __future__ import annotations

import os

from demo.app import build_demo

if __name__ == "__main__":
    build_demo().queue(max_size=16).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
