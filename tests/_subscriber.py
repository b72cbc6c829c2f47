"""A real subscriber service for tests: records deliveries, verifies them with `standardwebhooks`,
and can be told to fail, hang or answer 410."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Subscriber:
    """State of the subscriber app; tests read ``received`` and set ``fail_next``/``status``."""

    secret: str
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    status: int = 204
    hang_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except Exception:
                verified = False
            with self.lock:
                self.received.append(Received(headers=headers, body=body, verified=verified))
                failing = self.fail_next > 0
                if failing:
                    self.fail_next -= 1
            if self.hang_s:
                await asyncio.sleep(self.hang_s)
            if failing:
                return Response(b"boom", status_code=500)
            return Response(status_code=self.status)

        return Starlette(routes=[Route("/webhooks/payments", hook, methods=["POST"])])

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]
