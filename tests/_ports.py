"""TCP ports for servers started as child processes, which must be given a port number.

A port found with ``bind(("127.0.0.1", 0))`` and released comes from the kernel's ephemeral
range, where any outgoing connection (of this test, of another xdist worker, of another job on
the host) may take it as its local port before the child binds it. These ports come from below
that range instead, from a slice of their own per xdist worker, and are checked free.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["free_port"]

_LOWEST = 10_000
_SLICE = 400


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # set by pytest-xdist
    digits = worker.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


def _candidates() -> Iterator[int]:
    slices = max(1, (_ephemeral_low() - _LOWEST) // _SLICE)
    start = _LOWEST + (_worker_index() % slices) * _SLICE
    ports = list(range(start, start + _SLICE))
    random.Random(os.getpid()).shuffle(ports)  # a re-run does not retrace the last one's steps
    return itertools.cycle(ports)


_ports = _candidates()


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and that no outgoing connection will take."""
    for _ in range(_SLICE):
        port = next(_ports)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in this worker's slice of {_SLICE}")
