"""SQLAlchemy Core storage: intake, events, subscriptions, outbox. All SQL lives here.

What other packages use is exported here: the :class:`Store`, the dispatcher's outbox verbs,
the certificate table handed to providers, and the operator's query modules (``queries``,
``requeue``, ``subscriptions``) and retention's ``prune`` behind :mod:`payhook.operations`.
"""

from __future__ import annotations

from payhook.storage import (
    _operator as queries,
    _requeue as requeue,
    _subscriptions as subscriptions,
)
from payhook.storage._certificates import PlatformCertificateTable
from payhook.storage._engine import create_engine, describe_database, missing_sqlite_file, probe
from payhook.storage._migrate import current_revision, head_revision, pending_revisions
from payhook.storage._operator import MAX_LIMIT, connection_problem
from payhook.storage._operator_views import (
    AttemptView,
    DeliveryGauges,
    DeliveryView,
    EventView,
    Page,
    Recovery,
    decode_cursor,
)
from payhook.storage._outbox import (
    ClaimedDelivery,
    Completion,
    claim_due,
    complete,
    next_due_at,
    release,
)
from payhook.storage._retention import RETENTION_TABLES, PruneReport, RetentionWindows, prune
from payhook.storage._signal import OutboxSignal
from payhook.storage._store import Store
from payhook.storage._subscription_model import Subscription, SubscriptionSpec, UpsertResult
from payhook.storage._subscriptions import DEFAULT_GRACE_S
from payhook.storage._txn import is_transient
from payhook.storage.intake import IntakeRecord, IntakeResult

__all__ = [
    "DEFAULT_GRACE_S",
    "MAX_LIMIT",
    "RETENTION_TABLES",
    "AttemptView",
    "ClaimedDelivery",
    "Completion",
    "DeliveryGauges",
    "DeliveryView",
    "EventView",
    "IntakeRecord",
    "IntakeResult",
    "OutboxSignal",
    "Page",
    "PlatformCertificateTable",
    "PruneReport",
    "Recovery",
    "RetentionWindows",
    "Store",
    "Subscription",
    "SubscriptionSpec",
    "UpsertResult",
    "claim_due",
    "complete",
    "connection_problem",
    "create_engine",
    "current_revision",
    "decode_cursor",
    "describe_database",
    "head_revision",
    "is_transient",
    "missing_sqlite_file",
    "next_due_at",
    "pending_revisions",
    "probe",
    "prune",
    "queries",
    "release",
    "requeue",
    "subscriptions",
]
