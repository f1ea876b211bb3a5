"""A short soak of ``python app.py`` (``python -m unmask.bench app --soak`` in small): memory, Python objects and
the temporary folder must not grow with the requests once warm.

The clients call ``/unmask`` over Gradio's REST protocol without a session hash, as ``curl`` and MCP clients do:
every call is a new session to the server. With Gradio's default ``state_session_capacity`` (10,000) each one
kept ~90 KB of per-session state, and the server's memory grew by ~90 MiB and ~230,000 objects per 1,000
requests. Growth is measured after the warm-up (the first half of the requests, which also fills the app's
session store of ``SESSION_CAPACITY``); the bounds sit well above what the fixed app shows under a loaded
2-core machine and well below the leak.
"""

from __future__ import annotations

import pytest

from demo.handlers import EXAMPLES_DIR, SESSION_CAPACITY
from unmask.pipeline import WEIGHTS_DIR

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                 reason="teaching weights not present")]

#: Answers in the soak: the second half runs with the session store full, and is long enough that the
#: least-squares slope of memory (±5 MiB between samples) is not noise.
REQUESTS = max(1000, 2 * SESSION_CAPACITY + 100)
#: Seconds the soak may take at most (an idle 2-core machine answers ~4–8 requests a second).
MAX_SECONDS = 900.0
#: Growth per 1,000 requests after the warm-up that fails the test (the leak: ~90 MiB and ~230,000 objects).
MAX_RSS_MIB_PER_1000 = 30.0
MAX_OBJECTS_PER_1000 = 30_000
#: Files per request that the app leaves in its temporary folder: the recovered photo and the mask, each
#: written once into Gradio's cache (no second copy made by Gradio).
MAX_FILES_PER_REQUEST = 2.2


def test_short_soak_does_not_grow():
    from unmask.bench.soak import soak, soak_server

    with soak_server(interval=5.0) as server:
        result = soak(server.url, server.process.pid, server.tmp_root, server.probe_dir, seconds=MAX_SECONDS,
                      clients=4, interval=5.0, example=str(EXAMPLES_DIR / "teaching_kn95.png"),
                      client="http-anonymous", requests=REQUESTS, alive=server.alive, echo=lambda line: None)
    assert result.alive, "the server died during the soak"
    assert not result.errors, result.errors[:3]
    assert result.answered >= REQUESTS, f"only {result.answered} answers in {MAX_SECONDS:.0f} s"
    rss = result.per_1000("rss_mib")
    objects = result.per_1000("objects")
    assert rss < MAX_RSS_MIB_PER_1000, f"RSS grew {rss:.1f} MiB per 1,000 requests after the warm-up"
    assert objects < MAX_OBJECTS_PER_1000, f"{objects:.0f} more Python objects per 1,000 requests after the warm-up"
    files = result.per_1000("tmp_files") / 1000
    assert files < MAX_FILES_PER_REQUEST, f"{files:.2f} files per request left in the temporary folder"
