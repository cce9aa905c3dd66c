//! [`ScopeMapping`]: where an issuer puts permissions in its tokens, turned into the
//! principal's [`Scopes`].

use serde_json::{Map, Value};
use tollgate_core::Scopes;

use crate::claims::{lookup, path};

/// Which claims hold scopes, and how to read them. Each claim is read by the shape of its
/// value:
///
/// | value | scopes |
/// |---|---|
/// | `"a b"` (space-separated string, RFC 8693 `scope`) | `a`, `b` |
/// | `["a", "b"]` (`scp`, `permissions`, `roles`) | `a`, `b` |
/// | `{"a": true, "b": false}` (object of booleans) | `a` |
/// | `{"svc": ["read", "write"]}` (object of arrays) | `svc:read`, `svc:write` |
///
/// A claim of any other shape, or an entry of the wrong type inside one, is ignored (with a
/// debug log): never a panic and never a scope. Several claims are merged.
///
/// The default reads `scope` and `scp`.
///
/// ```
/// use tollgate_jwt::ScopeMapping;
///
/// // Keycloak: realm roles plus one client's roles; Auth0: `permissions`.
/// let keycloak = ScopeMapping::claims(["realm_access.roles", "resource_access.orders-api.roles"]);
/// let auth0 = ScopeMapping::default().and("permissions");
/// let claims = serde_json::json!({
///     "scope": "openid orders:read",
///     "permissions": ["orders:write"],
///     "realm_access": {"roles": ["admin"]},
/// });
/// let scopes = auth0.scopes(claims.as_object().unwrap());
/// assert_eq!(scopes.to_string(), "openid orders:read orders:write");
/// assert_eq!(keycloak.scopes(claims.as_object().unwrap()).to_string(), "admin");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeMapping {
    paths: Vec<Vec<String>>,
    separator: String,
}

impl Default for ScopeMapping {
    fn default() -> Self {
        ScopeMapping::claims(["scope", "scp"])
    }
}

impl ScopeMapping {
    /// Reads exactly these claims. A path's segments are separated by `.`
    /// (`realm_access.roles`); use [`and_path`](Self::and_path) for a claim name that holds a
    /// dot itself.
    pub fn claims<I: IntoIterator<Item = S>, S: AsRef<str>>(paths: I) -> Self {
        ScopeMapping {
            paths: paths.into_iter().map(|p| path(p.as_ref())).collect(),
            separator: ":".into(),
        }
    }

    /// Reads no claim: principals get no scopes.
    pub fn none() -> Self {
        ScopeMapping {
            paths: Vec::new(),
            separator: ":".into(),
        }
    }

    /// Also reads the claim at `path` (segments separated by `.`).
    pub fn and(mut self, path: &str) -> Self {
        self.paths.push(self::path(path));
        self
    }

    /// Also reads the claim at a path given segment by segment (for names with dots, such
    /// as `https://example.com/roles`).
    pub fn and_path<I: IntoIterator<Item = S>, S: Into<String>>(mut self, segments: I) -> Self {
        self.paths
            .push(segments.into_iter().map(Into::into).collect());
        self
    }

    /// The separator between key and item for objects of arrays (default `:`).
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// The scopes in `claims`.
    pub fn scopes(&self, claims: &Map<String, Value>) -> Scopes {
        let mut out: Vec<String> = Vec::new();
        for path in &self.paths {
            let Some(value) = lookup(claims, path) else {
                continue;
            };
            self.collect(value, &mut out, path);
        }
        out.into_iter().collect()
    }

    fn collect(&self, value: &Value, out: &mut Vec<String>, path: &[String]) {
        match value {
            Value::String(s) => out.extend(s.split_ascii_whitespace().map(str::to_owned)),
            Value::Array(items) => out.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                    .map(str::to_owned),
            ),
            Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        Value::Bool(true) => out.push(key.clone()),
                        Value::Array(items) => out.extend(
                            items
                                .iter()
                                .filter_map(Value::as_str)
                                .map(|item| format!("{key}{}{item}", self.separator)),
                        ),
                        _ => {}
                    }
                }
            }
            _ => tracing::debug!(
                claim = path.join("."),
                "scope claim of an unexpected type ignored"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scopes(mapping: &ScopeMapping, claims: Value) -> String {
        mapping.scopes(claims.as_object().unwrap()).to_string()
    }

    #[test]
    fn every_shape() {
        let m = ScopeMapping::claims(["scope", "scp", "perms", "svc"]);
        let claims = json!({
            "scope": "a\tb  c",
            "scp": ["d", 5, {"x": 1}, "e"],
            "perms": {"profile.modify": true, "profile.delete": false, "n": 1},
            "svc": {"catalog": ["read", "write", 3]},
        });
        assert_eq!(
            scopes(&m, claims),
            "a b c catalog:read catalog:write d e profile.modify"
        );
    }

    #[test]
    fn wrong_types_are_survived() {
        let m = ScopeMapping::default();
        assert_eq!(scopes(&m, json!({"scope": 5, "scp": {"a": "b"}})), "");
        assert_eq!(scopes(&m, json!({"scope": null})), "");
        let big: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
        assert_eq!(
            ScopeMapping::default()
                .scopes(json!({"scp": big}).as_object().unwrap())
                .len(),
            100_000
        );
    }
}
