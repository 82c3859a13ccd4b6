"""Ctrl-C handling: writes that must finish (checkpoint, summary) are not cut in half."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["deferred_interrupts"]


class _Pressed:
    """Whether Ctrl-C was pressed while interrupts were deferred."""

    def __init__(self) -> None:
        self.pressed = False


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[_Pressed]:
    """Hold back SIGINT for the block; the yielded object's ``pressed`` says if one came.

    Outside the main thread (where Python cannot install signal handlers) this does
    nothing and interrupts behave as usual.
    """
    flag = _Pressed()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        flag.pressed = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
