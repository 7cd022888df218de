use super::*;
use serde_json::json;

fn quota(namespace: &str, name: &str, spec: serde_json::Value) -> DataQuota {
    let mut full = json!({"carrierRef": {"name": "emnify"}, "target": {"deviceIds": [1]}, "volumeMB": 50, "expiry": {"after": "30d"}});
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": name, "namespace": namespace}, "spec": full})).unwrap()
}

#[test]
fn a_set_and_a_top_up_on_the_same_devices_conflict_on_both_sides() {
    let claims = QuotaClaims::default();
    let set = quota("ns", "set", json!({}));
    let top_up = quota("ns", "top-up", json!({"mode": "TopUp", "volumeMB": 7}));
    let first = claims.claim("ns/set", QuotaClaim::of(&set, None, 1..=40), &[]);
    assert!(first.conflicting.is_empty());
    let second = claims.claim("ns/top-up", QuotaClaim::of(&top_up, None, 1..=40), &[]);
    assert_eq!(second.conflicting.len(), 40);
    assert_eq!(second.conflicting[&1], "DataQuota set");
    assert_eq!(second.to_wake.len(), 1, "the other side looks again");
    let again = claims.claim("ns/set", QuotaClaim::of(&set, None, 1..=40), &[]);
    assert_eq!(again.conflicting.len(), 40);
    assert!(again.to_wake.is_empty(), "nothing changed: nobody is woken");
    assert_eq!(claims.forget("ns/top-up").len(), 1);
    assert!(
        claims
            .claim("ns/set", QuotaClaim::of(&set, None, 1..=40), &[])
            .conflicting
            .is_empty()
    );
}

#[test]
fn the_same_quota_twice_agrees_and_other_accounts_never_meet() {
    let claims = QuotaClaims::default();
    let a = quota("ns", "a", json!({}));
    let b = quota("ns", "b", json!({"onDelete": "Remove"}));
    let other_account = quota(
        "ns",
        "c",
        json!({"carrierRef": {"name": "other"}, "volumeMB": 9}),
    );
    claims.claim("ns/a", QuotaClaim::of(&a, None, [1, 2]), &[]);
    assert!(
        claims
            .claim("ns/b", QuotaClaim::of(&b, None, [1, 2]), &[])
            .conflicting
            .is_empty()
    );
    assert!(
        claims
            .claim("ns/c", QuotaClaim::of(&other_account, None, [1, 2]), &[])
            .conflicting
            .is_empty()
    );
}

#[test]
fn a_claim_says_whether_its_peers_have_claimed_in_the_same_moment() {
    let claims = QuotaClaims::default();
    let ten = quota("ns", "ten", json!({"volumeMB": 10}));
    let twenty = quota("ns", "twenty", json!({"volumeMB": 20}));
    let first = claims.claim(
        "ns/ten",
        QuotaClaim::of(&ten, None, [1]),
        &["ns/twenty".into()],
    );
    assert!(first.peers_unclaimed, "twenty has not claimed: ten waits");
    let second = claims.claim(
        "ns/twenty",
        QuotaClaim::of(&twenty, None, [1]),
        &["ns/ten".into()],
    );
    assert!(!second.peers_unclaimed);
    assert_eq!(second.conflicting.len(), 1, "and it sees ten's claim");
    let again = claims.claim(
        "ns/ten",
        QuotaClaim::of(&ten, None, [1]),
        &["ns/twenty".into()],
    );
    assert!(!again.peers_unclaimed);
    assert_eq!(again.conflicting.len(), 1);
}
