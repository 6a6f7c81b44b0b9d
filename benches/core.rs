//! Criterion benches of the Rust core (issue 6): verify uncached and cached for RS256, ES256 and
//! EdDSA, JWKS parsing, and a token-client cache hit next to a token-exchange cache hit (issue
//! 16: the exchange hit, which hashes the subject token, may cost at most 1 µs more).
//!
//! The verifier and the token client get their key set and token over real HTTP from a tiny
//! std::net server on 127.0.0.1, so the benches drive the public API exactly as a service does;
//! the first call of each fetches, every measured call after that is served from memory.
//!
//! `cargo bench --bench core` measures; `cargo test --bench core` runs each bench once (smoke).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use tokenward::jwks::parse_jwks;
use tokenward::token::{Exchange, TokenClientConfig};
use tokenward::{Revocation, SigningKey, Verifier, VerifierConfig};

const ISSUER: &str = "http://127.0.0.1/realms/bench";

/// Answers `GET /certs` with `jwks` and `POST /token` with a 300 s bearer token, forever, on a
/// background thread. Returns the base URL.
fn serve(jwks: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks = jwks.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let jwks = jwks.clone();
            std::thread::spawn(move || {
                let _ = answer(stream, &jwks);
            });
        }
    });
    base
}

fn answer(stream: TcpStream, jwks: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let (status, payload) = if request_line.contains(" /certs ") {
            ("200 OK", jwks.to_string())
        } else if request_line.starts_with("POST /token ") {
            let token = json!({"access_token": "a".repeat(900), "token_type": "Bearer",
                               "expires_in": 300});
            ("200 OK", token.to_string())
        } else {
            ("404 Not Found", "{}".to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: max-age=3600\r\n\
             content-length: {}\r\n\r\n{payload}",
            payload.len()
        );
        (&stream).write_all(response.as_bytes())?;
    }
}

#[allow(clippy::disallowed_methods, reason = "tokens minted by the bench")]
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A Keycloak-shaped user access token's claims (about 1 KB once signed), as the Python
/// comparison uses.
fn claims(jti: usize) -> Value {
    let now = now();
    json!({
        "exp": now + 3600, "iat": now, "jti": format!("bench-{jti:08}"), "iss": ISSUER,
        "aud": "account", "sub": "0b6e4c2a-6f0e-4a53-9b3c-2f4f1a8d9e10", "typ": "Bearer",
        "azp": "SmartEM_User", "sid": "5c1e2f7a-0d9b-4c3e-8a41-7b6d2e9f0a13", "acr": "1",
        "allowed-origins": ["http://localhost:3000"],
        "realm_access": {"roles": ["default-roles-dls", "offline_access", "uma_authorization",
                                   "smartem-user"]},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links",
                                                  "view-profile"]}},
        "scope": "openid profile email", "email_verified": true, "name": "Alice Example",
        "preferred_username": "alice", "given_name": "Alice", "family_name": "Example",
        "email": "alice@example.org", "groups": ["/viewers", "/facility/m12"]
    })
}

struct Setup {
    keys: Vec<SigningKey>,
    base: String,
}

fn setup() -> Setup {
    let keys: Vec<SigningKey> = [("RS256", "rsa"), ("ES256", "ec"), ("EdDSA", "ed")]
        .into_iter()
        .map(|(alg, kid)| SigningKey::generate(alg, Some(kid.into())).expect("generate key"))
        .collect();
    let jwks = json!({"keys": keys.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>()});
    Setup {
        base: serve(jwks),
        keys,
    }
}

fn verifier(base: &str, cache_size: i64) -> Verifier {
    let mut config = VerifierConfig::new(ISSUER);
    config.jwks_uri = Some(format!("{base}/certs"));
    config.cache_size = cache_size;
    Verifier::new(config).expect("verifier")
}

fn sign(key: &SigningKey, jti: usize) -> String {
    key.sign(claims(jti).to_string().as_bytes(), None)
        .expect("sign")
}

fn bench_verify(c: &mut Criterion) {
    let Setup { keys, base } = setup();
    let uncached = verifier(&base, 0);
    let cached = verifier(&base, 10_000);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for key in &keys {
        let token = sign(key, 0);
        // The first call fetches the key set; measured calls never touch the network.
        uncached
            .verify_blocking(&token)
            .expect("the token verifies");
        cached.verify_blocking(&token).expect("the token verifies");
        group.bench_function(format!("uncached/{}", key.alg_name()), |b| {
            b.iter(|| uncached.verify_blocking(black_box(&token)).unwrap())
        });
        group.bench_function(format!("cached/{}", key.alg_name()), |b| {
            b.iter(|| cached.verify_blocking(black_box(&token)).unwrap())
        });
        // The cache lookup alone, as the Python binding does it first (with the GIL held).
        group.bench_function(format!("cache_lookup/{}", key.alg_name()), |b| {
            b.iter(|| cached.cached(black_box(&token)).unwrap().unwrap())
        });
    }
    // The cached verify with 10,000 live revocations (none of them this token's), made before
    // the token was cached and after: the hit compares one generation number.
    let revoked = verifier(&base, 10_000);
    let rsa_token = sign(&keys[0], 0);
    for i in 0..5_000 {
        revoked
            .revoke(Revocation {
                sid: Some(format!("revoked-session-{i}")),
                ..Revocation::default()
            })
            .expect("revoke");
    }
    revoked
        .verify_blocking(&rsa_token)
        .expect("the token verifies");
    for i in 0..5_000 {
        let kind = match i % 3 {
            0 => Revocation {
                sub: Some(format!("revoked-subject-{i}")),
                ..Revocation::default()
            },
            1 => Revocation {
                jti: Some(format!("revoked-jti-{i}")),
                ..Revocation::default()
            },
            _ => Revocation {
                azp: Some(format!("revoked-client-{i}")),
                ..Revocation::default()
            },
        };
        revoked.revoke(kind).expect("revoke");
    }
    assert_eq!(revoked.revocations_health().entries, 10_000);
    group.bench_function("cached_10k_revocations/RS256", |b| {
        b.iter(|| revoked.verify_blocking(black_box(&rsa_token)).unwrap())
    });
    // A cache miss on a warm cache: a fresh token each call (signing is outside the timing).
    let rsa = &keys[0];
    let mut jti = 1;
    group.bench_function("cached_miss/RS256", |b| {
        b.iter_batched(
            || {
                jti += 1;
                sign(rsa, jti)
            },
            |token| cached.verify_blocking(&token).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_jwks(c: &mut Criterion) {
    let Setup { keys, .. } = setup();
    // A realm's usual set: two RSA signing keys (current and previous), an RSA encryption key
    // (skipped), plus one EC and one OKP key.
    let extra = SigningKey::generate("RS256", Some("rsa-old".into())).unwrap();
    let mut enc = extra.public_jwk().clone();
    enc["kid"] = json!("rsa-enc");
    enc["use"] = json!("enc");
    let mut all: Vec<Value> = keys.iter().map(|k| k.public_jwk().clone()).collect();
    all.push(extra.public_jwk().clone());
    all.push(enc);
    let doc = json!({ "keys": all }).to_string();
    let mut group = c.benchmark_group("jwks");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse/5_keys", |b| {
        b.iter(|| parse_jwks(black_box(doc.as_bytes())).unwrap())
    });
    group.finish();
}

fn bench_token_cache(c: &mut Criterion) {
    let Setup { base, .. } = setup();
    let mut config = TokenClientConfig::new("bench-agent");
    config.token_url = Some(format!("{base}/token"));
    config.client_secret = Some(String::from("bench-secret").into());
    let client = tokenward::token::TokenClient::new(config).expect("token client");
    client.get_token_blocking().expect("the first token");
    let mut group = c.benchmark_group("token_client");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cache_hit", |b| {
        b.iter(|| client.get_token_blocking().unwrap())
    });
    // A user token of Keycloak's usual size; the request is built per call, as a binding does.
    let subject = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.{}",
        "x".repeat(700),
        "s".repeat(342)
    );
    let exchange = || Exchange::new(&subject, vec!["svc-b".into()], None, None).unwrap();
    client
        .exchange_blocking(&exchange())
        .expect("the first exchange");
    group.bench_function("exchange_cache_hit", |b| {
        b.iter(|| client.exchange_blocking(&exchange()).unwrap())
    });
    // With a shared cache (a Redis at TOKENWARD_BENCH_REDIS): a hit must stay in-process.
    if let Ok(redis) = std::env::var("TOKENWARD_BENCH_REDIS") {
        let mut config = TokenClientConfig::new("bench-agent");
        config.token_url = Some(format!("{base}/token"));
        config.client_secret = Some(String::from("bench-secret").into());
        config.shared_cache = Some(redis);
        config.shared_cache_key =
            Some(String::from("a2V5LWZvci10aGUtYmVuY2gtb25seS0zMi1ieXRlcyE=").into());
        let shared = tokenward::token::TokenClient::new(config).expect("shared token client");
        shared.get_token_blocking().expect("the first shared token");
        group.bench_function("cache_hit_shared_cache", |b| {
            b.iter(|| shared.get_token_blocking().unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_verify, bench_jwks, bench_token_cache);
criterion_main!(benches);
