"""``POST /notify/{channel}``: raw body -> the channel's provider -> intake transaction -> ack.

The provider's acknowledgement protocol is the error contract: every outcome, including our
own failures, is answered in the provider's format, and the success answer is sent only after
the intake transaction committed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from payhook._clock import Clock
from payhook._metrics import Metrics
from payhook.errors import DecryptionError, RefusedError, StorageError, VerificationError
from payhook.providers import Outcome, Provider, RawNotification, Reply
from payhook.storage import IntakeRecord, Store

__all__ = ["InboundEndpoint"]

logger = logging.getLogger("payhook.inbound")


class _TooLarge(Exception):
    pass


def _respond(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)


class InboundEndpoint:
    """The notify endpoint for every configured channel."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        store: Store,
        clock: Clock,
        metrics: Metrics,
        max_body_bytes: int,
    ) -> None:
        self._providers = providers
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes

    async def _read_body(self, request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > self._max_body_bytes:
                    raise _TooLarge
            except ValueError:
                pass  # a bad header: count what actually arrives
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _audit(self, raw: RawNotification, reason: str) -> None:
        record = IntakeRecord(
            channel=raw.channel,
            received_at=raw.received_at,
            headers=dict(raw.headers),
            body=raw.body,
            notification_id=None,
            drafts=(),
            verdict="refused",
            reason=reason,
        )
        if not self._store.audit_refused(record):
            self._count(raw.channel, "audit_dropped", reason)

    def _count(self, channel: str, outcome: str, reason: str) -> None:
        self._metrics.callbacks.labels(channel, outcome, reason).inc()

    async def handle(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        provider = self._providers.get(channel)
        if provider is None:
            return PlainTextResponse("unknown channel", status_code=404)
        try:
            body = await self._read_body(request)
        except _TooLarge:
            self._count(channel, "refused", "too_large")
            logger.warning(
                "callback refused: body larger than max_body_bytes",
                extra={"action": "callback_refused", "channel": channel, "reason": "too_large"},
            )
            reply = provider.reply(Outcome.REFUSED_MALFORMED, "body too large")
            return _respond(dataclasses.replace(reply, status=413))
        except ClientDisconnect:
            return Response(status_code=400)
        raw = RawNotification(
            channel=channel,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            received_at=self._clock.now(),
        )
        client = request.client.host if request.client else None
        try:
            parsed = provider.verify(raw)
        except RefusedError as exc:
            outcome = (
                Outcome.REFUSED_AUTH
                if isinstance(exc, VerificationError)
                else Outcome.REFUSED_MALFORMED
            )
            level = logging.INFO if exc.reason == "signature_probe" else logging.WARNING
            logger.log(
                level,
                "callback refused: %s",
                exc.message,
                extra={
                    "action": "callback_refused",
                    "channel": channel,
                    "reason": exc.reason,
                    "remote": client,
                },
            )
            self._count(channel, "refused", exc.reason)
            self._audit(raw, exc.reason)
            return _respond(provider.reply(outcome, exc.message))
        except DecryptionError as exc:
            logger.error(
                "authentic callback cannot be decrypted: %s",
                exc.message,
                extra={"action": "callback_key_misconfigured", "channel": channel},
            )
            self._count(channel, "error", exc.reason)
            self._audit(raw, exc.reason)
            return _respond(provider.reply(Outcome.KEY_MISCONFIGURED, "decryption failed"))
        except Exception:  # a verifier bug must still get the provider's format
            logger.exception(
                "provider adapter crashed on a callback",
                extra={"action": "callback_crashed", "channel": channel},
            )
            self._count(channel, "refused", "adapter_error")
            return _respond(provider.reply(Outcome.REFUSED_MALFORMED, "malformed"))
        record = IntakeRecord(
            channel=channel,
            received_at=raw.received_at,
            headers=dict(raw.headers),
            body=body,
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
            return _respond(provider.reply(Outcome.STORAGE_UNAVAILABLE, "try again later"))
        except Exception:  # never answer success by accident, never a bare 500 page
            logger.exception(
                "intake transaction failed",
                extra={"action": "callback_crashed", "channel": channel},
            )
            self._count(channel, "error", "storage_error")
            return _respond(provider.reply(Outcome.STORAGE_UNAVAILABLE, "try again later"))
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
        return _respond(provider.reply(Outcome.ACCEPTED))
