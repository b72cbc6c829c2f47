"""A small shop that mounts payhook: orders in SQLite, marked paid by an in-process handler.

Run it (from the repository root)::

    .venv/bin/python samples/shop/app.py --port 8001
    curl -X POST localhost:8001/orders -d '{"id": "1001", "amount": "88.88"}'
    .venv/bin/payhook simulate alipay --config samples/shop/payhook.toml \\
        --order 1001 --amount 88.88 --url http://127.0.0.1:8001/payments/notify/alipay
    curl localhost:8001/orders/1001

The payment provider's callback URL is ``https://<shop>/payments/notify/<channel>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from payhook import PayHook
from payhook.errors import PayhookError
from payhook.events import Event, format_amount, parse_amount

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("shop")


class Orders:
    """The shop's own orders table (a plain SQLite file, separate from payhook's database)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def setup(self) -> None:
        with self._lock, contextlib.closing(self._connect()) as conn:
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS orders (
                    id TEXT PRIMARY KEY,
                    amount_fen INTEGER NOT NULL,       -- integer fen, never a float
                    status TEXT NOT NULL DEFAULT 'pending', -- pending | paid | needs_review
                    paid_event_id TEXT,
                    paid_at TEXT,
                    note TEXT
                );
                -- One row per payhook event handled: delivery is at-least-once, so the
                -- handler may see an event twice; this makes the second time a no-op.
                CREATE TABLE IF NOT EXISTS handled_events (
                    event_id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL,
                    outcome TEXT NOT NULL
                );
                """
            )

    def create(self, order_id: str, amount_fen: int) -> bool:
        with self._lock, contextlib.closing(self._connect()) as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO orders (id, amount_fen) VALUES (?, ?)",
                (order_id, amount_fen),
            )
            return cursor.rowcount == 1

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self._lock, contextlib.closing(self._connect()) as conn:
            row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
            if row is None:
                return None
            handled = conn.execute(
                "SELECT count(*) FROM handled_events WHERE order_id = ?", (order_id,)
            ).fetchone()[0]
        order = dict(row)
        order["amount"] = format_amount(order["amount_fen"])
        order["handled_events"] = handled
        return order

    def mark_paid(self, *, event_id: str, order_id: str, amount_fen: int, paid_at: str) -> str:
        """Mark the order paid once; returns what happened (never raises for a known order).

        Raises:
            LookupError: no such order (payhook retries the delivery, then keeps it dead).
        """
        with self._lock, contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute(
                    "SELECT 1 FROM handled_events WHERE event_id = ?", (event_id,)
                ).fetchone():
                    conn.execute("COMMIT")
                    return "duplicate"
                order = conn.execute(
                    "SELECT amount_fen, status FROM orders WHERE id = ?", (order_id,)
                ).fetchone()
                if order is None:
                    raise LookupError(f"no order {order_id!r}")
                if order["status"] == "paid":
                    outcome = "already_paid"
                elif order["amount_fen"] != amount_fen:
                    # Never mark paid on a different amount: flag it for a person.
                    outcome = "amount_mismatch"
                    conn.execute(
                        "UPDATE orders SET status = 'needs_review', note = ? WHERE id = ?",
                        (f"paid {amount_fen} fen, expected {order['amount_fen']}", order_id),
                    )
                else:
                    outcome = "paid"
                    conn.execute(
                        "UPDATE orders SET status = 'paid', paid_event_id = ?, paid_at = ? "
                        "WHERE id = ? AND status = 'pending'",
                        (event_id, paid_at, order_id),
                    )
                conn.execute(
                    "INSERT INTO handled_events (event_id, order_id, outcome) VALUES (?, ?, ?)",
                    (event_id, order_id, outcome),
                )
                conn.execute("COMMIT")
                return outcome
            except BaseException:
                conn.execute("ROLLBACK")
                raise


orders = Orders(Path(os.environ.get("SHOP_DB", HERE / "shop.db")))
hook = PayHook.from_config(os.environ.get("PAYHOOK_CONFIG", HERE / "payhook.toml"))


@hook.on("payment.order.paid")
async def mark_paid(event: Event) -> None:
    """In-process subscriber: same outbox, retries and dead state as an HTTP subscriber.

    Its subscription is ``handler:mark_paid`` however the shop is started (``python app.py``
    or ``uvicorn app:app``); renaming this function makes a new subscription.
    """
    data = event.data
    if data.order_id is None or data.amount is None:
        return
    outcome = await asyncio.to_thread(
        orders.mark_paid,
        event_id=event.id,
        order_id=data.order_id,
        amount_fen=data.amount,
        paid_at=data.paid_at or datetime.now(UTC).isoformat(),
    )
    level = logging.WARNING if outcome == "amount_mismatch" else logging.INFO
    logger.log(level, "order %s: %s (event %s)", data.order_id, outcome, event.id)


async def create_order(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
        order_id = str(body["id"])
        amount_fen = parse_amount(str(body["amount"]))
    except (ValueError, KeyError, TypeError, PayhookError):
        return JSONResponse({"error": 'send {"id": "1001", "amount": "88.88"}'}, 400)
    created = await asyncio.to_thread(orders.create, order_id, amount_fen)
    order = await asyncio.to_thread(orders.get, order_id)
    return JSONResponse(order, status_code=201 if created else 200)


async def get_order(request: Request) -> Response:
    order = await asyncio.to_thread(orders.get, request.path_params["id"])
    if order is None:
        return JSONResponse({"error": "no such order"}, 404)
    return JSONResponse(order)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # Starlette does not run a mounted app's lifespan: the shop enters payhook's itself.
    orders.setup()
    async with hook.lifespan(app):
        yield


app = Starlette(
    routes=[
        Route("/orders", create_order, methods=["POST"]),
        Route("/orders/{id}", get_order, methods=["GET"]),
        Mount("/payments", app=hook.app),
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description="The payhook sample shop.")
    parser.add_argument("--host", default="127.0.0.1")
    # 8001: `payhook serve` (the README's first command) holds 8000.
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
