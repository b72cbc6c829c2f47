"""The per-address connection cap: what an address is, counting, and the rate-limited log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from payhook._conncap import ConnectionCap, address_key


@pytest.mark.parametrize(
    ("peername", "key"),
    [
        (("192.0.2.7", 51000), "192.0.2.7"),
        (("::ffff:192.0.2.7", 51000, 0, 0), "192.0.2.7"),  # IPv4-mapped: the IPv4 address
        (("::ffff:c000:207", 51000, 0, 0), "192.0.2.7"),
        (("2001:db8:1:2::1", 51000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff:ffff:ffff:ffff", 51000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:DB8:1:2::abcd", 51000, 0, 0), "2001:db8:1:2::/64"),  # one spelling
        (("fe80::1%eth0", 51000, 0, 2), "fe80::/64"),  # the zone id is not part of it
        (("::1", 51000, 0, 0), "::/64"),
        (("", 0), None),
        ("", None),  # a Unix socket: not capped
        ("/run/payhook.sock", None),
        (None, None),
        ((), None),
        (("not:an:address", 1, 0, 0), None),
    ],
)
def test_address_key(peername: Any, key: str | None) -> None:
    assert address_key(peername) == key


def test_two_addresses_of_one_ipv6_64_share_a_count_others_do_not() -> None:
    cap = ConnectionCap(2)
    same = [address_key((f"2001:db8:0:1::{n}", 1, 0, 0)) for n in (1, 2, 3)]
    other = address_key(("2001:db8:0:2::1", 1, 0, 0))
    assert None not in same
    assert other is not None
    assert [cap.admit(str(key)) for key in same] == [True, True, False]
    assert cap.admit(other)


def test_admit_up_to_the_limit_then_release() -> None:
    cap = ConnectionCap(3)
    assert [cap.admit("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    assert cap.admit("192.0.2.2")  # another address has its own count
    assert cap.open_connections("192.0.2.1") == 3
    cap.release("192.0.2.1")
    assert cap.admit("192.0.2.1")
    for _ in range(3):
        cap.release("192.0.2.1")
    cap.release("192.0.2.2")
    assert cap.open_connections("192.0.2.1") == 0
    assert cap.addresses == 0  # no entry is left behind for a gone address


def test_zero_is_no_cap() -> None:
    cap = ConnectionCap(0)
    assert all(cap.admit("192.0.2.1") for _ in range(10_000))


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        ConnectionCap(-1)


class _Loop:
    """The part of an event loop the cap uses: timers that the test fires by hand."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Callable[..., object], tuple[Any, ...]]] = []

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> None:
        self.timers.append((delay, callback, args))

    def fire(self) -> None:
        _delay, callback, args = self.timers.pop(0)
        callback(*args)


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "payhook.inbound"]


def test_refusals_are_counted_each_and_logged_once_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of refusals: every one is counted, the first is logged at once, the rest in
    one summary line per period, and a quiet period ends the summaries."""
    counted: list[int] = []
    cap = ConnectionCap(5, on_refused=lambda: counted.append(1), log_every_s=60)
    loop: Any = _Loop()
    caplog.set_level(logging.WARNING, logger="payhook.inbound")
    for _ in range(1000):
        cap.refused("192.0.2.1", loop)
    for _ in range(10):
        cap.refused("192.0.2.2", loop)
    assert len(counted) == 1010
    lines = _refusal_lines(caplog)
    assert len(lines) == 1
    assert lines[0].startswith("connection refused: 192.0.2.1 already holds 5 connections")
    assert [delay for delay, _cb, _args in loop.timers] == [60]

    loop.fire()  # the end of the first period: one summary line, and a new period
    lines = _refusal_lines(caplog)
    assert len(lines) == 2
    assert lines[1].startswith("1009 more connections refused")
    assert "192.0.2.1 (999), 192.0.2.2 (10)" in lines[1]
    assert len(loop.timers) == 1

    cap.refused("192.0.2.3", loop)  # inside the second period: summed up, not logged
    assert len(_refusal_lines(caplog)) == 2
    loop.fire()
    assert _refusal_lines(caplog)[2].startswith("1 more connections refused")
    loop.fire()  # a period without refusals: no line, and no timer any more
    assert len(_refusal_lines(caplog)) == 3
    assert loop.timers == []
    cap.refused("192.0.2.4", loop)  # after a quiet period: logged at once again
    assert _refusal_lines(caplog)[3].startswith("connection refused: 192.0.2.4")


def test_a_summary_names_the_top_addresses_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refusals from many addresses: the summary names five, the rest are counted, and what
    is remembered between two lines is bounded."""
    cap = ConnectionCap(1)
    loop: Any = _Loop()
    caplog.set_level(logging.WARNING, logger="payhook.inbound")
    cap.refused("198.51.100.1", loop)
    for n in range(5000):
        cap.refused(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", loop)
    assert len(cap._unlogged) <= 256
    loop.fire()
    summary = _refusal_lines(caplog)[1]
    assert summary.startswith("5000 more connections refused")
    assert summary.endswith("and 4995 from other addresses")
