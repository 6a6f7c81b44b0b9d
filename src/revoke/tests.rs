use std::sync::atomic::AtomicU64;

use serde_json::{json, Map, Value};

use super::*;

fn claims(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn code(r: Result<()>) -> Option<&'static str> {
    match r {
        Err(Error::InvalidToken { code, .. }) => Some(code.as_str()),
        Err(other) => panic!("{other:?}"),
        Ok(()) => None,
    }
}

fn local() -> Arc<Revocations> {
    Revocations::new(3600, None, "test").unwrap()
}

fn sid(s: &str) -> Revocation {
    Revocation {
        sid: Some(s.into()),
        ..Revocation::default()
    }
}

#[test]
fn a_revoked_sid_refuses_tokens_issued_up_to_then_and_not_after() {
    let r = local();
    r.revoke(sid("s1"), 1000).unwrap();
    assert_eq!(
        code(r.check_now(&claims(json!({"sid": "s1", "iat": 1000})), 1000)),
        Some("revoked")
    );
    assert_eq!(
        code(r.check_now(&claims(json!({"sid": "s1", "iat": 999})), 1000)),
        Some("revoked")
    );
    assert_eq!(
        code(r.check_now(&claims(json!({"sid": "s1", "iat": 1001})), 1001)),
        None
    );
    assert_eq!(
        code(r.check_now(&claims(json!({"sid": "s1"})), 1001)),
        Some("revoked")
    );
    assert_eq!(
        code(r.check_now(&claims(json!({"sid": "s2", "iat": 5})), 1001)),
        None
    );
}

#[test]
fn not_before_refuses_what_was_issued_before_it_and_only_applies_to_sub_or_azp() {
    let r = local();
    let revocation = Revocation {
        azp: Some("agent".into()),
        not_before: Some(2000.0),
        ..Revocation::default()
    };
    r.revoke(revocation, 1000).unwrap();
    assert_eq!(
        code(r.check_now(&claims(json!({"azp": "agent", "iat": 1999})), 1000)),
        Some("revoked")
    );
    assert_eq!(
        code(r.check_now(&claims(json!({"azp": "agent", "iat": 2000})), 1000)),
        None
    );
    let bad = Revocation {
        jti: Some("j".into()),
        not_before: Some(5.0),
        ..Revocation::default()
    };
    assert!(matches!(r.revoke(bad, 1000), Err(Error::Config { .. })));
    assert!(matches!(
        r.revoke(Revocation::default(), 1000),
        Err(Error::Config { .. })
    ));
}

#[test]
fn a_jti_refuses_its_token_whatever_its_iat() {
    let r = local();
    let revocation = Revocation {
        jti: Some("j1".into()),
        ..Revocation::default()
    };
    r.revoke(revocation, 1000).unwrap();
    assert_eq!(
        code(r.check_now(&claims(json!({"jti": "j1", "iat": 5000})), 1000)),
        Some("revoked")
    );
}

#[test]
fn a_checked_generation_skips_the_lookups_until_a_new_revocation() {
    let r = local();
    let token = claims(json!({"sub": "u1", "iat": 900}));
    let seen = AtomicU64::new(r.generation());
    assert_eq!(code(r.check(&token, &seen, 1000)), None);
    r.revoke(
        Revocation {
            sub: Some("u1".into()),
            ..Revocation::default()
        },
        1000,
    )
    .unwrap();
    assert_eq!(code(r.check(&token, &seen, 1000)), Some("revoked"));
    assert_eq!(code(r.check(&token, &seen, 1000)), Some("revoked"));
}

#[test]
fn rules_expire_after_the_horizon() {
    let r = local();
    r.revoke(sid("s1"), 1000).unwrap();
    assert_eq!(r.len(), 1);
    // Any change prunes: the horizon (3600 s) has passed for s1.
    r.revoke(sid("s2"), 1000 + 3601).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(code(r.check_now(&claims(json!({"sid": "s1"})), 4700)), None);
}

#[test]
fn a_logout_jti_is_first_used_once() {
    let r = local();
    assert!(r.seen_local("l1", 2000, 1000));
    assert!(!r.seen_local("l1", 2000, 1500));
    assert!(r.seen_local("l1", 3000, 2001));
}

#[test]
fn a_bad_url_is_a_config_error_naming_revocations() {
    for url in ["http://x", "redis//", ""] {
        match Revocations::new(10, Some(url), "t") {
            Err(Error::Config { setting, .. }) => assert_eq!(setting, "revocations"),
            _ => panic!("{url} accepted"),
        }
    }
}
