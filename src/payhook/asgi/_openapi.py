"""The OpenAPI 3.1 document of the admin API, served at ``/admin/openapi.json``.

Written by hand next to the routes it describes; ``tests/integration/admin/test_openapi.py``
runs schemathesis against the live app so the two cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from payhook._subscription_rules import NAME_PATTERN
from payhook._version import __version__
from payhook.asgi._admin_common import ERROR_CODES
from payhook.operations import AGE_PATTERN, DELIVERY_STATUSES, MAX_LIMIT
from payhook.providers import event_providers

__all__ = ["openapi_document"]

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_NINT = {"type": ["integer", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": ["string", "null"], "format": "date-time"}
_EVENT_ID = {"type": "string", "pattern": "^evt_[0-9a-z]{26}$"}
_DELIVERY_ID = {"type": "string", "pattern": "^dlv_[0-9a-z]{26}$"}
_FILTER = {
    "type": "string",
    "maxLength": 64,
    "pattern": r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$",
}
_SUB_NAME = {"type": "string", "pattern": NAME_PATTERN}
# What operators may give for since/until: an RFC 3339 time or an age ("6h", "3d").
_SINCE = {
    "type": "string",
    "maxLength": 64,
    "anyOf": [{"format": "date-time"}, {"pattern": AGE_PATTERN}],
    "description": "An RFC 3339 time with an offset, or an age before now such as 6h or 3d.",
}
_URL = {
    "type": "string",
    "maxLength": 2048,
    "pattern": "^https?://[^\\s/?#\\u0000-\\u001f\\u007f]+[^\\s\\u0000-\\u001f\\u007f]*$",
    "description": "http:// or https://. Link-local and cloud metadata targets "
    "(169.254.0.0/16, fe80::/10, metadata.google.internal, ...) are refused with 422 "
    "refused_target, and private ones too when [dispatcher] refuse_private_targets is on.",
}
_SECRET = {"type": "string", "maxLength": 256, "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, **extra}


def _provider() -> dict[str, Any]:
    return {"type": "string", "enum": list(event_providers())}


def _schemas() -> dict[str, Any]:
    data_props = {
        "provider": _provider(),
        "channel": _STR,
        "merchant_id": _STR,
        "order_id": _NSTR,
        "transaction_id": _NSTR,
        "amount": {**_NINT, "description": "Integer minor units (fen)."},
        "currency": _STR,
        "paid_at": _NTIME,
        "payer_id": _NSTR,
        "refund_id": _NSTR,
        "refund_amount": _NINT,
        "refunded_total": _NINT,
        "status": {"type": ["string", "null"], "enum": ["abnormal", "closed", None]},
        "provider_event_type": _STR,
        "raw": {"type": "object", "description": "The verified provider payload."},
    }
    event_props = {
        "id": _EVENT_ID,
        "type": _STR,
        "created_at": _TIME,
        "data": _obj(
            ["provider", "channel", "merchant_id", "order_id", "amount", "currency", "raw"],
            data_props,
        ),
    }
    attempt = _obj(
        ["attempted_at", "status_code", "latency_ms", "error_class", "error", "response_body"],
        {
            "attempted_at": _TIME,
            "status_code": _NINT,
            "latency_ms": _NINT,
            "error_class": _NSTR,
            "error": _NSTR,
            "response_body": {**_NSTR, "description": "First 1 KiB of the answer."},
        },
    )
    delivery_props = {
        "id": _DELIVERY_ID,
        "event_id": _EVENT_ID,
        "event_type": _STR,
        "order_id": _NSTR,
        "subscription": _STR,
        "subscription_id": _STR,
        "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
        "attempt_count": {"type": "integer", "minimum": 0},
        "in_flight": {"type": "boolean"},
        "next_attempt_at": _NTIME,
        "created_at": _TIME,
        "updated_at": _TIME,
        "last_attempt_at": _NTIME,
        "last_status_code": _NINT,
        "last_error": _NSTR,
        "attempts": {"type": "array", "items": _ref("Attempt")},
    }
    subscription_props = {
        "id": _STR,
        "name": _STR,
        "kind": {"type": "string", "enum": ["http", "handler"]},
        "url": {
            **_NSTR,
            "description": "Where events go, shown with its credentials masked: the userinfo "
            "password and the values of query parameters named like secrets (token, key, "
            "secret, sig, auth, ...) read ***. Deliveries use the stored URL whole.",
        },
        "events": {"type": "array", "items": _STR},
        "enabled": {"type": "boolean"},
        "disabled_reason": _NSTR,
        "source": {"type": "string", "enum": ["config", "api", "code"]},
        "secrets": {
            "type": "array",
            "description": "The active secrets, newest first (values never shown).",
            "items": _obj(["expires_at"], {"expires_at": _NTIME}),
        },
        "secret": {
            "type": ["string", "null"],
            "description": "The secret itself only in the creation answer; "
            "whsec_******** (null for handlers) afterwards.",
        },
        "created_at": _TIME,
        "updated_at": _TIME,
    }
    return {
        "Error": _obj(
            ["error"],
            {
                "error": _obj(
                    ["code", "message"],
                    {"code": {"type": "string", "enum": sorted(ERROR_CODES)}, "message": _STR},
                )
            },
        ),
        "Event": _obj(list(event_props), event_props),
        "EventWithDeliveries": _obj(
            [*event_props, "deliveries"],
            {**event_props, "deliveries": {"type": "array", "items": _ref("Delivery")}},
        ),
        "EventPage": _obj(
            ["items", "next_cursor"],
            {"items": {"type": "array", "items": _ref("Event")}, "next_cursor": _NSTR},
        ),
        "Attempt": attempt,
        "Delivery": _obj(list(delivery_props), delivery_props),
        "DeliveryPage": _obj(
            ["items", "next_cursor"],
            {"items": {"type": "array", "items": _ref("Delivery")}, "next_cursor": _NSTR},
        ),
        "ReplayRequest": _obj(
            [],
            {"subscription": {**_SUB_NAME, "description": "Only to this subscription."}},
            additionalProperties=False,
        ),
        "ReplayResult": _obj(
            ["event_id", "deliveries"],
            {"event_id": _EVENT_ID, "deliveries": {"type": "array", "items": _ref("Delivery")}},
        ),
        "Subscription": _obj(list(subscription_props), subscription_props),
        "SubscriptionList": _obj(
            ["items"], {"items": {"type": "array", "items": _ref("Subscription")}}
        ),
        "SubscriptionCreate": _obj(
            ["name", "url"],
            {
                "name": _SUB_NAME,
                "url": _URL,
                "events": {"type": "array", "items": _FILTER, "minItems": 1, "maxItems": 64},
                "secret": {**_SECRET, "description": "Generated when omitted; shown once."},
                "enabled": {"type": "boolean"},
            },
            additionalProperties=False,
        ),
        "SubscriptionPatch": _obj(
            [],
            {
                "url": {**_URL, "type": ["string", "null"]},
                "events": {
                    "type": ["array", "null"],
                    "items": _FILTER,
                    "minItems": 1,
                    "maxItems": 64,
                },
                "enabled": {"type": ["boolean", "null"]},
                "secret": {
                    **_SECRET,
                    "type": ["string", "null"],
                    "description": "Rotate to this secret; the previous one keeps signing "
                    "for grace_period_s.",
                },
                "grace_period_s": {"type": "integer", "minimum": 0, "maximum": 7 * 86400},
            },
            additionalProperties=False,
        ),
        "RecoverRequest": _obj(
            ["since"],
            {"since": _SINCE, "dry_run": {"type": "boolean"}},
            additionalProperties=False,
        ),
        "RecoverResult": _obj(
            ["subscription", "since", "dry_run", "count"],
            {
                "subscription": _STR,
                "since": _TIME,
                "dry_run": {"type": "boolean"},
                "count": {"type": "integer", "minimum": 0},
            },
        ),
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    found = {str(s): _json("Error", "An error; see error.code.") for s in statuses}
    for status in (401, 500, 503):
        found[str(status)] = _json("Error", "An error; see error.code.")
    return found


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _body(schema: str, *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


_PAGING = [
    _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size (50)."),
    _q(
        "cursor",
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"},
        "next_cursor of the previous page.",
    ),
    _q("since", _SINCE, "Created at or after this time (or an age: 6h)."),
    _q("until", _SINCE, "Created before this time (or an age: 6h)."),
]
_TEXT = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^\\u0000]+$"}


def _paths() -> dict[str, Any]:
    return {
        "/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "Events, newest first",
                "parameters": [
                    _q("order_id", _TEXT, "The merchant order id (out_trade_no)."),
                    _q("type", _FILTER, "An event type, 'prefix.*' or '*'."),
                    _q("channel", {**_TEXT, "maxLength": 64}, "The channel name."),
                    *_PAGING,
                ],
                "responses": {"200": _json("EventPage", "A page of events."), **_errors(400)},
            }
        },
        "/events/{id}": {
            "get": {
                "operationId": "getEvent",
                "summary": "One event with its deliveries",
                "parameters": [_path("id", _EVENT_ID)],
                "responses": {
                    "200": _json("EventWithDeliveries", "The event."),
                    **_errors(400, 404),
                },
            }
        },
        "/events/{id}/replay": {
            "post": {
                "operationId": "replayEvent",
                "summary": "Send the event again (same event id) as new deliveries",
                "parameters": [_path("id", _EVENT_ID)],
                "requestBody": _body("ReplayRequest", required=False),
                "responses": {
                    "202": _json("ReplayResult", "The new deliveries."),
                    **_errors(400, 404, 413, 422),
                },
            }
        },
        "/deliveries": {
            "get": {
                "operationId": "listDeliveries",
                "summary": "Deliveries with their attempts, newest first",
                "parameters": [
                    _q("status", {"type": "string", "enum": list(DELIVERY_STATUSES)}, "State."),
                    _q("subscription", _TEXT, "Subscription name."),
                    _q("event_id", {**_TEXT, "maxLength": 32}, "Only this event's deliveries."),
                    _q("order_id", _TEXT, "Only deliveries of this order's events."),
                    *_PAGING,
                ],
                "responses": {
                    "200": _json("DeliveryPage", "A page of deliveries."),
                    **_errors(400),
                },
            }
        },
        "/deliveries/{id}": {
            "get": {
                "operationId": "getDelivery",
                "summary": "One delivery with its attempts",
                "parameters": [_path("id", _DELIVERY_ID)],
                "responses": {"200": _json("Delivery", "The delivery."), **_errors(400, 404)},
            }
        },
        "/deliveries/{id}/retry": {
            "post": {
                "operationId": "retryDelivery",
                "summary": "Re-queue one delivery now (also dead or succeeded ones)",
                "parameters": [_path("id", _DELIVERY_ID)],
                "responses": {
                    "202": _json("Delivery", "The re-queued delivery."),
                    **_errors(400, 404, 409, 413, 422),
                },
            }
        },
        "/subscriptions": {
            "get": {
                "operationId": "listSubscriptions",
                "summary": "Every subscription (secrets masked)",
                "responses": {"200": _json("SubscriptionList", "Subscriptions."), **_errors(400)},
            },
            "post": {
                "operationId": "createSubscription",
                "summary": "Create a subscription; the answer shows its secret, once",
                "requestBody": _body("SubscriptionCreate", required=True),
                "responses": {
                    "201": _json("Subscription", "Created; 'secret' holds the secret."),
                    **_errors(400, 409, 413, 422),
                },
            },
        },
        "/subscriptions/{name}": {
            "parameters": [_path("name", _SUB_NAME)],
            "get": {
                "operationId": "getSubscription",
                "summary": "One subscription (secret masked)",
                "responses": {
                    "200": _json("Subscription", "The subscription."),
                    **_errors(400, 404),
                },
            },
            "patch": {
                "operationId": "updateSubscription",
                "summary": "Enable/disable, change URL or filters, rotate the secret",
                "requestBody": _body("SubscriptionPatch", required=True),
                "responses": {
                    "200": _json("Subscription", "The subscription (secret masked)."),
                    **_errors(400, 404, 409, 413, 422),
                },
            },
            "delete": {
                "operationId": "deleteSubscription",
                "summary": "Delete a subscription with its deliveries",
                "responses": {"204": {"description": "Deleted."}, **_errors(404, 409)},
            },
        },
        "/subscriptions/{name}/recover": {
            "post": {
                "operationId": "recoverSubscription",
                "summary": "Re-queue every dead delivery of the subscription since a time",
                "parameters": [_path("name", _SUB_NAME)],
                "requestBody": _body("RecoverRequest", required=True),
                "responses": {
                    "200": _json("RecoverResult", "How many were (or would be) re-queued."),
                    **_errors(400, 404, 413, 422),
                },
            }
        },
    }


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "payhook admin API",
        "version": __version__,
        "description": "Inspect and re-publish events, retry deliveries and manage "
        "subscriptions. Every request needs 'Authorization: Bearer <admin_token>'. Errors are "
        '{"error": {"code": ..., "message": ...}} with a stable code.',
    },
    "security": [{"bearerAuth": []}],
    "paths": _paths(),
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": _schemas(),
    },
}


def openapi_document(server_url: str = "/admin") -> dict[str, Any]:
    """A copy of the admin API's OpenAPI 3.1 document.

    Args:
        server_url: where the admin app is mounted (``/admin``, or e.g. ``/payments/admin``
            inside a host app); paths are relative to it.
    """
    document = copy.deepcopy(_DOCUMENT)
    document["servers"] = [{"url": server_url or "/admin"}]
    # data.provider comes from the provider registry, read now: providers registered after
    # import are listed too.
    for name in ("Event", "EventWithDeliveries"):
        data = document["components"]["schemas"][name]["properties"]["data"]
        data["properties"]["provider"] = _provider()
    return document
