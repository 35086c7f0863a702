"""Loops compiled by numba where it is installed: once per process (cached on disk), called without dispatch.

A numba function checks its arguments' types on every call to pick the compiled
version, a few microseconds of a one-row score. ``compile_loop`` compiles a
loop for the types of example arguments (at model load, never in a request)
and returns that version's entry point, which callers must give exactly those
types (C-contiguous float64 matrices, as the scorers make sure).
"""
from __future__ import annotations

import importlib.util
import threading

_lock = threading.Lock()
_dispatchers: dict = {}


def available() -> bool:
    """Tell whether loops can be compiled (numba is installed; without it serving uses numpy)."""
    return importlib.util.find_spec("numba") is not None


def compile_loop(function, *example):
    """Compile `function` (nogil, cached) for the types of `example`, running it on them; return its entry point."""
    with _lock:
        dispatcher = _dispatchers.get(function)
        if dispatcher is None:
            import numba  # imported here: only a process that compiles a loop pays for it

            dispatcher = _dispatchers[function] = numba.njit(nogil=True, cache=True, boundscheck=False)(function)
    dispatcher(*example)  # compiles, or loads from numba's cache
    try:
        return dispatcher.overloads[tuple(dispatcher.typeof_pyval(a) for a in example)].entry_point
    except (AttributeError, KeyError):  # another numba: keep the dispatcher
        return dispatcher
