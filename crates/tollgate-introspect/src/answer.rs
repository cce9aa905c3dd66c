//! What an introspection answer must say for its token to be accepted (RFC 7662 §2.2), and
//! the [`Principal`] it becomes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tollgate_core::{AuthError, Binding, CredentialKind, Principal};
use tollgate_jwt::{ClaimRule, ScopeMapping};

/// How the `aud` of an introspection answer is checked against the configured audiences.
/// RFC 7662 makes `aud` optional, and servers differ on sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AudiencePolicy {
    /// `aud` must be present and contain a configured audience.
    Required,
    /// When present, `aud` must contain a configured audience (the default).
    #[default]
    WhenPresent,
    /// `aud` is not checked. Loosens security (a token meant for another resource is
    /// accepted); only for servers that issue tokens for this resource alone.
    Ignored,
}

/// The rules an answer is judged by.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) issuer: Arc<str>,
    pub(crate) audiences: Vec<String>,
    pub(crate) audience_policy: AudiencePolicy,
    pub(crate) scopes: ScopeMapping,
    pub(crate) rules: Vec<ClaimRule>,
}

fn refused(why: &'static str) -> AuthError {
    AuthError::invalid_token(why)
}

impl Rules {
    /// The principal of an answer, or why its token is refused: `active` must be `true`
    /// (missing, `false` or not a boolean: refused), `exp` in the future when present, `iss`
    /// the configured issuer when present, `aud` by the [`AudiencePolicy`], and every
    /// [`ClaimRule`]. The whole answer is the principal's data.
    pub(crate) fn judge(&self, answer: Map<String, Value>) -> Result<Principal, AuthError> {
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(refused("the token is not active"));
        }
        let exp = match answer.get("exp") {
            None => None,
            Some(v) => Some(seconds(v).ok_or_else(|| refused("the token's exp is not a number"))?),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if exp.is_some_and(|exp| exp <= now) {
            return Err(refused("the token has expired"));
        }
        if answer
            .get("iss")
            .is_some_and(|iss| iss.as_str() != Some(&*self.issuer))
        {
            return Err(refused("the token issuer is not trusted"));
        }
        let audience_ok = match (self.audience_policy, answer.get("aud")) {
            (AudiencePolicy::Ignored, _) => true,
            (AudiencePolicy::Required, None) => false,
            (AudiencePolicy::WhenPresent, None) => true,
            (_, Some(aud)) => self.audience_matches(aud),
        };
        if !audience_ok {
            return Err(refused("the token is not meant for this audience"));
        }
        if let Some(failed) = self.rules.iter().find(|rule| !rule.matches(&answer)) {
            tracing::debug!(rule = ?failed, "claim rule not met");
            return Err(refused(
                "the token's claims do not meet this service's requirements",
            ));
        }
        let subject = answer
            .get("sub")
            .or_else(|| answer.get("client_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let binding = Binding::from_cnf(answer.get("cnf"))?;
        let mut builder = Principal::builder(subject, CredentialKind::OpaqueToken)
            .issuer(self.issuer.clone())
            .scopes(self.scopes.scopes(&answer));
        if let Some(binding) = binding {
            builder = builder.binding(binding);
        }
        if let Some(at) =
            exp.and_then(|s| UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(s).ok()?))
        {
            builder = builder.expires_at(at);
        }
        Ok(builder.data(Value::Object(answer)).build())
    }

    fn audience_matches(&self, aud: &Value) -> bool {
        let ours = |a: &str| self.audiences.iter().any(|x| x == a);
        match aud {
            Value::String(a) => ours(a),
            Value::Array(items) => items.iter().filter_map(Value::as_str).any(ours),
            _ => false,
        }
    }
}

/// A NumericDate (seconds since the epoch, RFC 7662 §2.2) that is a finite number.
fn seconds(value: &Value) -> Option<f64> {
    value.as_f64().filter(|s| s.is_finite() && *s >= 0.0)
}
