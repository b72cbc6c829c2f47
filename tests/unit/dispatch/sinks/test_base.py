"""The sink contract: the one kind-to-sink mapping, and the helpers every sink shares."""

from __future__ import annotations

from payhook._types import SubscriptionKind
from payhook.dispatch.sinks import SINKS, HandlerSink, HttpSink, SinkContext
from payhook.dispatch.sinks._base import clean_text, describe_error
from payhook.testing import FakeClock


def test_every_subscription_kind_has_a_sink() -> None:
    """A SubscriptionKind member without a line in SINKS would never be delivered."""
    assert set(SINKS) == set(SubscriptionKind)
    assert SINKS[SubscriptionKind.HTTP] is HttpSink
    assert SINKS[SubscriptionKind.HANDLER] is HandlerSink


def test_stored_kind_values_find_their_sink() -> None:
    """The claim returns kinds as plain strings; they look up the enum-keyed mapping."""
    assert SINKS["http"] is HttpSink
    assert SINKS["handler"] is HandlerSink


def test_which_subscriptions_a_sink_serves() -> None:
    """HTTP serves every subscription of its kind; handlers only the names this process has."""

    async def handle(_event: object) -> None:
        pass

    context = SinkContext(
        clock=FakeClock(), request_timeout_s=5.0, concurrency=4, handlers={"a": handle}
    )
    assert HttpSink(context).names is None
    assert HandlerSink(context).names == {"a"}


def test_clean_text() -> None:
    """clean_text cuts and removes NUL characters."""
    assert clean_text("a\x00b" * 10, 4) == "a\ufffdba"


def test_describe_error() -> None:
    """The stored error names the exception, redacts, and is capped at 500 characters."""
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert describe_error(ValueError("bad token=abc"), (("token=abc", "token=…"),)) == (
        "ValueError: bad token=…"
    )
    assert len(describe_error(RuntimeError("x" * 1000))) == 500
