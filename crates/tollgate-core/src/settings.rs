//! [`AuthSettings`]: what an [`AuthLayer`](crate::AuthLayer) tells the scope checks and
//! extractors behind it (its error format, scope policy and challenges), and the one place a
//! refusal becomes a response.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Extensions, HeaderMap, HeaderValue, Response};

use crate::{AuthError, Challenge, ErrorFormat, Rfc6750, ScopePolicy, retry_after_value};

/// The error format, scope policy and challenges in force for a request.
///
/// An [`AuthLayer`](crate::AuthLayer) renders every refusal of the code behind it (the scope
/// layer, the axum extractors) in its own format and challenges: those render with the
/// defaults, mark the response as a refusal, and the layer renders it again on the way out.
/// So the layer puts its settings in the request extensions only when its scope policy, which
/// the checks need before they refuse, is not the default; code behind it reads them with
/// [`AuthSettings::of`], which falls back to the defaults ([`Rfc6750`],
/// [`ScopePolicy::exact`], `Bearer realm="api"`).
#[derive(Clone)]
pub struct AuthSettings {
    format: Arc<dyn ErrorFormat>,
    scope_policy: ScopePolicy,
    challenges: Arc<[Challenge]>,
    realm: Box<str>,
    resource_metadata: Option<Box<str>>,
}

#[derive(Clone)]
pub(crate) struct SettingsHandle(pub(crate) Arc<AuthSettings>);

/// On a refusal rendered behind a layer: the error and the request's headers, so that the
/// layer renders it again in its own format and challenges.
#[derive(Clone)]
pub(crate) struct Refused {
    pub(crate) error: AuthError,
    pub(crate) headers: HeaderMap,
}

static DEFAULTS: LazyLock<AuthSettings> = LazyLock::new(AuthSettings::default);

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            format: Arc::new(Rfc6750),
            scope_policy: ScopePolicy::exact(),
            challenges: Arc::new([Challenge::bearer()]),
            realm: "api".into(),
            resource_metadata: None,
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
    /// let res = AuthSettings::of(&extensions)
    ///     .render(&AuthError::missing_credential(), &http::HeaderMap::new());
    /// assert_eq!(res.status(), 401);
    /// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    /// ```
    pub fn of(extensions: &Extensions) -> &AuthSettings {
        match extensions.get::<SettingsHandle>() {
            Some(handle) => &handle.0,
            None => &DEFAULTS,
        }
    }

    /// Renders `error` as the response to a request with `headers`: the format's body, the
    /// status of the error, and the standard headers the format did not set. The challenge
    /// for how the request carried its credential (its `Authorization` scheme, or the header
    /// an `ApiKey` challenge names; else the first) comes first and carries the error.
    pub fn render(&self, error: &AuthError, headers: &HeaderMap) -> Response<Bytes> {
        let mut res = self.format.render(error);
        // The status is decided by the error, whatever the format's response says (a format
        // for a protocol with its own status, gRPC, decides the transport's).
        *res.status_mut() = self.format.http_status(error);
        let sets = |res: &Response<Bytes>, name| res.headers().contains_key(name);
        if matches!(error.status().as_u16(), 400 | 401 | 403) && !sets(&res, WWW_AUTHENTICATE) {
            let primary = self
                .challenges
                .iter()
                .position(|c| c.matches_request(headers))
                .unwrap_or(0);
            let metadata = self.resource_metadata.as_deref();
            let ordered = self.challenges.get(primary).into_iter().chain(
                self.challenges
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != primary)
                    .map(|(_, c)| c),
            );
            for (i, challenge) in ordered.enumerate() {
                let error = (i == 0).then_some(error);
                if let Some(value) = challenge.render(&self.realm, error, metadata) {
                    res.headers_mut().append(WWW_AUTHENTICATE, value);
                }
            }
        }
        if let Some(extra) = error.headers() {
            for (name, value) in extra {
                res.headers_mut().insert(name, value.clone());
            }
        }
        if let Some(after) = error.retry_after()
            && !sets(&res, RETRY_AFTER)
        {
            res.headers_mut()
                .insert(RETRY_AFTER, retry_after_value(after));
        }
        if !res.body().is_empty() && !sets(&res, CONTENT_TYPE) {
            let json = matches!(res.body().trim_ascii_start().first(), Some(b'{' | b'['));
            let content_type = match json {
                true => "application/json",
                false => "text/plain; charset=utf-8",
            };
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        res
    }

    /// [`render`](Self::render), marked as a refusal for the layer in front to render again.
    pub(crate) fn render_behind(&self, error: &AuthError, headers: &HeaderMap) -> Response<Bytes> {
        let mut res = self.render(error, headers);
        res.extensions_mut().insert(Refused {
            error: error.clone(),
            headers: headers.clone(),
        });
        res
    }

    /// The scope policy.
    pub fn scope_policy(&self) -> &ScopePolicy {
        &self.scope_policy
    }

    /// The challenges a refusal names.
    pub fn challenges(&self) -> &[Challenge] {
        &self.challenges
    }

    /// Whether the checks behind a layer need these settings in the request (a scope
    /// policy that is not the default); everything else is applied on the way out.
    pub(crate) fn needed_behind(&self) -> bool {
        self.scope_policy != DEFAULTS.scope_policy
    }

    pub(crate) fn defaults_with_default_format() -> Self {
        AuthSettings {
            format: DEFAULTS.format.clone(),
            ..AuthSettings::default()
        }
    }

    pub(crate) fn set_format(&mut self, format: Arc<dyn ErrorFormat>) {
        self.format = format;
    }

    pub(crate) fn set_scope_policy(&mut self, policy: ScopePolicy) {
        self.scope_policy = policy;
    }

    pub(crate) fn set_challenges(&mut self, challenges: Vec<Challenge>) {
        if !challenges.is_empty() {
            self.challenges = challenges.into();
        }
    }

    pub(crate) fn set_realm(&mut self, realm: Box<str>) {
        self.realm = realm;
    }

    pub(crate) fn set_resource_metadata(&mut self, url: Box<str>) {
        self.resource_metadata = Some(url);
    }
}
