//! What a scope check costs: three required scopes against a principal holding fifty, as
//! `RequireScopes<S>` and `RequireScopesLayer` do it (read the principal from the extensions,
//! look up the policy, check), against a bare `HashSet` lookup of the same three strings.
//!
//! `cargo bench -p tollgate-core`

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_core::{AuthSettings, CredentialKind, Principal, ScopeMatch, Scopes};

fn scope_check(c: &mut Criterion) {
    let held: Vec<String> = (0..47)
        .map(|i| format!("service{i}:read"))
        .chain([
            "orders:read".into(),
            "orders:write".into(),
            "billing:read".into(),
        ])
        .collect();
    let mut extensions = http::Extensions::new();
    extensions.insert(
        Principal::builder("svc", CredentialKind::Jwt)
            .scopes(held.iter().collect())
            .build(),
    );
    let needed = Scopes::from(["orders:read", "orders:write", "billing:read"]);
    let set: HashSet<&str> = held.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group("scopes/3 of 50");
    group.bench_function("HashSet lookups (baseline)", |b| {
        b.iter(|| black_box(needed.iter().all(|s| black_box(&set).contains(s))))
    });
    // What every scope check runs (the extractors' and the layer's shared `check_scopes`).
    let check = |extensions: &http::Extensions| {
        let principal = extensions.get::<Principal>()?;
        AuthSettings::of(extensions)
            .scope_policy()
            .check(principal.scopes(), &needed, ScopeMatch::All)
            .ok()
    };
    group.bench_function("check_scopes (RequireScopes)", |b| {
        b.iter(|| black_box(check(black_box(&extensions)).is_some()))
    });
    group.finish();
}

criterion_group!(benches, scope_check);
criterion_main!(benches);
