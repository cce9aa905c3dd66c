//! axum integration (feature `axum`): `Principal` and `Option<Principal>` as extractors, and
//! [`AuthRejection`], the rejection of every tollgate extractor.

use std::convert::Infallible;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;

use crate::{AuthError, AuthSettings, Principal};

/// Why a tollgate extractor refused a request: the [`AuthError`], already rendered in the
/// error format of the layer in front (RFC 6750 by default).
#[derive(Debug)]
pub struct AuthRejection {
    error: AuthError,
    // Boxed: rejections travel in `Result`s, and a response is large.
    response: Box<http::Response<Bytes>>,
}

impl AuthRejection {
    /// Renders `error` with the settings found in `parts`.
    pub fn new(error: AuthError, parts: &Parts) -> Self {
        let response = Box::new(AuthSettings::of(&parts.extensions).render(&error));
        AuthRejection { error, response }
    }

    /// The error.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.response.map(Body::from)
    }
}

/// The authenticated principal; 401 when no tollgate layer authenticated the request.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(principal.clone()),
            None => Err(AuthRejection::new(AuthError::missing_credential(), parts)),
        }
    }
}

/// `Option<Principal>`, for routes behind an optional layer: `None` when no credential was
/// sent (a bad credential never gets this far).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}
