//! [`RedisServer`]: a real `redis-server` of the test's own, on a free port; [`RedisCluster`]
//! and [`RedisSentinel`]: the other two topologies a fleet runs on.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` process started by the test on 127.0.0.1, with no persistence, in a
/// directory of its own; killed when dropped. [`stop`](Self::stop) and
/// [`start_again`](Self::start_again) make an outage on the same port.
///
/// [`RedisServer::start`] is `None` (the reason printed) when `redis-server` is not
/// installed, outside CI; in CI (`CI` set) that is a failure, since `.ci/run` installs it.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let Some(mut redis) = tollgate_testkit::RedisServer::start().await else { return };
/// let url = redis.url(); // redis://127.0.0.1:<port>
/// redis.stop();
/// redis.start_again().await;
/// # let _ = url;
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More arguments for `redis-server` (cluster or replica settings).
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    pub async fn start() -> Option<RedisServer> {
        if !installed() {
            return None;
        }
        Some(RedisServer::start_with(Vec::new()).await)
    }

    /// A server with more `redis-server` arguments, started and answering.
    async fn start_with(args: Vec<String>) -> RedisServer {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("tollgate-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            args,
        };
        server.start_again().await;
        server
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data goes with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub async fn start_again(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }
}

/// Whether `redis-server` is installed; when not, the reason is printed, and outside CI
/// only (`.ci/run` installs it).
fn installed() -> bool {
    let installed = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let reason = "redis-server is needed for the fleet tests (.ci/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("skipped: {reason}");
    }
    installed
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not listen on port {port} within 2 s");
}

/// `redis-cli` with `args`, its output when it succeeded.
fn cli(args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `check` every 50 ms for up to `within`.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A Redis Cluster of three primaries (no replicas) on 127.0.0.1, every slot assigned;
/// stopped when dropped. `None` as for [`RedisServer::start`] when Redis is not installed.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let Some(cluster) = tollgate_testkit::RedisCluster::start().await else { return };
/// let url = cluster.url(); // redis-cluster://127.0.0.1:<port>?node=…&node=…
/// # let _ = url;
/// # }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, joins them (`redis-cli --cluster create`), and waits until the
    /// cluster is up.
    pub async fn start() -> Option<RedisCluster> {
        if !installed() {
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
            nodes.push(RedisServer::start_with(args.map(String::from).to_vec()).await);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        assert!(cli(&args).is_some(), "redis-cli --cluster create failed");
        let port = nodes[0].port.to_string();
        let up = eventually(Duration::from_secs(10), || {
            cli(&["-p", &port, "cluster", "info"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
        });
        assert!(up.await, "the cluster did not come up");
        Some(RedisCluster { nodes })
    }

    /// The cluster's URL, naming every node.
    pub fn url(&self) -> String {
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.nodes[0].port,
            others.join("&")
        )
    }
}

/// A primary, its replica and one Sentinel watching them (quorum 1, a primary down after
/// 1 s), on 127.0.0.1; stopped when dropped. [`kill_primary`](Self::kill_primary) makes
/// Sentinel fail over to the replica. `None` as for [`RedisServer::start`] when Redis is not
/// installed.
#[derive(Debug)]
pub struct RedisSentinel {
    primary: RedisServer,
    replica: RedisServer,
    sentinel: RedisServer,
}

/// The name the Sentinel knows the primary by.
const SERVICE: &str = "tollgate";

impl RedisSentinel {
    /// Starts the three, and waits until the Sentinel knows the replica.
    pub async fn start() -> Option<RedisSentinel> {
        if !installed() {
            return None;
        }
        let primary = RedisServer::start_with(Vec::new()).await;
        let replica_of = ["--replicaof", "127.0.0.1", &primary.port.to_string()].map(String::from);
        let replica = RedisServer::start_with(replica_of.to_vec()).await;
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("tollgate-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the sentinel");
        let config = dir.join("sentinel.conf");
        let settings = format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor {SERVICE} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 3000\n",
            primary.port
        );
        std::fs::write(&config, settings).expect("the sentinel's configuration");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        wait_for_port(port).await;
        let sentinel = RedisServer {
            port,
            dir,
            child: Some(child),
            args: Vec::new(),
        };
        let set = RedisSentinel {
            primary,
            replica,
            sentinel,
        };
        let knows_replica = eventually(Duration::from_secs(10), || {
            set.sentinel_says("replicas")
                .is_some_and(|r| r.contains(&set.replica.port.to_string()))
        });
        assert!(knows_replica.await, "the sentinel did not find the replica");
        Some(set)
    }

    fn sentinel_says(&self, what: &str) -> Option<String> {
        let port = self.sentinel.port.to_string();
        cli(&["-p", &port, "sentinel", what, SERVICE])
    }

    /// The URL of the set through its Sentinel.
    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={SERVICE}",
            self.sentinel.port
        )
    }

    /// The port of the current primary, as the Sentinel says.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = self.sentinel_says("get-master-addr-by-name")?;
        answer.lines().nth(1)?.trim().parse().ok()
    }

    /// Kills the primary, and waits until the Sentinel has promoted the replica.
    pub async fn kill_primary(&mut self) {
        self.primary.stop();
        let replica = self.replica.port;
        let promoted = eventually(Duration::from_secs(20), || {
            self.primary_port() == Some(replica)
                && cli(&["-p", &replica.to_string(), "role"])
                    .is_some_and(|role| role.starts_with("master"))
        });
        assert!(promoted.await, "the sentinel did not fail over");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
