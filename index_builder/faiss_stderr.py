"""Capture what FAISS's C++ code prints on stderr while it trains, to record its warnings.

FAISS reports bad parameters (too few training points for the centroids, ...) with
``fprintf(stderr, "WARNING ...")`` from C++, below Python's ``sys.stderr``, so only a
file-descriptor redirect sees them. ``captured()`` points fd 2 at a temporary file for
the duration of the block, then copies everything back to the real stderr unchanged (the
Job log still shows it, in order) and keeps the lines that start with ``WARNING``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def captured() -> Iterator[list[str]]:
    """Yield a list that holds FAISS's WARNING lines once the block has finished."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read()
            if text:
                os.write(2, text)
            lines += [line.strip() for line in text.decode("utf-8", "replace").splitlines()
                      if line.lstrip().startswith("WARNING")]
