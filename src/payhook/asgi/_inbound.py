"""``POST /notify/{channel}``: raw body -> the channel's provider -> intake transaction -> ack.

The provider's acknowledgement protocol is the error contract: every outcome, including our
own failures, is answered in the provider's format, and the success answer is sent only after
the intake transaction committed.

The endpoint is a plain ASGI app mounted on a Starlette route (Starlette still matches the
path and the method): it reads the body from ``receive`` and answers through ``send``
without building Request and Response objects, the callback path being the hot one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.types import Receive, Scope, Send

from payhook._clock import Clock
from payhook._metrics import Metrics
from payhook._stores import CallbackStore, IntakeRecord, RefusedCallback
from payhook.errors import (
    DecryptionError,
    RefusedError,
    SignatureError,
    StorageError,
    VerificationError,
)
from payhook.providers import Outcome, Provider, RawNotification, Reply

__all__ = ["InboundEndpoint", "unknown_channel"]

logger = logging.getLogger("payhook.inbound")


class _TooLarge(Exception):
    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__("body too large")
        self.chunks = chunks  # what was read before refusing (audited)


class _Disconnected(Exception):
    pass


def _content_type(media_type: str) -> bytes:
    # As Starlette's Response does: text types are declared UTF-8.
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=utf-8"
    return media_type.encode("latin-1")


async def _send(send: Send, status: int, body: bytes, media_type: str | None) -> None:
    headers = [(b"content-length", str(len(body)).encode("latin-1"))]
    if media_type is not None:
        headers.append((b"content-type", _content_type(media_type)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _UnknownChannel:
    """The contract's answer to a callback for no configured channel: plain 404.

    An ASGI app object (Starlette would call a plain function with a Request)."""

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await _send(send, 404, b"unknown channel", "text/plain")


unknown_channel = _UnknownChannel()


async def _respond(send: Send, reply: Reply, *, status: int | None = None) -> None:
    await _send(send, reply.status if status is None else status, reply.body, reply.content_type)


class InboundEndpoint:
    """The notify endpoint for every configured channel."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        store: CallbackStore,
        clock: Clock,
        metrics: Metrics,
        max_body_bytes: int,
    ) -> None:
        self._providers = providers
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._children: dict[tuple[str, str, str], Any] = {}

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        length = headers.get("content-length")
        if length is not None:
            try:
                if int(length) > self._max_body_bytes:
                    raise _TooLarge([])
            except ValueError:
                pass  # a bad header: count what actually arrives
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self._max_body_bytes:
                raise _TooLarge(chunks)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _audit(
        self,
        scope: Scope,
        channel: str,
        headers: Mapping[str, str],
        body: bytes | list[bytes],
        reason: str,
        received_at: datetime,
    ) -> None:
        # Bounded (contract §14), written behind accepted callbacks, dropped and counted by
        # the store under pressure: auditing never delays this answer.
        client = scope.get("client")
        self._store.audit_refused(
            channel,
            functools.partial(
                RefusedCallback.build,
                channel=channel,
                received_at=received_at,
                reason=reason,
                remote_addr=str(client[0]) if client else None,
                headers=headers,
                body=body,
            ),
        )

    def _count(self, channel: str, outcome: str, reason: str) -> None:
        # The label sets are few (configured channels x outcomes x reason codes): their
        # children are looked up once, not on every callback.
        key = (channel, outcome, reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics.callbacks.labels(*key)
        child.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = scope["path_params"]["channel"]
        provider = self._providers.get(channel)
        if provider is None:
            await unknown_channel(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        try:
            body = await self._read_body(headers, receive)
        except _TooLarge as exc:
            self._count(channel, "refused", "too_large")
            logger.warning(
                "callback refused: body larger than max_body_bytes",
                extra={"action": "callback_refused", "channel": channel, "reason": "too_large"},
            )
            self._audit(scope, channel, headers, exc.chunks, "too_large", self._clock.now())
            reply = provider.reply(Outcome.REFUSED_MALFORMED, "body too large")
            await _respond(send, reply, status=413)
            return
        except _Disconnected:
            await _send(send, 400, b"", None)  # the client is gone: a no-op, as Starlette does
            return
        raw = RawNotification(
            channel=channel, headers=headers, body=body, received_at=self._clock.now()
        )
        await _respond(send, await self._reply(provider, raw, scope))

    async def _reply(self, provider: Provider, raw: RawNotification, scope: Scope) -> Reply:
        channel = raw.channel
        client = scope["client"][0] if scope.get("client") else None
        query = scope.get("query_string")
        if query:
            # Neither provider signs the URL: parameters there are anyone's. A notify URL
            # must not carry any (docs/providers.md); the query itself is not logged, it
            # may hold what someone thought was a secret.
            logger.warning(
                "callback refused: query string on the notify URL (%d bytes); "
                "the providers sign only the body",
                len(query),
                extra={
                    "action": "callback_refused",
                    "channel": channel,
                    "reason": "query_string",
                    "remote": client,
                },
            )
            self._count(channel, "refused", "query_string")
            self._audit(scope, channel, raw.headers, raw.body, "query_string", raw.received_at)
            return provider.reply(
                Outcome.REFUSED_MALFORMED, "the notify URL must not carry a query string"
            )
        try:
            parsed = provider.verify(raw)
        except RefusedError as exc:
            outcome = (
                Outcome.REFUSED_AUTH
                if isinstance(exc, VerificationError)
                else Outcome.REFUSED_MALFORMED
            )
            level = logging.INFO if exc.reason == "signature_probe" else logging.WARNING
            hint = exc.hint if isinstance(exc, SignatureError) else None
            logger.log(
                level,
                "callback refused: %s",
                exc.message if hint is None else f"{exc.message}; {hint}",
                extra={
                    "action": "callback_refused",
                    "channel": channel,
                    "reason": exc.reason,
                    "remote": client,
                },
            )
            self._count(channel, "refused", exc.reason)
            self._audit(scope, channel, raw.headers, raw.body, exc.reason, raw.received_at)
            return provider.reply(outcome, exc.message)
        except DecryptionError as exc:
            logger.error(
                "authentic callback cannot be decrypted: %s",
                exc.message,
                extra={"action": "callback_key_misconfigured", "channel": channel},
            )
            self._count(channel, "error", exc.reason)
            self._audit(scope, channel, raw.headers, raw.body, exc.reason, raw.received_at)
            return provider.reply(Outcome.KEY_MISCONFIGURED, "decryption failed")
        except Exception:  # a verifier bug must still get the provider's format
            logger.exception(
                "provider adapter crashed on a callback",
                extra={"action": "callback_crashed", "channel": channel},
            )
            self._count(channel, "refused", "adapter_error")
            self._audit(scope, channel, raw.headers, raw.body, "adapter_error", raw.received_at)
            return provider.reply(Outcome.REFUSED_MALFORMED, "malformed")
        record = IntakeRecord(
            channel=channel,
            received_at=raw.received_at,
            headers=dict(raw.headers),
            body=raw.body,
            notification_id=parsed.notification_id,
            drafts=parsed.events,
        )
        try:
            result = await self._store.record(record)
        except StorageError as exc:
            logger.error(
                "callback not stored: %s",
                exc.message,
                extra={"action": "callback_storage_unavailable", "channel": channel},
            )
            self._count(channel, "error", "storage_unavailable")
            return provider.reply(Outcome.STORAGE_UNAVAILABLE, "try again later")
        except Exception:  # never answer success by accident, never a bare 500 page
            logger.exception(
                "intake transaction failed",
                extra={"action": "callback_crashed", "channel": channel},
            )
            self._count(channel, "error", "storage_error")
            return provider.reply(Outcome.STORAGE_UNAVAILABLE, "try again later")
        outcome_label = "duplicate" if result.is_duplicate else "accepted"
        self._count(channel, outcome_label, "")
        for event_type in result.new_event_types:
            self._metrics.events.labels(event_type).inc()
        logger.info(
            "callback %s",
            outcome_label,
            extra={
                "action": f"callback_{outcome_label}",
                "channel": channel,
                "order_id": parsed.order_id,
                "event_ids": list(result.event_ids),
            },
        )
        return provider.reply(Outcome.ACCEPTED)
