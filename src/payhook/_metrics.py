"""Prometheus metrics, one registry per PayHook so several instances (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """Every metric payhook exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = Counter(
            "payhook_callbacks",
            "Inbound provider callbacks by channel and outcome "
            "(accepted, duplicate, refused, error) and reason.",
            ["channel", "outcome", "reason"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "payhook_connections_refused",
            "Connections `payhook serve` answered 503 and closed at once because their "
            "remote address already held max_connections_per_address.",
            registry=self.registry,
        )
        self.audits_dropped = Counter(
            "payhook_refused_audits_dropped",
            "Refused-callback audit records not written, by channel and cause: rate (over "
            "the audit budget), queue_full, write_failed, shutdown.",
            ["channel", "cause"],
            registry=self.registry,
        )
        self.events = Counter(
            "payhook_events",
            "Canonical events stored, by type.",
            ["type"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "payhook_deliveries",
            "Delivery attempts by subscription and outcome.",
            ["subscription", "outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "payhook_delivery_latency_seconds",
            "Time from sending a delivery to the subscriber's answer.",
            ["subscription"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.pending = Gauge(
            "payhook_deliveries_pending",
            "Deliveries waiting to be sent (pending or failed awaiting retry) to an enabled "
            "subscription.",
            ["subscription"],
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "payhook_oldest_pending_delivery_age_seconds",
            "Age of the oldest delivery not yet sent to an enabled subscription: the best "
            "single alarm.",
            ["subscription"],
            registry=self.registry,
        )
        # A disabled subscription's deliveries wait on purpose (410, an operator paused it):
        # their own series, so pausing a subscriber does not page anyone.
        self.paused = Gauge(
            "payhook_deliveries_paused",
            "Deliveries waiting for a disabled (paused) subscription; sent after it is enabled.",
            ["subscription"],
            registry=self.registry,
        )
        self.oldest_paused_age = Gauge(
            "payhook_oldest_paused_delivery_age_seconds",
            "Age of the oldest delivery waiting for a disabled (paused) subscription.",
            ["subscription"],
            registry=self.registry,
        )
        self.dead = Gauge(
            "payhook_deliveries_dead",
            "Deliveries that exhausted their retries.",
            ["subscription"],
            registry=self.registry,
        )
        self.retention_pruned = Counter(
            "payhook_retention_pruned_rows",
            "Rows removed by retention ([retention], hourly in serve and worker), by table.",
            ["table"],
            registry=self.registry,
        )
        self.retention_failures = Counter(
            "payhook_retention_failures",
            "Hourly retention runs that failed (retried an hour later).",
            registry=self.registry,
        )
        self.retention_last_success = Gauge(
            "payhook_retention_last_success_timestamp_seconds",
            "When the last retention run finished without error (Unix time).",
            registry=self.registry,
        )
