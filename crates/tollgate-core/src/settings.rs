//! [`AuthSettings`]: what an [`AuthLayer`](crate::AuthLayer) tells the scope checks and
//! extractors behind it (its error format and scope policy).

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{Extensions, Response};

use crate::{AuthError, ErrorFormat, Rfc6750, ScopePolicy};

/// The error format and scope policy in force for a request.
///
/// An [`AuthLayer`](crate::AuthLayer) configured with a custom format or policy puts its
/// settings in the request extensions; code behind it (the scope layer, the axum extractors,
/// your own) reads them with [`AuthSettings::of`], which falls back to the defaults
/// ([`Rfc6750`], [`ScopePolicy::exact`]). Nothing is inserted when the defaults are used.
#[derive(Clone)]
pub struct AuthSettings {
    format: Arc<dyn ErrorFormat>,
    scope_policy: ScopePolicy,
}

#[derive(Clone)]
pub(crate) struct SettingsHandle(pub(crate) Arc<AuthSettings>);

static DEFAULTS: LazyLock<AuthSettings> = LazyLock::new(AuthSettings::default);

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            format: Arc::new(Rfc6750::new()),
            scope_policy: ScopePolicy::exact(),
        }
    }
}

impl AuthSettings {
    /// The settings of the layer that handled a request, or the defaults.
    ///
    /// ```
    /// use tollgate_core::{AuthError, AuthSettings};
    ///
    /// let extensions = http::Extensions::new();
    /// let res = AuthSettings::of(&extensions).render(&AuthError::missing_credential());
    /// assert_eq!(res.status(), 401);
    /// ```
    pub fn of(extensions: &Extensions) -> &AuthSettings {
        match extensions.get::<SettingsHandle>() {
            Some(handle) => &handle.0,
            None => &DEFAULTS,
        }
    }

    /// Renders `error` in the configured format.
    pub fn render(&self, error: &AuthError) -> Response<Bytes> {
        let mut res = self.format.render(error);
        // The status is decided by the error, whatever the format says.
        *res.status_mut() = error.status();
        res
    }

    /// The scope policy.
    pub fn scope_policy(&self) -> &ScopePolicy {
        &self.scope_policy
    }

    pub(crate) fn set_format(&mut self, format: Arc<dyn ErrorFormat>) {
        self.format = format;
    }

    pub(crate) fn set_scope_policy(&mut self, policy: ScopePolicy) {
        self.scope_policy = policy;
    }
}
