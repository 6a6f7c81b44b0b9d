//! The verifier end to end over HTTP, without Python.

use std::sync::atomic::Ordering;

use serde_json::json;

use crate::error::{Code, Error};
use crate::sign::SigningKey;
use crate::testutil::JwksServer;
use crate::verify::{Lookup, Verifier, VerifierConfig};

const ISSUER: &str = "http://issuer.test/realms/dls";

fn now() -> u64 {
    crate::clock::unix_seconds()
}

fn mint(key: &SigningKey, sub: &str) -> String {
    let claims =
        json!({"iss": ISSUER, "sub": sub, "exp": now() + 300, "iat": now(), "typ": "Bearer"});
    key.sign(claims.to_string().as_bytes(), None).unwrap()
}

fn verifier(server: &JwksServer) -> Verifier {
    verifier_with(server, |_| {})
}

fn verifier_with(server: &JwksServer, settings: impl FnOnce(&mut VerifierConfig)) -> Verifier {
    let mut config = VerifierConfig::new(ISSUER);
    config.jwks_uri = Some(server.jwks_uri());
    config.http_timeout = 2.0;
    settings(&mut config);
    Verifier::new(config).unwrap()
}

fn forged(key: &SigningKey, kid: &str) -> String {
    key.sign(b"{}", Some(json!({ "kid": kid }).as_object().unwrap()))
        .unwrap()
}

fn code(result: crate::Result<crate::verify::Claims>) -> Code {
    result
        .err()
        .and_then(|e| e.code())
        .expect("rejected with a code")
}

#[test]
fn verifies_and_caches() {
    let key = SigningKey::generate("RS256", Some("k1".into())).unwrap();
    let server = JwksServer::start(&[&key]);
    let v = verifier(&server);
    let token = mint(&key, "alice");
    assert_eq!(v.verify_blocking(&token).unwrap()["sub"], "alice");
    assert_eq!(v.verify_blocking(&token).unwrap()["sub"], "alice");
    assert_eq!(v.stats().cache_hits.get(), 1);
    assert_eq!(server.hits(), 1);
    let mut tampered = token.clone();
    tampered.insert(tampered.find('.').unwrap() + 5, 'x');
    assert_eq!(code(v.verify_blocking(&tampered)), Code::BadSignature);
}

#[test]
fn every_key_type_verifies() {
    let keys: Vec<_> = ["RS256", "PS384", "ES256", "ES384", "EdDSA"]
        .iter()
        .map(|alg| SigningKey::generate(alg, Some(format!("kid-{alg}"))).unwrap())
        .collect();
    let server = JwksServer::start(&keys.iter().collect::<Vec<_>>());
    let v = verifier(&server);
    for key in &keys {
        assert_eq!(
            v.verify_blocking(&mint(key, key.alg_name())).unwrap()["sub"],
            key.alg_name()
        );
    }
}

#[test]
fn with_a_cooldown_beyond_the_wait_bound_unknown_kids_are_refused_at_once() {
    let key = SigningKey::generate("ES256", Some("good".into())).unwrap();
    let server = JwksServer::start(&[&key]);
    let v = verifier_with(&server, |c| c.jwks_cooldown = 3600.0);
    v.verify_blocking(&mint(&key, "a")).unwrap();
    for i in 0..200 {
        let forged = forged(&key, &format!("forged-{i}"));
        assert_eq!(code(v.verify_blocking(&forged)), Code::UnknownKid);
    }
    assert_eq!(server.hits(), 2);
    assert_eq!(v.stats().unknown_kid_rejected.get(), 200);
    assert_eq!(v.stats().unknown_kid_waited.get(), 0);
}

#[test]
fn a_rotation_inside_the_cooldown_waits_for_the_next_refetch() {
    let old = SigningKey::generate("ES256", Some("old".into())).unwrap();
    let new = SigningKey::generate("ES256", Some("new".into())).unwrap();
    let server = JwksServer::start(&[&old]);
    let v = verifier_with(&server, |c| c.jwks_cooldown = 0.5);
    v.verify_blocking(&mint(&old, "a")).unwrap();
    // A forged kid spends the refetch; the rotation right after it must not be refused.
    assert_eq!(
        code(v.verify_blocking(&forged(&old, "forged"))),
        Code::UnknownKid
    );
    assert_eq!(server.hits(), 2);
    server.publish(&[&old, &new]);
    assert_eq!(v.verify_blocking(&mint(&new, "b")).unwrap()["sub"], "b");
    assert_eq!(
        server.hits(),
        3,
        "one refetch, when the cooldown allowed it"
    );
    assert_eq!(v.stats().unknown_kid_waited.get(), 1);
    // A known kid asks nothing of anyone.
    assert_eq!(v.verify_blocking(&mint(&old, "c")).unwrap()["sub"], "c");
    assert_eq!(server.hits(), 3);
}

#[test]
fn a_flood_of_waiting_unknown_kids_shares_one_refetch_per_cooldown() {
    let key = SigningKey::generate("ES256", Some("good".into())).unwrap();
    let server = JwksServer::start(&[&key]);
    let v = verifier_with(&server, |c| c.jwks_cooldown = 0.5);
    v.verify_blocking(&mint(&key, "a")).unwrap();
    assert_eq!(
        code(v.verify_blocking(&forged(&key, "first"))),
        Code::UnknownKid
    );
    // 8 blocking callers (the most that may wait) inside the cooldown: all wait for the one
    // refetch at its end, none makes its own.
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for i in 0..8 {
            let (v, barrier, key) = (&v, &barrier, &key);
            s.spawn(move || {
                barrier.wait();
                let token = forged(key, &format!("forged-{i}"));
                assert_eq!(code(v.verify_blocking(&token)), Code::UnknownKid);
            });
        }
    });
    assert!(server.hits() <= 4, "{} requests", server.hits());
}

#[test]
fn blocking_callers_waiting_for_keys_are_bounded() {
    let key = SigningKey::generate("ES256", Some("good".into())).unwrap();
    let server = JwksServer::start(&[&key]);
    // Long enough that 24 threads surely overlap in it, short enough for a test.
    let v = verifier_with(&server, |c| c.jwks_cooldown = 2.0);
    v.verify_blocking(&mint(&key, "a")).unwrap();
    assert_eq!(
        code(v.verify_blocking(&forged(&key, "first"))),
        Code::UnknownKid
    );
    let barrier = std::sync::Barrier::new(24);
    std::thread::scope(|s| {
        for i in 0..24 {
            let (v, barrier, key) = (&v, &barrier, &key);
            s.spawn(move || {
                let token = forged(key, &format!("forged-{i}"));
                barrier.wait();
                assert_eq!(code(v.verify_blocking(&token)), Code::UnknownKid);
            });
        }
    });
    let stats = v.stats();
    let waited = stats.unknown_kid_waited.get();
    assert!(waited <= 8, "{waited} blocking callers waited");
    assert!(stats.unknown_kid_rejected.get() >= 16);
    assert!(server.hits() <= 4);
}

#[test]
fn rotation_is_picked_up_and_outages_served_from_cache() {
    let old = SigningKey::generate("RS256", Some("old".into())).unwrap();
    let new = SigningKey::generate("RS256", Some("new".into())).unwrap();
    let server = JwksServer::start(&[&old]);
    // The old kid is refused at once after the refetch, not after the next one.
    let v = verifier_with(&server, |c| c.jwks_cooldown = 3600.0);
    v.verify_blocking(&mint(&old, "a")).unwrap();
    server.publish(&[&new]);
    v.verify_blocking(&mint(&new, "b")).unwrap();
    // The old kid left the set: even a token verified before is no longer accepted.
    assert_eq!(code(v.verify_blocking(&mint(&old, "c"))), Code::UnknownKid);
    server.down.store(true, Ordering::SeqCst);
    v.verify_blocking(&mint(&new, "d")).unwrap();
}

#[test]
fn no_keys_and_no_idp_is_unavailable_not_invalid() {
    let key = SigningKey::generate("RS256", None).unwrap();
    let server = JwksServer::start(&[&key]);
    server.down.store(true, Ordering::SeqCst);
    let v = verifier(&server);
    assert!(matches!(
        v.verify_blocking(&mint(&key, "a")),
        Err(Error::KeySetUnavailable(_))
    ));
}

#[test]
fn concurrent_callers_share_one_fetch() {
    let key = SigningKey::generate("EdDSA", Some("k".into())).unwrap();
    let server = JwksServer::start(&[&key]);
    let v = verifier(&server);
    let token = mint(&key, "a");
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                barrier.wait();
                v.verify_blocking(&token).unwrap();
            });
        }
    });
    assert_eq!(server.hits(), 1);
}

#[test]
fn bad_settings_name_the_setting() {
    let setting = |f: fn(&mut VerifierConfig)| {
        let mut c = VerifierConfig::new(ISSUER);
        f(&mut c);
        match Verifier::new(c) {
            Err(Error::Config { setting, .. }) => setting,
            _ => panic!("accepted"),
        }
    };
    assert_eq!(setting(|c| c.leeway = -1), "leeway");
    assert_eq!(setting(|c| c.max_lifetime = Some(0)), "max_lifetime");
    assert_eq!(setting(|c| c.max_lifetime = Some(-1)), "max_lifetime");
    assert_eq!(
        setting(|c| c.algorithms = Some(vec!["HS256".into()])),
        "algorithms"
    );
    assert_eq!(
        setting(|c| c.algorithms = Some(vec!["none".into()])),
        "algorithms"
    );
    assert_eq!(setting(|c| c.issuer = " ".into()), "issuer");
    assert_eq!(setting(|c| c.http_timeout = 0.0), "http_timeout");
}

#[test]
fn a_miss_is_verified_from_its_lookup_and_a_rejection_counted_once() {
    let key = SigningKey::generate("ES256", Some("k".into())).unwrap();
    let server = JwksServer::start(&[&key]);
    let v = verifier(&server);
    let token = mint(&key, "alice");
    let Lookup::Miss(uncached) = v.lookup(&token).unwrap() else {
        panic!("a cold cache holds nothing")
    };
    assert_eq!(
        v.verify_uncached_blocking(uncached).unwrap()["sub"],
        "alice"
    );
    assert!(matches!(v.lookup(&token).unwrap(), Lookup::Hit(_)));
    assert_eq!(v.stats().verified.get(), 2);
    assert_eq!(v.stats().cache_hits.get(), 1);
    let mut tampered = token.clone();
    tampered.insert(tampered.find('.').unwrap() + 5, 'x');
    assert_eq!(code(v.verify_blocking(&tampered)), Code::BadSignature);
    assert_eq!(v.stats().rejected.get(), 1);
    assert_eq!(server.hits(), 1);
}
