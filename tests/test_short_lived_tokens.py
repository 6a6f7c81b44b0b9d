"""Issue 11, item 17: a token whose lifetime is at most `refresh_margin` must not cost a token
request per call. The margin is capped at a third of the token's lifetime, so a token is never
refreshed in the first two thirds of its life and any lifetime costs about one request per
lifetime; the SmartEM drop-in's `refresh_buffer_seconds` (which is `refresh_margin`) inherits it.

Over real HTTP against the DevIdP's short-lived clients; the spread-out runs move tokenward's
clock forward instead of waiting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tokenward as tw
from _helpers import claims_of
from tokenward import smartem
from tokenward.testing import DevIdP

SECRET = "short-lived-secret-41d0"
Clock = Callable[[float], None]
CALLS = 200


def client_for(idp: DevIdP, lifetime: int, **settings: float) -> tw.TokenClient:
    idp.add_client(f"short-{lifetime}", secret=SECRET, token_lifetime=lifetime)
    return tw.TokenClient(
        idp.token_url, client_id=f"short-{lifetime}", client_secret=SECRET, timeout=2, **settings
    )


def smartem_client_for(idp: DevIdP, lifetime: int) -> smartem.KeycloakClient:
    idp.add_client(f"short-{lifetime}", secret=SECRET, token_lifetime=lifetime)
    config = smartem.KeycloakConfig(idp.base_url, idp.realm, f"short-{lifetime}", SECRET)
    return smartem.KeycloakClient(config, refresh_buffer_seconds=30, timeout=2)


@pytest.mark.parametrize("lifetime", [15, 30, 31])
def test_a_burst_of_calls_costs_one_request_whatever_the_lifetime(
    dev_idp: DevIdP, lifetime: int
) -> None:
    client = client_for(dev_idp, lifetime)  # the default 30 s margin
    tokens = {client.get_token() for _ in range(CALLS)}
    assert len(tokens) == 1
    assert dev_idp.hits["token"] == 1
    claims = claims_of(tokens.pop())
    assert claims["exp"] - claims["iat"] == lifetime


def test_the_smartem_client_inherits_the_cap(dev_idp: DevIdP) -> None:
    client = smartem_client_for(dev_idp, 15)
    tokens = {client.get_token() for _ in range(CALLS)}
    assert len(tokens) == 1
    assert dev_idp.hits["token"] == 1


def _spread(get_token: Callable[[], str], clock: Clock, seconds: float) -> list[str]:
    """CALLS calls spread evenly over `seconds` of tokenward's clock."""
    tokens = []
    for _ in range(CALLS):
        tokens.append(get_token())
        clock(seconds / CALLS)
    return tokens


@pytest.mark.parametrize("lifetime", [15, 30, 31])
def test_spread_over_four_lifetimes_about_one_request_per_lifetime(
    dev_idp: DevIdP, clock: Clock, lifetime: int
) -> None:
    client = client_for(dev_idp, lifetime)
    tokens = _spread(client.get_token, clock, 4 * lifetime)
    # Each token serves its first two thirds: a new one every 2/3 of a lifetime, never sooner.
    requests = dev_idp.hits["token"]
    assert requests == len(set(tokens))
    assert 4 <= requests <= 4 * 3 / 2 + 1, requests
    # Never replaced before two thirds of its life (the call pacing is 1/50 of a lifetime).
    runs = [t for i, t in enumerate(tokens) if i == 0 or tokens[i - 1] != t]
    assert runs == list(dict.fromkeys(tokens)), "each token is used for one stretch"
    for token in runs[:-1]:
        uses = tokens.count(token)
        assert uses >= CALLS / 4 * 2 / 3 - 1, (uses, lifetime)


def test_spread_through_the_smartem_client(dev_idp: DevIdP, clock: Clock) -> None:
    client = smartem_client_for(dev_idp, 15)
    _spread(client.get_token, clock, 60)
    assert 4 <= dev_idp.hits["token"] <= 7


def test_a_margin_shorter_than_a_third_is_kept(dev_idp: DevIdP, clock: Clock) -> None:
    client = client_for(dev_idp, 300, refresh_margin=30)
    first = client.get_token()
    clock(269)  # 31 s left: past the last third, so refreshed ahead, but still handed out
    assert client.get_token() == first
    assert dev_idp.hits.wait_for("token", 2)
    clock(2)  # 29 s left of the first token: inside the 30 s margin
    assert client.get_token() != first
