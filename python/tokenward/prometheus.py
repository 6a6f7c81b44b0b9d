"""Prometheus metrics (the `tokenward[prometheus]` extra): a collector that reads `stats()` and
`health()` of verifiers and token clients when Prometheus scrapes, so the hot path pays only
the core's relaxed counter increments. README.md, "Running in production", "Metrics".

    from tokenward.prometheus import register
    register(verifier=verifier, token_client=client)   # into prometheus_client's REGISTRY
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

if TYPE_CHECKING:
    from ._native import TokenClient, Verifier

__all__ = ["TokenwardCollector", "register"]

_REJECTED_PREFIX = "rejected_"

_Family = CounterMetricFamily | GaugeMetricFamily

#: (key, counter or gauge, name after `tokenward_`, help, labels). A counter's samples get
#: prometheus_client's `_total` suffix.
_FAMILIES: tuple[tuple[str, type[_Family], str, str, tuple[str, ...]], ...] = (
    # Verifiers, labelled by issuer.
    (
        "fetches",
        CounterMetricFamily,
        "jwks_fetches",
        "Key-set requests, by result.",
        ("issuer", "result"),
    ),
    ("keys", GaugeMetricFamily, "jwks_keys", "Usable keys in the key set held.", ("issuer",)),
    ("age", GaugeMetricFamily, "jwks_key_set_age_seconds", "Age of the key set held.", ("issuer",)),
    (
        "stale",
        GaugeMetricFamily,
        "jwks_stale",
        "1 while keys past their TTL are served.",
        ("issuer",),
    ),
    (
        "stale_served",
        CounterMetricFamily,
        "jwks_stale_served",
        "Verifies served from a key set past its TTL.",
        ("issuer",),
    ),
    (
        "jwks_ahead",
        CounterMetricFamily,
        "jwks_refreshes_ahead",
        "Background key-set refreshes started.",
        ("issuer",),
    ),
    (
        "unknown_kid",
        CounterMetricFamily,
        "jwks_unknown_kid",
        "Tokens with an unknown kid, by handling (rejected at once, or waited for a refetch).",
        ("issuer", "handling"),
    ),
    ("ready", GaugeMetricFamily, "verifier_ready", "1 once a key set is loaded.", ("issuer",)),
    (
        "verifications",
        CounterMetricFamily,
        "verifications",
        "Tokens verified, by outcome.",
        ("issuer", "outcome"),
    ),
    (
        "codes",
        CounterMetricFamily,
        "verification_rejections",
        "Tokens rejected, by InvalidToken code.",
        ("issuer", "code"),
    ),
    (
        "hits",
        CounterMetricFamily,
        "verified_cache_hits",
        "Tokens accepted from the verified-token cache.",
        ("issuer",),
    ),
    (
        "report_only",
        CounterMetricFamily,
        "report_only_accepted",
        "Tokens accepted that failed only a report-only check (audience, issuer).",
        ("issuer",),
    ),
    (
        "revocations",
        GaugeMetricFamily,
        "revocations",
        "Revocation rules held (sessions, subjects, clients, token ids).",
        ("issuer",),
    ),
    (
        "revocations_connected",
        GaugeMetricFamily,
        "revocations_redis_connected",
        "1 while the Redis sharing revocations is reachable (only with revocations=redis://...).",
        ("issuer",),
    ),
    (
        "revocations_pending",
        GaugeMetricFamily,
        "revocations_pending",
        "Revocations made here that Redis has not had yet.",
        ("issuer",),
    ),
    # Token clients, labelled by client id.
    (
        "requests",
        CounterMetricFamily,
        "token_requests",
        "Token requests, by result.",
        ("client_id", "result"),
    ),
    (
        "token_hits",
        CounterMetricFamily,
        "token_cache_hits",
        "Tokens served from the cache.",
        ("client_id",),
    ),
    (
        "token_ahead",
        CounterMetricFamily,
        "token_refreshes_ahead",
        "Background token refreshes started.",
        ("client_id",),
    ),
    (
        "token_stale",
        CounterMetricFamily,
        "token_stale_served",
        "Still-valid tokens served because a refresh failed or is backing off.",
        ("client_id",),
    ),
    (
        "invalidations",
        CounterMetricFamily,
        "token_invalidations",
        "Cached tokens dropped by invalidate (BearerAuth does it on a 401).",
        ("client_id",),
    ),
    (
        "token_ready",
        GaugeMetricFamily,
        "token_ready",
        "1 while a valid token is held.",
        ("client_id",),
    ),
    (
        "expires_in",
        GaugeMetricFamily,
        "token_expires_in_seconds",
        "Seconds left on the token held.",
        ("client_id",),
    ),
)


def _new_families() -> dict[str, _Family]:
    return {
        key: kind(f"tokenward_{name}", doc, labels=list(labels))
        for key, kind, name, doc, labels in _FAMILIES
    }


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Sequence):
        return list(value)
    return [value]


class TokenwardCollector(Collector):
    """The `tokenward_*` metrics of some verifiers (labelled by `issuer`) and token clients
    (labelled by `client_id`), read at each scrape."""

    def __init__(
        self,
        verifiers: Iterable[Verifier] = (),
        token_clients: Iterable[TokenClient] = (),
    ) -> None:
        self._verifiers = list(verifiers)
        self._token_clients = list(token_clients)

    def describe(self) -> list[Metric]:
        # The same families as `collect`, empty: the registry checks names without a scrape.
        return list(_new_families().values())

    def collect(self) -> Iterator[Metric]:
        families = _new_families()
        for verifier in self._verifiers:
            self._add_verifier(families, verifier)
        for client in self._token_clients:
            self._add_token_client(families, client)
        yield from families.values()

    @staticmethod
    def _add_verifier(f: dict[str, _Family], verifier: Verifier) -> None:
        stats = verifier.stats()
        health = verifier.health()
        issuer = verifier.issuer
        fetches, errors = stats["jwks_fetches"], stats["jwks_errors"]
        f["fetches"].add_metric([issuer, "ok"], fetches - errors)
        f["fetches"].add_metric([issuer, "error"], errors)
        f["keys"].add_metric([issuer], health["keys"])
        if health["key_set_age"] is not None:
            f["age"].add_metric([issuer], health["key_set_age"])
        f["stale"].add_metric([issuer], 1 if health["stale"] else 0)
        f["stale_served"].add_metric([issuer], stats["stale_served"])
        f["jwks_ahead"].add_metric([issuer], stats["refreshes_ahead"])
        f["unknown_kid"].add_metric([issuer, "rejected"], stats["unknown_kid_rejected"])
        f["unknown_kid"].add_metric([issuer, "waited"], stats["unknown_kid_waited"])
        f["ready"].add_metric([issuer], 1 if health["ready"] else 0)
        f["verifications"].add_metric([issuer, "accepted"], stats["verified"])
        f["verifications"].add_metric([issuer, "rejected"], stats["rejected"])
        for name, value in stats.items():
            if name.startswith(_REJECTED_PREFIX):
                f["codes"].add_metric([issuer, name[len(_REJECTED_PREFIX) :]], value)
        f["hits"].add_metric([issuer], stats["cache_hits"])
        f["report_only"].add_metric([issuer], stats["report_only_accepted"])
        revocations = health["revocations"]
        f["revocations"].add_metric([issuer], revocations["entries"])
        f["revocations_pending"].add_metric([issuer], revocations["pending"])
        if revocations["shared"]:
            f["revocations_connected"].add_metric([issuer], 1 if revocations["connected"] else 0)

    @staticmethod
    def _add_token_client(f: dict[str, _Family], client: TokenClient) -> None:
        stats = client.stats()
        health = client.health()
        cid = client.client_id
        requests, errors = stats["token_requests"], stats["token_errors"]
        f["requests"].add_metric([cid, "ok"], requests - errors)
        f["requests"].add_metric([cid, "error"], errors)
        f["token_hits"].add_metric([cid], stats["cache_hits"])
        f["token_ahead"].add_metric([cid], stats["refreshes_ahead"])
        f["token_stale"].add_metric([cid], stats["stale_served"])
        f["invalidations"].add_metric([cid], stats["invalidations"])
        f["token_ready"].add_metric([cid], 1 if health["ready"] else 0)
        if health["expires_in"] is not None:
            f["expires_in"].add_metric([cid], health["expires_in"])


def register(
    verifier: Verifier | Sequence[Verifier] | None = None,
    token_client: TokenClient | Sequence[TokenClient] | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> TokenwardCollector:
    """Registers one collector for these verifiers and token clients (one or a sequence of
    each) in `registry` (default: prometheus_client's global REGISTRY), and returns it
    (`registry.unregister(collector)` undoes it). Register once per registry: all of a
    process's verifiers and clients go into the one call."""
    collector = TokenwardCollector(_many(verifier), _many(token_client))
    (REGISTRY if registry is None else registry).register(collector)
    return collector
