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
            "Deliveries waiting to be sent (pending or failed awaiting retry).",
            ["subscription"],
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "payhook_oldest_pending_delivery_age_seconds",
            "Age of the oldest delivery not yet sent: the best single alarm.",
            ["subscription"],
            registry=self.registry,
        )
        self.dead = Gauge(
            "payhook_deliveries_dead",
            "Deliveries that exhausted their retries.",
            ["subscription"],
            registry=self.registry,
        )
