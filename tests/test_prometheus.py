"""`tokenward.prometheus`: the collector mounted in a FastAPI app served by uvicorn, scraped over
real HTTP and parsed with prometheus_client's own parser, before and after real traffic."""

import time
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import tokenward as tw
from _uvicorn import serve
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry, generate_latest, make_asgi_app
from prometheus_client.parser import text_string_to_metric_families
from tokenward.fastapi import Authenticator
from tokenward.prometheus import register
from tokenward.testing import DevIdP

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics/")
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def app_url(dev_idp: DevIdP) -> Iterator[tuple[str, tw.Verifier, tw.TokenClient]]:
    dev_idp.add_client("metrics-agent", "s3cret")
    verifier = tw.Verifier(dev_idp.issuer, audience="smartem", cache_size=100)
    client = tw.TokenClient(
        issuer=dev_idp.issuer, client_id="metrics-agent", client_secret="s3cret"
    )
    registry = CollectorRegistry()
    register(verifier=verifier, token_client=client, registry=registry)
    auth = Authenticator(verifier)
    app = FastAPI()
    app.mount("/metrics", make_asgi_app(registry=registry))

    @app.get("/me")
    async def me(claims: Annotated[dict[str, Any], Depends(auth.claims)]) -> dict[str, Any]:
        return {"sub": claims["sub"]}

    with serve(app) as url:
        yield url, verifier, client


def test_verifications_and_key_fetches_show_in_a_scrape(
    dev_idp: DevIdP, app_url: tuple[str, tw.Verifier, tw.TokenClient]
) -> None:
    url, verifier, _ = app_url
    iss = {"issuer": dev_idp.issuer}
    before = scrape(url)
    assert value(before, "tokenward_verifier_ready", **iss) == 0
    assert value(before, "tokenward_jwks_fetches_total", result="ok", **iss) == 0
    assert value(before, "tokenward_verifications_total", outcome="accepted", **iss) == 0

    good = dev_idp.mint(aud="smartem")
    for token in (good, good, dev_idp.mint(aud="smartem")):
        assert httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"}).is_success
    for token in (dev_idp.mint(aud="smartem", expires_in=-300), dev_idp.mint(aud="other")):
        answer = httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401

    after = scrape(url)
    assert value(after, "tokenward_verifier_ready", **iss) == 1
    assert value(after, "tokenward_jwks_keys", **iss) == 1
    assert value(after, "tokenward_jwks_fetches_total", result="ok", **iss) == 1
    assert value(after, "tokenward_jwks_fetches_total", result="error", **iss) == 0
    assert value(after, "tokenward_verifications_total", outcome="accepted", **iss) == 3
    assert value(after, "tokenward_verifications_total", outcome="rejected", **iss) == 2
    assert value(after, "tokenward_verified_cache_hits_total", **iss) == 1
    for code, count in (("expired", 1), ("bad_audience", 1), ("bad_signature", 0)):
        got = value(after, "tokenward_verification_rejections_total", code=code, **iss)
        assert got == count, code
    age = value(after, "tokenward_jwks_key_set_age_seconds", **iss)
    assert age is not None and 0 <= age < 60
    assert value(after, "tokenward_jwks_stale", **iss) == 0
    assert verifier.stats()["verified"] == 3  # the metrics are the stats, read at scrape time


def test_token_client_requests_and_invalidations_show_in_a_scrape(
    dev_idp: DevIdP, app_url: tuple[str, tw.Verifier, tw.TokenClient]
) -> None:
    url, _, client = app_url
    cid = {"client_id": "metrics-agent"}
    before = scrape(url)
    assert value(before, "tokenward_token_ready", **cid) == 0
    assert value(before, "tokenward_token_requests_total", result="ok", **cid) == 0
    token = client.get_token()
    client.get_token()
    assert client.invalidate(token)  # what BearerAuth does on a 401
    client.get_token()
    after = scrape(url)
    assert value(after, "tokenward_token_requests_total", result="ok", **cid) == 2
    assert value(after, "tokenward_token_cache_hits_total", **cid) == 1
    assert value(after, "tokenward_token_invalidations_total", **cid) == 1
    assert value(after, "tokenward_token_ready", **cid) == 1
    expires_in = value(after, "tokenward_token_expires_in_seconds", **cid)
    assert expires_in is not None and 0 < expires_in <= 300
    dev_idp.set_fault("token", "500")
    client.invalidate()
    with pytest.raises(tw.TokenRequestError):
        client.get_token()
    failed = scrape(url)
    assert (value(failed, "tokenward_token_requests_total", result="error", **cid) or 0) >= 1


def test_registering_twice_in_one_registry_is_refused(dev_idp: DevIdP) -> None:
    registry = CollectorRegistry()
    verifier = tw.Verifier(dev_idp.issuer)
    register(verifier=verifier, registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        register(verifier=verifier, registry=registry)


def test_tokenward_metrics_is_the_same_module() -> None:
    import tokenward.metrics
    import tokenward.prometheus

    assert tokenward.metrics.register is tokenward.prometheus.register


def test_report_only_acceptances_are_counted(dev_idp: DevIdP) -> None:
    registry = CollectorRegistry()
    verifier = tw.Verifier(dev_idp.issuer, audience="smartem", report_only=("audience",))
    register(verifier=verifier, registry=registry)
    verifier.verify(dev_idp.mint(aud="another-service"))
    families = text_string_to_metric_families(generate_latest(registry).decode())
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    assert value(samples, "tokenward_report_only_accepted_total", issuer=dev_idp.issuer) == 1


def test_revocations_show_in_a_scrape_and_redis_loss_is_visible(
    dev_idp: DevIdP, redis_server: Any
) -> None:
    verifier = tw.Verifier(dev_idp.issuer, revocations=redis_server.url, http_timeout=2.0)
    registry = CollectorRegistry()
    register(verifier=verifier, registry=registry)
    app = FastAPI()
    app.mount("/metrics", make_asgi_app(registry=registry))
    iss = {"issuer": dev_idp.issuer}
    token = dev_idp.mint(sid="s1")
    with serve(app) as url:
        deadline = time.monotonic() + 15
        while value(scrape(url), "tokenward_revocations_redis_connected", **iss) != 1:
            assert time.monotonic() < deadline, "never connected"
            time.sleep(0.02)
        verifier.revoke(sid="s1")
        with pytest.raises(tw.InvalidToken):
            verifier.verify(token)
        after = scrape(url)
        assert value(after, "tokenward_revocations", **iss) == 1
        assert value(after, "tokenward_verification_rejections_total", code="revoked", **iss) == 1
        redis_server.stop()
        while value(scrape(url), "tokenward_revocations_redis_connected", **iss) != 0:
            assert time.monotonic() < deadline + 15, "the loss never showed"
            time.sleep(0.02)
        verifier.revoke(sid="s2")
        assert value(scrape(url), "tokenward_revocations_pending", **iss) == 1
