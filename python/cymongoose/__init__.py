"""cymongoose: Python bindings for libcymg, an event-loop networking library.

Everything is importable from the package root::

    from cymongoose import Manager, MG_EV_READ

The types and constants live in the C extension ``cymongoose._cymg``.
"""

from ._cymg import *  # noqa: F401,F403
from ._cymg import Connection, Manager, Timer, TlsOpts, __version__  # noqa: F401
from . import _cymg as _ext
from .aio import AsyncManager  # noqa: F401

__all__ = sorted([name for name in dir(_ext) if not name.startswith("_")] + ["AsyncManager"])

del _ext
