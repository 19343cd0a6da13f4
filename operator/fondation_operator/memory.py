"""Give freed memory back to the operating system.

A burst of thousands of watch events allocates many short-lived objects;
CPython frees them, but glibc keeps the pages in its heaps, so the process
would stay at its peak size for good. Trimming the heap after busy periods
keeps the resident size close to what the operator really holds.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_trim = _load_trim()


def release() -> bool:
    """Collect garbage and trim the C heap; False where malloc_trim is absent."""
    gc.collect()
    if _trim is None:
        return False
    _trim(0)
    return True


async def trim_periodically(interval: float = 5.0) -> None:
    while True:
        await asyncio.sleep(interval)
        release()
