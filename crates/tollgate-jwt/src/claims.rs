//! Claim paths and [`ClaimRule`]s: which tokens an issuer's layer accepts beyond `iss`/`aud`
//! (for workload identity tokens: this repository, this branch, this environment).

use serde_json::{Map, Value};
use wildmatch::WildMatch;

/// Splits `a.b.c` into a claim path.
pub(crate) fn path(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_owned).collect()
}

/// The value at `path` in `claims`, if every step is an object holding the next name.
pub(crate) fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(claims.get(first)?, |value, segment| value.get(segment))
}

/// A rule a token's claims must meet, checked after the signature and the registered claims.
/// Paths are dotted (`repository`, `realm_access.roles`). A claim that is missing or of
/// another type than the rule expects fails the rule; nothing panics.
///
/// A token that fails gets 401 `invalid_token` with the description "the token's claims do
/// not meet this service's requirements", which says nothing of which rule failed (that is
/// logged at debug level).
///
/// ```
/// use tollgate_jwt::ClaimRule;
///
/// // GitHub Actions: one repository, from main or a release tag.
/// let rule = ClaimRule::all([
///     ClaimRule::equals("repository", "acme/api"),
///     ClaimRule::any([
///         ClaimRule::equals("ref", "refs/heads/main"),
///         ClaimRule::glob("ref", "refs/tags/v*"),
///     ]),
/// ]);
/// let claims = serde_json::json!({"repository": "acme/api", "ref": "refs/tags/v1.4.0"});
/// assert!(rule.matches(claims.as_object().unwrap()));
/// let claims = serde_json::json!({"repository": "acme/api", "ref": "refs/heads/feature"});
/// assert!(!rule.matches(claims.as_object().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct ClaimRule(Rule);

#[derive(Debug, Clone)]
enum Rule {
    Equals(Vec<String>, String),
    OneOf(Vec<String>, Vec<String>),
    Glob(Vec<String>, WildMatch),
    Contains(Vec<String>, String),
    All(Vec<ClaimRule>),
    Any(Vec<ClaimRule>),
}

impl ClaimRule {
    /// The string claim at `path` equals `value`.
    pub fn equals(path: &str, value: impl Into<String>) -> Self {
        ClaimRule(Rule::Equals(self::path(path), value.into()))
    }

    /// The string claim at `path` is one of `values`.
    pub fn one_of<I: IntoIterator<Item = S>, S: Into<String>>(path: &str, values: I) -> Self {
        ClaimRule(Rule::OneOf(
            self::path(path),
            values.into_iter().map(Into::into).collect(),
        ))
    }

    /// The string claim at `path` matches `pattern`, where `*` stands for any run of
    /// characters (`/` included) and `?` for one character (`refs/tags/v*`).
    pub fn glob(path: &str, pattern: impl Into<String>) -> Self {
        ClaimRule(Rule::Glob(
            self::path(path),
            WildMatch::new(&pattern.into()),
        ))
    }

    /// The array claim at `path` contains the string `value`.
    pub fn contains(path: &str, value: impl Into<String>) -> Self {
        ClaimRule(Rule::Contains(self::path(path), value.into()))
    }

    /// Every rule holds (an empty list holds).
    pub fn all(rules: impl IntoIterator<Item = ClaimRule>) -> Self {
        ClaimRule(Rule::All(rules.into_iter().collect()))
    }

    /// At least one rule holds (an empty list does not).
    pub fn any(rules: impl IntoIterator<Item = ClaimRule>) -> Self {
        ClaimRule(Rule::Any(rules.into_iter().collect()))
    }

    /// Whether `claims` meet this rule.
    pub fn matches(&self, claims: &Map<String, Value>) -> bool {
        let string = |path: &[String]| lookup(claims, path).and_then(Value::as_str);
        match &self.0 {
            Rule::Equals(path, value) => string(path) == Some(value.as_str()),
            Rule::OneOf(path, values) => {
                string(path).is_some_and(|s| values.iter().any(|v| v == s))
            }
            Rule::Glob(path, matcher) => string(path).is_some_and(|s| matcher.matches(s)),
            Rule::Contains(path, value) => lookup(claims, path)
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(|i| i.as_str() == Some(value))),
            Rule::All(rules) => rules.iter().all(|r| r.matches(claims)),
            Rule::Any(rules) => rules.iter().any(|r| r.matches(claims)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(rule: &ClaimRule, claims: Value) -> bool {
        rule.matches(claims.as_object().unwrap())
    }

    #[test]
    fn every_rule_and_wrong_types() {
        let claims = json!({"env": "prod", "groups": ["a", "b"], "n": 5, "o": {"k": "v"}});
        assert!(check(&ClaimRule::equals("env", "prod"), claims.clone()));
        assert!(check(&ClaimRule::equals("o.k", "v"), claims.clone()));
        assert!(check(
            &ClaimRule::one_of("env", ["dev", "prod"]),
            claims.clone()
        ));
        assert!(check(&ClaimRule::glob("env", "p*d"), claims.clone()));
        assert!(check(&ClaimRule::contains("groups", "b"), claims.clone()));
        assert!(!check(&ClaimRule::equals("n", "5"), claims.clone()));
        assert!(!check(&ClaimRule::contains("env", "prod"), claims.clone()));
        assert!(!check(&ClaimRule::glob("groups", "*"), claims.clone()));
        assert!(!check(
            &ClaimRule::equals("missing.deep", "x"),
            claims.clone()
        ));
        assert!(check(&ClaimRule::all([]), claims.clone()));
        assert!(!check(&ClaimRule::any([]), claims));
    }
}
