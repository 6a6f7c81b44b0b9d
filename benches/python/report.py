"""The results as a markdown table, JSON and a PNG chart, with the targets of issue 6 judged on
ratios from the same run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import AUTHLIB, BY_HAND, NOOP, REQUESTS_AUTH, TW_HTTPX, TW_REQUESTS
from fixtures import ALGORITHMS
from load import PROTECTED
from micro import (
    FLOOR,
    GIL_FREE_REFERENCE,
    JOSERFC,
    PYJWKCLIENT,
    PYJWT,
    TW_CACHED,
    TW_CACHED_ASYNC,
    TW_UNCACHED,
)

VERIFY_ORDER = (FLOOR, PYJWT, PYJWKCLIENT, JOSERFC, TW_UNCACHED, TW_CACHED, TW_CACHED_ASYNC)
CLIENT_ORDER = (BY_HAND, TW_REQUESTS, TW_HTTPX, REQUESTS_AUTH, AUTHLIB)
MODE_LABELS = {
    "none": "no auth",
    "none-without-token": "no auth, requests without the token header",
    "noop-dependency": "no-op dependency (FastAPI's own cost)",
    "pyjwt": "PyJWT + PyJWKClient (SmartEM's dependency)",
    "tokenward": "tokenward.smartem.verify_token (drop-in)",
    "tokenward-fastapi": "tokenward.fastapi Authenticator.app_dependency",
    "tokenward-minimal": "minimal dependency: await Verifier.verify_async",
    "tokenward-middleware": "tokenward.middleware.BearerAuthMiddleware (app-wide)",
}


def _verify(results: dict[str, Any], name: str, alg: str) -> float | None:
    for row in results.get("verify", []):
        if row["name"] == name and row["variant"] == alg:
            return float(row["median_us"])
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 with the measured ratio and pass/miss (None: not measured)."""

    def v(name: str, alg: str = "RS256") -> float | None:
        return _verify(results, name, alg)

    out: list[dict[str, Any]] = []

    def add(what: str, goal: str, value: float | None, ok: Callable[[float], bool]) -> None:
        out.append(
            {
                "target": what,
                "goal": goal,
                "measured": value,
                "pass": None if value is None else bool(ok(value)),
            }
        )

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b

    add(
        "uncached RS256 verify / raw `cryptography` check",
        "<= 1.3x",
        ratio(v(TW_UNCACHED), v(FLOOR)),
        lambda x: x <= 1.3,
    )
    add(
        "PyJWT decode / uncached RS256 verify",
        ">= 2.5x",
        ratio(v(PYJWT), v(TW_UNCACHED)),
        lambda x: x >= 2.5,
    )
    add(
        "PyJWT decode / cached verify (RS256)",
        ">= 25x",
        ratio(v(PYJWT), v(TW_CACHED)),
        lambda x: x >= 25,
    )
    add(
        "uncached ES256 verify / raw `cryptography` check",
        "<= 1.3x",
        ratio(v(TW_UNCACHED, "ES256"), v(FLOOR, "ES256")),
        lambda x: x <= 1.3,
    )
    scaling = next(
        (t["scaling"] for t in results.get("threads", []) if t["name"] == TW_UNCACHED), None
    )
    add("two threads / one thread, uncached RS256", ">= 1.7x", scaling, lambda x: x >= 1.7)
    fastapi = results.get("fastapi", {})
    rows = {r["mode"]: r for r in fastapi.get("rows", [])} if fastapi.get("driver") == "wrk" else {}

    def kept(mode: str) -> float | None:
        return 100 * rows[mode]["of_none"] if mode in rows else None

    add(
        "FastAPI: BearerAuthMiddleware-protected / unprotected requests per second",
        ">= 90 %",
        kept(PROTECTED),
        lambda x: x >= 90,
    )
    add(
        "(for reference) the same with the SmartEM drop-in dependency",
        ">= 90 %",
        kept("tokenward"),
        lambda x: x >= 90,
    )
    bearer = next(
        (c["overhead_us"] for c in results.get("client", []) if c["name"] == TW_REQUESTS), None
    )
    add("BearerAuth per request, cached token (µs)", "<= 3 µs", bearer, lambda x: x <= 3)
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# tokenward benchmarks ({'smoke run' if meta['smoke'] else 'full run'})",
        "",
        (
            f"{meta['date']} · {meta['cpu']} · {meta['nproc']} cores · "
            f"Python {meta['python']} · load average {meta['load_before']} before, "
            f"{meta['load_after']} after · tokenward {meta['tokenward_build']}"
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
    ]
    if results.get("verify"):
        lines += [
            "## Verify one token (µs per call, median of rounds; lower is better)",
            "",
            "| | " + " | ".join(ALGORITHMS) + " |",
            "|---|" + "---:|" * len(ALGORITHMS),
        ]
        for name in VERIFY_ORDER:
            cells = [_verify(results, name, alg) for alg in ALGORITHMS]
            if any(c is not None for c in cells):
                lines.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
        lines += [
            "",
            (
                "Spread (p25–p75 across rounds) is in latest.json. The floor is "
                "`public_key.verify(...)` on the same key and bytes."
            ),
            "",
        ]
    reference = next(
        (t for t in results.get("threads", []) if t["name"] == GIL_FREE_REFERENCE), None
    )
    if reference is not None and reference["scaling"] < 1.7:
        lines += [
            (
                f"**The second core was busy during this run**: the GIL-free reference scaled "
                f"only {reference['scaling']:.2f}x on two threads. The two-thread and "
                "request-level figures below are not representative; run again when the "
                "machine is quiet."
            ),
            "",
        ]
    if results.get("threads"):
        lines += [
            "## One thread and two (RS256, verifies per second)",
            "",
            "| | 1 thread | 2 threads | scaling |",
            "|---|---:|---:|---:|",
        ]
        for t in results["threads"]:
            lines.append(
                f"| {t['name']} | {t['one_thread_ops']:,.0f} | {t['two_threads_ops']:,.0f} | "
                f"{t['scaling']:.2f}x |"
            )
        lines.append("")
    if results.get("asgi"):
        base = next(r["median_us"] for r in results["asgi"] if r["name"] == "none")
        lines += [
            "## FastAPI in-process (ASGI call, no network; µs per request)",
            "",
            "| | µs per request | added by auth |",
            "|---|---:|---:|",
        ]
        for r in results["asgi"]:
            lines.append(
                f"| {MODE_LABELS.get(r['name'], r['name'])} | {r['median_us']:.1f} | "
                f"{r['median_us'] - base:+.1f} |"
            )
        lines.append("")
    fastapi = results.get("fastapi")
    if fastapi:
        lines += [
            (
                f"## FastAPI under uvicorn (one worker, 127.0.0.1, {fastapi['driver']} with "
                f"{fastapi['connections']} connections, {fastapi['repeats']} × "
                f"{fastapi['seconds']:g} s per mode)"
            ),
            "",
            (
                "Each mode gets the same requests, token included. *Of no auth*: the median, "
                "over repeats, of the ratio to the unprotected run of the same repeat."
            ),
            "",
            "| | requests/s | of no auth | p50 ms | p90 ms | p99 ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        if fastapi["driver"] != "wrk":
            lines += [
                (
                    "wrk is not installed (`apt-get install -y wrk`): the async httpx driver "
                    "used instead is itself the bottleneck, so these figures compare nothing."
                ),
                "",
            ]
        for r in fastapi["rows"]:
            lines.append(
                f"| {MODE_LABELS.get(r['mode'], r['mode'])} | {r['rps']:,.0f} | "
                f"{100 * r['of_none']:.0f} % | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                f"{r['p99_ms']:.2f} |"
            )
        lines.append("")
    if results.get("client"):
        lines += [
            "## Client side: auth hook on a prepared request, token cached (µs per request)",
            "",
            "| | µs per call | added per request |",
            "|---|---:|---:|",
        ]
        rows = {c["name"]: c for c in results["client"]}
        for name in CLIENT_ORDER:
            if name in rows:
                c = rows[name]
                lines.append(f"| {name} | {c['median_us']:.2f} | {c['overhead_us']:.2f} |")
        noop = rows.get(NOOP)
        if noop:
            lines.append(f"\nA no-op hook's {noop['median_us']:.2f} µs is subtracted.")
        lines.append("")
    lines += ["## Targets (issue 6)", ""]
    if meta["smoke"]:
        lines += ["A smoke run (short, possibly a debug build): its figures judge nothing.", ""]
    lines += ["| target | goal | measured | |", "|---|---|---:|---|"]
    for t in targets(results):
        verdict = {True: "pass", False: "**miss**", None: "not measured"}[t["pass"]]
        if meta["smoke"]:
            verdict = "(smoke run)"
        unit = " %" if t["goal"].endswith("%") else " µs" if t["goal"].endswith("µs") else "x"
        lines.append(f"| {t['target']} | {t['goal']} | {_fmt(t['measured'])}{unit} | {verdict} |")
    lines.append("")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    ax = axes[0][0]
    names = [n for n in VERIFY_ORDER if any(_verify(results, n, a) for a in ALGORITHMS)]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(ALGORITHMS))]
        ys = [_verify(results, name, a) or 0 for a in ALGORITHMS]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ALGORITHMS))], ALGORITHMS)
    ax.set_yscale("log")
    ax.set_ylabel("µs per verify (log scale)")
    ax.set_title("Verify one token")
    if names:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)

    ax = axes[0][1]
    threads = results.get("threads", [])
    ax.bar([t["name"] for t in threads], [t["scaling"] for t in threads], color="tab:green")
    ax.axhline(1.7, color="red", linestyle="--", label="target 1.7x")
    ax.axhline(2.0, color="grey", linestyle=":", label="two cores")
    ax.set_ylabel("2-thread / 1-thread throughput")
    ax.set_title("Two threads (RS256)")
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    ax.legend(fontsize=7)

    ax = axes[1][0]
    rows = results.get("fastapi", {}).get("rows", [])
    # The paired ratio, as the target is judged (not the ratio of the modes' medians).
    ax.barh(
        [MODE_LABELS.get(r["mode"], r["mode"]) for r in rows], [100 * r["of_none"] for r in rows]
    )
    if rows:
        ax.axvline(90, color="red", linestyle="--", label="target 90 %")
        ax.legend(fontsize=7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("% of the unprotected requests per second (median of paired runs)")
    ax.set_title("FastAPI under uvicorn (one worker)")

    ax = axes[1][1]
    client = [c for c in results.get("client", []) if c["name"] != NOOP]
    ax.barh([c["name"] for c in client], [c["overhead_us"] for c in client], color="tab:purple")
    ax.axvline(3, color="red", linestyle="--", label="target 3 µs")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("µs added per request")
    ax.set_title("Client auth hook, cached token")
    ax.legend(fontsize=7)

    meta = results["meta"]
    fig.suptitle(
        f"tokenward vs incumbents · {meta['cpu']} · {meta['nproc']} cores · {meta['date']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    text = markdown(results)
    (out / "latest.md").write_text(text, encoding="utf-8")
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    chart(results, out / "latest.png")
    return text
