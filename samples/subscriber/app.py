"""An internal service that receives payhook's webhooks: verifies each delivery with the
``standardwebhooks`` package and handles each event once (deduplicated by ``webhook-id``).

Run it::

    .venv/bin/python samples/subscriber/app.py        # http://127.0.0.1:9100 (or $SUBSCRIBER_PORT)

payhook delivers at least once: after a timeout or a crash the same event (same
``webhook-id``) can arrive again, so the handler records ids it has processed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HERE = Path(__file__).resolve().parent
SAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the sandbox secret of samples/*.toml
logger = logging.getLogger("subscriber")


class Inbox:
    """Processed webhook ids and every POST received (the latter only for the demo)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        with self._lock, contextlib.closing(sqlite3.connect(path)) as conn:
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS processed (
                    webhook_id TEXT PRIMARY KEY, type TEXT, order_id TEXT, amount INTEGER
                );
                CREATE TABLE IF NOT EXISTS received (webhook_id TEXT, verified INTEGER);
                """
            )

    def record(self, webhook_id: str, verified: bool) -> None:
        with self._lock, contextlib.closing(sqlite3.connect(self._path)) as conn, conn:
            conn.execute("INSERT INTO received VALUES (?, ?)", (webhook_id, int(verified)))

    def process_once(self, webhook_id: str, event: dict[str, Any]) -> bool:
        """Handle ``event`` unless ``webhook_id`` was handled before; True if it was new."""
        data = event.get("data", {})
        with self._lock, contextlib.closing(sqlite3.connect(self._path)) as conn, conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO processed VALUES (?, ?, ?, ?)",
                (webhook_id, event.get("type"), data.get("order_id"), data.get("amount")),
            )
            # ... the service's own work goes here, in the same transaction ...
            return cursor.rowcount == 1

    def summary(self) -> dict[str, Any]:
        with self._lock, contextlib.closing(sqlite3.connect(self._path)) as conn:
            processed = conn.execute(
                "SELECT webhook_id, type, order_id, amount FROM processed ORDER BY rowid"
            ).fetchall()
            received = conn.execute("SELECT webhook_id, verified FROM received").fetchall()
        return {
            "processed": [
                {"webhook_id": r[0], "type": r[1], "order_id": r[2], "amount": r[3]}
                for r in processed
            ],
            "received": [{"webhook_id": r[0], "verified": bool(r[1])} for r in received],
        }


webhook = Webhook(os.environ.get("WEBHOOK_SECRET", SAMPLE_SECRET))
inbox = Inbox(Path(os.environ.get("SUBSCRIBER_DB", HERE / "subscriber.db")))


async def receive(request: Request) -> Response:
    body = await request.body()
    headers = {k: v for k, v in request.headers.items()}
    try:
        # Checks the HMAC over "{webhook-id}.{webhook-timestamp}.{body}" with every
        # signature in the header (several during a secret rotation) and the timestamp.
        event = webhook.verify(body, headers)
    except WebhookVerificationError:
        inbox.record(headers.get("webhook-id", "?"), verified=False)
        logger.warning("refused a delivery with a bad signature")
        return JSONResponse({"error": "bad signature"}, status_code=401)
    webhook_id = headers["webhook-id"]
    inbox.record(webhook_id, verified=True)
    order_id = event.get("data", {}).get("order_id")
    if inbox.process_once(webhook_id, event):
        logger.info("verified delivery %s: %s order %s", webhook_id, event["type"], order_id)
    else:
        logger.info("verified delivery %s again: already handled", webhook_id)
    # Any 2xx tells payhook the delivery succeeded; answer quickly.
    return Response(status_code=204)


async def received(_request: Request) -> Response:
    return JSONResponse(inbox.summary())


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    logger.info("subscriber ready")
    yield


app = Starlette(
    routes=[
        Route("/webhooks/payments", receive, methods=["POST"]),
        Route("/received", received, methods=["GET"]),
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description="The payhook sample subscriber.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SUBSCRIBER_PORT", 9100)))
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
