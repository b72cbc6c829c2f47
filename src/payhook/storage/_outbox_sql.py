"""The outbox's SQL, per dialect. Each PostgreSQL verb is one statement (one round trip,
its own transaction); SQLite's run inside ``BEGIN IMMEDIATE`` through SQLAlchemy.

The claim filters subscriptions with ``NOT IN`` (disabled ones, those this worker cannot
serve, those at their in-flight cap) rather than a join, so the planner walks
``ix_payhook_deliveries_due`` in order and stops after ``LIMIT`` rows whatever the backlog.
A worker serves a subscription when it has a sink for its kind that takes every name
(``:kinds``) or that lists the subscription's name (``:named``, ``{kind: [names]}``: a
process-local sink such as in-process handlers).
"""

from __future__ import annotations

import re
from typing import LiteralString

from payhook._types import DeliveryStatus

__all__ = [
    "PG_CLAIM",
    "PG_CLAIM_ARGS",
    "PG_COMPLETE",
    "SQLITE_ATTEMPTS",
    "SQLITE_CLAIM",
    "SQLITE_CLAIMED_DETAILS",
    "SQLITE_DISABLE",
    "SQLITE_FINISH",
]

# Due, and not held by a live claim (a lease that ran out frees the row by itself).
_DUE = (
    f"d.status IN ('{DeliveryStatus.PENDING}', '{DeliveryStatus.FAILED}') "
    "AND d.next_attempt_at <= :now AND (d.lease_until IS NULL OR d.lease_until <= :now)"
)


def _numbered(sql: str, names: tuple[str, ...]) -> str:
    """``sql`` with ``:name`` placeholders turned into asyncpg's ``$1``, ``$2`` …"""
    for index, name in enumerate(names, start=1):
        sql = re.sub(rf":{name}\b", f"${index}", sql)
    return sql


PG_CLAIM_ARGS = ("now", "lease_until", "token", "limit", "cap", "kinds", "named", "full", "caps")

PG_CLAIM = _numbered(
    f"""
WITH cand AS (
    SELECT d.id, d.subscription_id, d.next_attempt_at
    FROM payhook_deliveries AS d
    WHERE {_DUE}
      AND d.subscription_id NOT IN (
          SELECT s.id FROM payhook_subscriptions AS s
          WHERE NOT s.enabled OR NOT (
                s.kind IN (SELECT value FROM json_array_elements_text(CAST(:kinds AS json)))
                OR (s.kind, s.name) IN (
                    SELECT k.key, n.value FROM json_each(CAST(:named AS json)) AS k,
                           json_array_elements_text(k.value) AS n))
          UNION ALL
          SELECT value FROM json_array_elements_text(CAST(:full AS json)))
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT id, subscription_id,
           row_number() OVER (PARTITION BY subscription_id ORDER BY next_attempt_at, id) AS rn
    FROM cand
), caps AS (
    SELECT key AS sid, CAST(value AS integer) AS rem FROM json_each_text(CAST(:caps AS json))
), picked AS (
    SELECT r.id FROM ranked AS r LEFT JOIN caps AS c ON c.sid = r.subscription_id
    WHERE r.rn <= COALESCE(c.rem, :cap)
)
UPDATE payhook_deliveries AS d
SET claim_token = :token, claimed_at = :now, lease_until = :lease_until
FROM picked AS p, payhook_events AS e, payhook_subscriptions AS s
WHERE d.id = p.id AND e.id = d.event_id AND s.id = d.subscription_id
RETURNING d.id, d.event_id, d.subscription_id, d.attempt_count,
          e.body, s.name, s.kind, s.url, s.secrets
""",  # noqa: S608 - built from module constants only
    PG_CLAIM_ARGS,
)

# $1-$12: the completions as one typed array per column (``_row`` in _outbox.py), $13: now.
# Arrays go over the wire in asyncpg's binary format: no JSON to build or parse per row.
PG_COMPLETE: LiteralString = """
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                         $5::timestamptz[], $6::integer[], $7::integer[], $8::text[],
                         $9::text[], $10::text[], $11::text[], $12::text[])
        AS v(id, token, status, next_attempt_at, attempted_at, status_code, latency_ms,
             error_class, error, response_body, subscription_id, disable_reason)
), done AS (
    UPDATE payhook_deliveries AS d
    SET status = v.status, attempt_count = d.attempt_count + 1,
        next_attempt_at = v.next_attempt_at, last_attempt_at = v.attempted_at,
        last_status_code = v.status_code, last_error = v.error, updated_at = $13,
        claim_token = NULL, claimed_at = NULL, lease_until = NULL
    FROM v
    WHERE d.id = v.id AND d.claim_token = v.token
    RETURNING d.id
), logged AS (
    INSERT INTO payhook_delivery_attempts
        (delivery_id, attempted_at, status_code, latency_ms, error_class, error, response_body)
    SELECT v.id, v.attempted_at, v.status_code, v.latency_ms, v.error_class, v.error,
           v.response_body
    FROM v
    WHERE EXISTS (SELECT 1 FROM payhook_deliveries AS d WHERE d.id = v.id)
), disabled AS (
    UPDATE payhook_subscriptions AS s
    SET enabled = false, disabled_reason = g.reason, updated_at = $13
    FROM (SELECT subscription_id, min(disable_reason) AS reason FROM v
          WHERE disable_reason IS NOT NULL GROUP BY subscription_id) AS g
    WHERE s.id = g.subscription_id AND s.enabled
)
SELECT id FROM done
"""

SQLITE_CLAIM: LiteralString = f"""
UPDATE payhook_deliveries
SET claim_token = :token, claimed_at = :now, lease_until = :lease_until
WHERE id IN (
    SELECT r.id FROM (
        SELECT c.id, c.subscription_id,
               row_number() OVER (PARTITION BY c.subscription_id
                                  ORDER BY c.next_attempt_at, c.id) AS rn
        FROM (
            SELECT d.id, d.subscription_id, d.next_attempt_at
            FROM payhook_deliveries AS d
            WHERE {_DUE}
              AND d.subscription_id NOT IN (
                  SELECT s.id FROM payhook_subscriptions AS s
                  WHERE NOT s.enabled OR NOT (
                        s.kind IN (SELECT value FROM json_each(:kinds))
                        OR (s.kind, s.name) IN (
                            SELECT k.key, n.value
                            FROM json_each(:named) AS k, json_each(k.value) AS n))
                  UNION ALL
                  SELECT value FROM json_each(:full))
            ORDER BY d.next_attempt_at
            LIMIT :limit
        ) AS c
    ) AS r
    LEFT JOIN (SELECT key AS sid, value AS rem FROM json_each(:caps)) AS k
        ON k.sid = r.subscription_id
    WHERE r.rn <= COALESCE(k.rem, :cap)
)
RETURNING id, event_id, subscription_id, attempt_count
"""  # noqa: S608 - built from module constants only

SQLITE_CLAIMED_DETAILS: LiteralString = """
SELECT d.id, e.body, s.name, s.kind, s.url, s.secrets
FROM payhook_deliveries AS d
JOIN payhook_events AS e ON e.id = d.event_id
JOIN payhook_subscriptions AS s ON s.id = d.subscription_id
WHERE d.id IN (SELECT value FROM json_each(:ids))
"""

_SQLITE_ROWS: LiteralString = (
    "(SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token, "
    "json_extract(value, '$.status') AS status, "
    "json_extract(value, '$.next_attempt_at') AS next_attempt_at, "
    "json_extract(value, '$.attempted_at') AS attempted_at, "
    "json_extract(value, '$.status_code') AS status_code, "
    "json_extract(value, '$.latency_ms') AS latency_ms, "
    "json_extract(value, '$.error_class') AS error_class, "
    "json_extract(value, '$.error') AS error, "
    "json_extract(value, '$.response_body') AS response_body "
    "FROM json_each(:rows)) AS v"
)

SQLITE_FINISH: LiteralString = f"""
UPDATE payhook_deliveries
SET status = v.status, attempt_count = payhook_deliveries.attempt_count + 1,
    next_attempt_at = v.next_attempt_at, last_attempt_at = v.attempted_at,
    last_status_code = v.status_code, last_error = v.error, updated_at = :now,
    claim_token = NULL, claimed_at = NULL, lease_until = NULL
FROM {_SQLITE_ROWS}
WHERE payhook_deliveries.id = v.id AND payhook_deliveries.claim_token = v.token
RETURNING payhook_deliveries.id
"""  # noqa: S608 - built from module constants only

SQLITE_ATTEMPTS: LiteralString = f"""
INSERT INTO payhook_delivery_attempts
    (delivery_id, attempted_at, status_code, latency_ms, error_class, error, response_body)
SELECT v.id, v.attempted_at, v.status_code, v.latency_ms, v.error_class, v.error,
       v.response_body
FROM {_SQLITE_ROWS}
WHERE EXISTS (SELECT 1 FROM payhook_deliveries AS d WHERE d.id = v.id)
"""  # noqa: S608 - built from module constants only

SQLITE_DISABLE: LiteralString = """
UPDATE payhook_subscriptions SET enabled = 0, disabled_reason = :reason, updated_at = :now
WHERE id = :sid AND enabled
"""
