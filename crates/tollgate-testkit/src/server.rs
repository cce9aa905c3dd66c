//! Serving a router on 127.0.0.1 for as long as its owner lives.

use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinHandle;

/// A router served on a random 127.0.0.1 port; the server stops when this is dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, task }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on a random 127.0.0.1 port in the background, for as long as the Tokio
/// runtime runs, and returns its address. For tests of your own protected routes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let addr = tollgate_testkit::serve(app).await;
/// let body = reqwest::get(format!("http://{addr}/")).await.unwrap().text().await.unwrap();
/// assert_eq!(body, "hi");
/// # }
/// ```
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A URL on 127.0.0.1 where nothing listens (connections are refused), for outage tests.
pub fn unreachable_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}{path}")
}

/// The series of a Prometheus text scrape, by name and labels as rendered
/// (`name{label="value"}`), with their values.
///
/// ```
/// let scrape = "# TYPE hits counter\nhits{route=\"/\"} 3\n";
/// assert_eq!(tollgate_testkit::prometheus_series(scrape)["hits{route=\"/\"}"], 3.0);
/// ```
pub fn prometheus_series(scrape: &str) -> std::collections::HashMap<&str, f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect()
}
