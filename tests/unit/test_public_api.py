"""The public surface, pinned: ``payhook.__all__`` and what each subpackage exports.

A change here is an API change: update the list on purpose, and say so in CHANGELOG.md.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC: dict[str, frozenset[str]] = {
    "payhook": frozenset({"PayHook", "__version__"}),
    "payhook.errors": frozenset(
        {
            "BodyTooLargeError",
            "ConfigurationError",
            "ConflictError",
            "DecryptionError",
            "DeliveryInFlightError",
            "DeliveryNotFoundError",
            "EventNotFoundError",
            "InvalidBodyError",
            "InvalidCursorError",
            "InvalidEventsError",
            "InvalidJsonError",
            "InvalidNameError",
            "InvalidRequestError",
            "InvalidSecretError",
            "InvalidSubscriptionError",
            "InvalidUrlError",
            "NotFoundError",
            "NotificationError",
            "PayhookError",
            "RefusedError",
            "RefusedTargetError",
            "RequestError",
            "SignatureError",
            "SignatureProbeError",
            "StorageError",
            "StorageUnavailableError",
            "SubscriptionExistsError",
            "SubscriptionIsHandlerError",
            "SubscriptionManagedByConfigError",
            "SubscriptionNotFoundError",
            "TimestampError",
            "VerificationError",
            "WeakSecretError",
        }
    ),
    "payhook.events": frozenset(
        {
            "BEIJING",
            "Event",
            "EventData",
            "EventDraft",
            "EventType",
            "Handler",
            "filter_matches",
            "format_amount",
            "new_id",
            "parse_amount",
            "parse_beijing",
            "parse_fen",
            "parse_rfc3339",
            "render_event",
            "to_rfc3339",
            "validate_filter",
        }
    ),
    "payhook.signing": frozenset(
        {
            "AEAD_AES_256_GCM",
            "RsaDigest",
            "aead_aes_gcm_decrypt",
            "aead_aes_gcm_encrypt",
            "generate_secret",
            "key_fingerprint",
            "load_certificates",
            "load_rsa_private_key",
            "load_rsa_public_key",
            "parse_secret",
            "public_key_of_certificate",
            "rsa_sign",
            "rsa_verify",
            "secret_fingerprint",
            "sign",
        }
    ),
    "payhook.providers": frozenset(
        {
            "BackgroundTask",
            "CertificateStore",
            "ChannelRuntime",
            "ChannelSettings",
            "KeyFinding",
            "KeySlot",
            "Outcome",
            "ParsedNotification",
            "Provider",
            "ProviderContext",
            "ProviderSpec",
            "RawNotification",
            "Reply",
            "SimulatedCallback",
            "Simulator",
            "StoredCertificate",
            "build_channel",
            "build_provider",
            "build_simulator",
            "check_channel",
            "event_providers",
            "key_findings",
            "key_summary",
            "provider_kinds",
            "provider_spec",
            "register_provider",
            "simulated_events",
            "unregister_provider",
        }
    ),
    "payhook.storage": frozenset(
        {
            "AttemptView",
            "ClaimedDelivery",
            "Completion",
            "DEFAULT_GRACE_S",
            "DeliveryGauges",
            "DeliveryView",
            "EventView",
            "IntakeRecord",
            "IntakeResult",
            "MAX_LIMIT",
            "OutboxSignal",
            "Page",
            "PlatformCertificateTable",
            "PruneReport",
            "RETENTION_TABLES",
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
        }
    ),
    "payhook.dispatch": frozenset(
        {
            "DEFAULT_RETRY_SCHEDULE_S",
            "Dispatcher",
            "ErrorClass",
            "Handler",
            "Outcome",
            "RetryPolicy",
            "SINKS",
            "Sink",
            "SinkContext",
            "SinkFactory",
            "USER_AGENT",
            "build_headers",
        }
    ),
    "payhook.dispatch.sinks": frozenset(
        {
            "ErrorClass",
            "Handler",
            "HandlerSink",
            "HttpSink",
            "Outcome",
            "SINKS",
            "Sink",
            "SinkContext",
            "SinkFactory",
        }
    ),
    "payhook.asgi": frozenset({"InboundEndpoint", "create_admin_app", "create_app"}),
    "payhook.operations": frozenset(
        {
            "AGE_PATTERN",
            "AttemptView",
            "DEFAULT_GRACE_S",
            "DELIVERY_STATUSES",
            "DeliveryGauges",
            "DeliveryView",
            "EventView",
            "MAX_LIMIT",
            "Operations",
            "Page",
            "Progress",
            "PruneReport",
            "RETENTION_TABLES",
            "Recovery",
            "RetentionWindows",
            "SECRET_MASK",
            "Subscription",
            "SubscriptionSpec",
            "check_editable",
            "database_report",
            "parse_cursor",
            "parse_status",
            "parse_time",
            "probe_database",
            "subscription_json",
            "upgrade_database",
        }
    ),
    "payhook.config": frozenset(
        {
            "DEFAULT_CONFIG_PATH",
            "DEFAULT_RETRY_SCHEDULE",
            "DispatcherSettings",
            "PayhookSettings",
            "RetentionSettings",
            "SubscriptionSettings",
            "config_path",
            "load_settings",
            "parse_duration",
        }
    ),
    "payhook.testing": frozenset({"FakeClock"}),
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_exports_are_pinned(module: str) -> None:
    exported = importlib.import_module(module).__all__
    assert set(exported) == PUBLIC[module]
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_exported_name_exists(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []


def test_the_embedding_names_of_the_contract() -> None:
    # contract §8: PayHook, PayHook.from_config, .on, .app, .lifespan are binding.
    from payhook import PayHook

    for attribute in ("from_config", "on", "app", "lifespan"):
        assert hasattr(PayHook, attribute), attribute
