"""Memory and scale (issue 15, item 8), in a process of its own so its RSS is its own:

- RSS per 10,000 cached tokens (the verified-token cache filled with distinct tokens);
- RSS through a flood of distinct valid tokens (default 1,000,000) with cache_size=10000;
- parse and verify time with a JWKS of 5,000 keys, against a one-key set;
- the cost of `Verifier.health()` and of a Prometheus scrape (`tokenward.prometheus`).

    python benches/python/scale.py [--flood N] [--out DIR]     (make bench runs it)

Tokens are EdDSA (the cheapest to sign and to check), each with its own jti, signed in batches
that are verified and dropped, so the flood holds one batch of tokens at a time. Writes
DIR/scale.json and DIR/scale.md. Nothing here fails on a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

import tokenward as tw
from tokenward._native import _review_jwks
from tokenward.prometheus import register
from tokenward.testing import DevIdP

BATCH = 10_000
MIB = 1024 * 1024


def rss() -> int:
    """Resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Minter:
    """Distinct valid EdDSA tokens: one claims template, a counter in `jti`."""

    def __init__(self, idp: DevIdP) -> None:
        self.key = idp.signing_key(idp.add_key("EdDSA"))
        claims = idp.make_claims(expires_in=3600)
        claims["jti"] = "@@"
        self.prefix, self.suffix = json.dumps(claims, separators=(",", ":")).split('"@@"')
        self.n = 0

    def batch(self, size: int) -> list[str]:
        out = []
        for _ in range(size):
            self.n += 1
            out.append(self.key.sign(f'{self.prefix}"t{self.n}"{self.suffix}'))
        return out


def cached_rss(idp: DevIdP, minter: Minter) -> dict[str, Any]:
    """The RSS growth of verifying BATCH distinct tokens with the cache on, after the same with
    it off (which also grows Python's own arenas for the claims dicts, so the second figure is
    the cache's)."""
    out: dict[str, Any] = {"tokens": BATCH}
    for label, size in (("rss_delta_uncached_mib", 0), ("rss_delta_mib", BATCH)):
        verifier = tw.Verifier(idp.issuer, cache_size=size)
        verifier.refresh_keys()
        tokens = minter.batch(BATCH)
        verifier.verify(minter.batch(1)[0])
        before = rss()
        for token in tokens:
            verifier.verify(token)
        out[label] = (rss() - before) / MIB
        del tokens
    return out


def flood(idp: DevIdP, minter: Minter, total: int) -> dict[str, Any]:
    verifier = tw.Verifier(idp.issuer, cache_size=BATCH)
    verifier.refresh_keys()
    samples: list[tuple[int, float]] = [(0, rss() / MIB)]
    started = time.perf_counter()
    done = 0
    while done < total:
        size = min(BATCH, total - done)
        for token in minter.batch(size):
            verifier.verify(token)
        done += size
        if done % (BATCH * 10) == 0 or done == total:
            samples.append((done, rss() / MIB))
    seconds = time.perf_counter() - started
    stats = verifier.stats()
    after_fill = [mib for n, mib in samples if n >= BATCH * 10]
    return {
        "tokens": total,
        "cache_size": BATCH,
        "seconds": seconds,
        "verified": stats["verified"],
        "cache_hits": stats["cache_hits"],
        "rss_start_mib": samples[0][1],
        "rss_peak_mib": max(mib for _, mib in samples),
        "rss_end_mib": samples[-1][1],
        "rss_spread_after_100k_mib": max(after_fill) - min(after_fill) if after_fill else 0.0,
        "samples": samples,
    }


def best_of(fn: Any, repeat: int = 7, number: int = 1) -> float:
    """The best time of `repeat` runs of `number` calls, per call, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return min(times)


def big_jwks(idp: DevIdP, keys: int) -> dict[str, Any]:
    """Parse and verify with `keys` published keys, against the one-key set."""
    rsa = idp.signing_key()
    public = rsa.public_jwk()
    # One RSA-2048 key's material under `keys` kids: the parse cost of a real RSA set without
    # generating thousands of keys; the token's key is the last one.
    idp.extra_jwks.extend(dict(public, kid=f"bulk-{i}") for i in range(keys - 1))
    body = json.dumps(idp.jwks()).encode()
    out: dict[str, Any] = {"keys": keys, "jwks_bytes": len(body)}
    out["core_parse_ms"] = best_of(lambda: _review_jwks(body), repeat=5) * 1000
    big = tw.Verifier(idp.issuer, max_response_bytes=64 * MIB, cache_size=0)
    out["refresh_ms"] = best_of(big.refresh_keys, repeat=5) * 1000
    out["health_keys"] = big.health()["keys"]
    idp.extra_jwks.clear()
    small_body = json.dumps(idp.jwks()).encode()
    out["core_parse_ms_small"] = best_of(lambda: _review_jwks(small_body), repeat=5) * 1000
    small = tw.Verifier(idp.issuer, cache_size=0)
    small.refresh_keys()
    out["refresh_ms_small"] = best_of(small.refresh_keys, repeat=5) * 1000
    token = idp.mint(expires_in=3600)
    idp.extra_jwks.extend(dict(public, kid=f"bulk-{i}") for i in range(keys - 1))
    big.refresh_keys()
    idp.extra_jwks.clear()
    out["verify_us"] = best_of(lambda: big.verify(token), repeat=7, number=200) * 1e6
    out["verify_us_small"] = best_of(lambda: small.verify(token), repeat=7, number=200) * 1e6
    return out


def probes(idp: DevIdP) -> dict[str, Any]:
    idp.add_client("scale-agent", "scale-secret")
    verifier = tw.Verifier(idp.issuer)
    verifier.refresh_keys()
    client = tw.TokenClient(
        issuer=idp.issuer, client_id="scale-agent", client_secret="scale-secret"
    )
    client.get_token()
    registry = CollectorRegistry()
    register(verifier=verifier, token_client=client, registry=registry)
    return {
        "verifier_health_us": best_of(verifier.health, number=10_000) * 1e6,
        "token_client_health_us": best_of(client.health, number=10_000) * 1e6,
        "scrape_us": best_of(lambda: generate_latest(registry), number=200) * 1e6,
        "scrape_bytes": len(generate_latest(registry)),
    }


def markdown(r: dict[str, Any]) -> str:
    c, f, j, p = r["cached"], r["flood"], r["jwks"], r["probes"]
    return "\n".join(
        [
            "| Figure | Value |",
            "|---|---|",
            f"| RSS per {c['tokens']:,} cached tokens | {c['rss_delta_mib']:.1f} MiB "
            f"(the same {c['tokens']:,} verified uncached: {c['rss_delta_uncached_mib']:.1f} MiB) |",
            f"| Flood: distinct valid tokens (cache_size={f['cache_size']:,}) | "
            f"{f['tokens']:,} in {f['seconds']:.0f} s |",
            f"| Flood: RSS start / peak / end | {f['rss_start_mib']:.1f} / "
            f"{f['rss_peak_mib']:.1f} / {f['rss_end_mib']:.1f} MiB |",
            f"| Flood: RSS spread after the first 100,000 | "
            f"{f['rss_spread_after_100k_mib']:.1f} MiB |",
            f"| JWKS of {j['keys']:,} RSA keys ({j['jwks_bytes'] / MIB:.1f} MiB): core parse | "
            f"{j['core_parse_ms']:.1f} ms (1 key: {j['core_parse_ms_small']:.3f} ms) |",
            f"| ... fetch and parse (`refresh_keys`, DevIdP on 127.0.0.1) | "
            f"{j['refresh_ms']:.1f} ms (1 key: {j['refresh_ms_small']:.2f} ms) |",
            f"| ... verify RS256, uncached (cache_size=0) | {j['verify_us']:.1f} µs "
            f"(1 key: {j['verify_us_small']:.1f} µs) |",
            f"| `Verifier.health()` | {p['verifier_health_us']:.2f} µs |",
            f"| `TokenClient.health()` | {p['token_client_health_us']:.2f} µs |",
            f"| Prometheus scrape (`generate_latest`, 1 verifier + 1 client, "
            f"{p['scrape_bytes']:,} bytes) | {p['scrape_us']:.0f} µs |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=1_000_000)
    parser.add_argument("--jwks-keys", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with DevIdP(realm="dls") as idp:
        minter = Minter(idp)
        print("scale: cached tokens ...", flush=True)
        results["cached"] = cached_rss(idp, minter)
        print(f"scale: flood of {args.flood:,} ...", flush=True)
        results["flood"] = flood(idp, minter, args.flood)
        print(f"scale: JWKS of {args.jwks_keys:,} keys ...", flush=True)
        results["jwks"] = big_jwks(idp, args.jwks_keys)
        print("scale: health() and a scrape ...", flush=True)
        results["probes"] = probes(idp)
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (args.out / "scale.md").write_text(table + "\n")
    print(table)
    print(
        f"median flood sample: {statistics.median(m for _, m in results['flood']['samples']):.1f} MiB"
    )


if __name__ == "__main__":
    main()
