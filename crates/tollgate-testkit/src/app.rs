//! [`ProtectedApp`]: one route behind a tollgate layer, served on 127.0.0.1, that counts how
//! often its handler ran: the harness of tollgate's own tests, and of yours.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use tollgate_core::{AuthLayer, Authenticator, Principal};

/// `GET /` behind `layer`, served on a random 127.0.0.1 port for as long as the Tokio runtime
/// runs. The handler answers `"<subject> <scopes>"` (or `"anonymous"` behind an optional
/// layer) and counts its runs, so a test can assert that a refused request never reached it.
///
/// ```
/// use tollgate_core::{AuthError, AuthLayer, Authenticator, CredentialKind, CredentialSource, Principal};
/// use tollgate_testkit::ProtectedApp;
///
/// struct Fixed;
/// impl Authenticator for Fixed {
///     async fn authenticate(&self, parts: &http::request::Parts) -> Result<Option<Principal>, AuthError> {
///         match CredentialSource::bearer().find(parts)?.as_deref() {
///             None => Ok(None),
///             Some("good") => Ok(Some(Principal::builder("alice", CredentialKind::Other("fixed")).build())),
///             Some(_) => Err(AuthError::invalid_token("unknown token")),
///         }
///     }
///     fn credential_source(&self) -> CredentialSource { CredentialSource::bearer() }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = ProtectedApp::start(AuthLayer::new(Fixed)).await;
/// assert_eq!(app.bearer("good").await.text().await.unwrap(), "alice ");
/// assert_eq!(app.bearer("bad").await.status(), 401);
/// assert_eq!(app.hits(), 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ProtectedApp {
    url: String,
    hits: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl ProtectedApp {
    /// Serves `GET /` behind `layer`.
    pub async fn start<A: Authenticator>(layer: AuthLayer<A>) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = Router::new()
            .route(
                "/",
                get(move |principal: Option<Principal>| {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        match principal {
                            Some(p) => format!("{} {}", p.subject(), p.scopes()),
                            None => "anonymous".to_owned(),
                        }
                    }
                }),
            )
            .layer(layer);
        let addr = crate::serve(app).await;
        ProtectedApp {
            url: format!("http://{addr}/"),
            hits,
            client: reqwest::Client::new(),
        }
    }

    /// The URL of the route.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A GET to the route, to add headers to.
    pub fn get(&self) -> reqwest::RequestBuilder {
        self.client.get(&self.url)
    }

    /// A GET with `Authorization: Bearer <token>`.
    pub async fn bearer(&self, token: &str) -> reqwest::Response {
        self.send(self.get().bearer_auth(token)).await
    }

    /// A GET with one header.
    pub async fn with_header(&self, name: &str, value: &str) -> reqwest::Response {
        self.send(self.get().header(name, value)).await
    }

    /// Sends `request` (built from [`get`](Self::get)).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request.send().await.expect("the protected app answers")
    }

    /// How many times the handler ran.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
