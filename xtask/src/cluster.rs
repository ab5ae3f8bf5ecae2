//! `cargo xtask cluster`: two `warden` instances on one PostgreSQL, through PgBouncer in
//! transaction-pooling mode, behind HAProxy (round-robin, health checks on `/health/ready`), as
//! docs/deploy.md describes.
//!
//! 1. `xtask/cluster/check.py` checks, through the proxy and on each instance directly, what
//!    must hold across instances: tokens, logout, one refresh of ten, the shared failed-login
//!    budget, one registration of two.
//! 2. The rolling restart: while `xtask/cluster/load.py` sends a bounded load through the proxy,
//!    each instance in turn gets SIGTERM, drains, exits cleanly, and is started again; not one
//!    request may fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::pgbouncer::PgBouncer;
use crate::warden::{Launch, Probe, Profile, Warden};
use crate::{exec, net, postgres, python, root};

const JWT_SECRET: &str = "a-cluster-signing-secret-shared-by-every-instance";
/// How long a signalled instance goes on serving while HAProxy takes it out: well over the
/// health checks' `inter` (300 ms) times `fall` (1).
const SHUTDOWN_DELAY_SECONDS: &str = "2";

pub(crate) fn run() -> anyhow::Result<()> {
    let venv = python::venv()?;
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .context("HAProxy is not installed: `apt-get install haproxy` (.ci/run does)")?;
    let binary = Profile::Debug.build()?;
    let dir = root().join("target/cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let postgres = postgres::find_or_start(false)?;
    let direct = postgres::fresh_database(postgres.url(), "warden_cluster")?;
    // The schema is migrated once, directly, as a deployment step; the instances reach the
    // database only through the pooler, where migrations cannot run.
    Launch::new(&binary, &dir).migrate(&direct)?;
    let bouncer = PgBouncer::start("cluster", postgres.url(), 8, 60)?;
    let pooled = bouncer.database_url("warden_cluster");

    let ports = [net::free_port()?, net::free_port()?];
    let mut instances = [
        Instance::start(&binary, &dir, "a", ports[0], &pooled)?,
        Instance::start(&binary, &dir, "b", ports[1], &pooled)?,
    ];
    let proxy_port = net::free_port()?;
    let _proxy = HaProxy::start(&haproxy, &dir, proxy_port, ports)?;
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    wait_until_proxied(&proxy, ports)?;

    eprintln!("\n==> the cluster's guarantees, through HAProxy and on each instance");
    let mut check = Command::new(venv.join("bin/python"));
    check
        .arg(root().join("xtask/cluster/check.py"))
        .env("WARDEN_PROXY", &proxy)
        .env("WARDEN_A", instances[0].url())
        .env("WARDEN_B", instances[1].url());
    exec(check).context("the cluster check failed; logs in target/cluster/")?;

    eprintln!("\n==> a rolling restart under load, through HAProxy");
    let stop = dir.join("stop-load");
    let mut load = Command::new(venv.join("bin/python"));
    load.arg(root().join("xtask/cluster/load.py"))
        .env("WARDEN_PROXY", &proxy)
        .env("WARDEN_STOP", &stop);
    let mut load = load.spawn().context("cannot start the load")?;
    std::thread::sleep(Duration::from_secs(3));
    for instance in &mut instances {
        instance.restart(&binary, &dir, &pooled)?;
        wait_until_proxied(&proxy, ports)?;
        std::thread::sleep(Duration::from_secs(2));
    }
    std::fs::write(&stop, "")?;
    let status = load.wait()?;
    ensure!(
        status.success(),
        "requests failed during the rolling restart (the load's report is above); logs in \
         target/cluster/"
    );
    for instance in &instances {
        // The log of its first run, which was signalled.
        let path = instance.log_path(0);
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        ensure!(
            log.contains("draining") && log.contains("stopped"),
            "instance {} did not drain and stop cleanly; see {}",
            instance.name,
            path.display()
        );
    }
    drop(instances);
    drop(bouncer);
    postgres::drop_database(postgres.url(), "warden_cluster");
    eprintln!("\ncluster check passed");
    Ok(())
}

/// One `warden serve` of the cluster.
struct Instance {
    name: &'static str,
    port: u16,
    warden: Warden,
    /// How many times it has been started.
    starts: u32,
}

impl Instance {
    fn start(
        binary: &Path,
        dir: &Path,
        name: &'static str,
        port: u16,
        database_url: &str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            name,
            port,
            warden: serve(binary, dir, name, 0, port, database_url)?,
            starts: 1,
        })
    }

    fn url(&self) -> String {
        self.warden.url()
    }

    fn log_path(&self, start: u32) -> PathBuf {
        root()
            .join("target/cluster")
            .join(format!("warden-{}-{start}.log", self.name))
    }

    /// SIGTERM, a clean exit after the drain, and a new process on the same port.
    fn restart(&mut self, binary: &Path, dir: &Path, database_url: &str) -> anyhow::Result<()> {
        eprintln!("==> SIGTERM to instance {}", self.name);
        let status = self
            .warden
            .terminate()
            .with_context(|| format!("instance {}", self.name))?;
        ensure!(
            status.success(),
            "instance {} exited with {status}",
            self.name
        );
        eprintln!("==> starting instance {} again", self.name);
        self.warden = serve(binary, dir, self.name, self.starts, self.port, database_url)?;
        self.starts += 1;
        Ok(())
    }
}

/// Instance `name`'s `start`th run (from 0), logging to `warden-<name>-<start>.log`, ready.
fn serve(
    binary: &Path,
    dir: &Path,
    name: &str,
    start: u32,
    port: u16,
    database_url: &str,
) -> anyhow::Result<Warden> {
    Launch::new(binary, dir)
        .args(&["serve", "--no-migrate"])
        .with_path()
        .env("DATABASE_URL", database_url)
        .env("DATABASE_TRANSACTION_POOLING", "true")
        .env("JWT_SECRET", JWT_SECRET)
        .env("SHUTDOWN_DELAY_SECONDS", SHUTDOWN_DELAY_SECONDS)
        // HAProxy appends the client's address to X-Forwarded-For.
        .env("TRUSTED_PROXY_HOPS", "1")
        // The checks and the load register many accounts from one address; the failed-login
        // budgets keep their defaults (5 per username, 20 per address).
        .env("REGISTRATIONS_PER_ADDRESS", "1000")
        .env("RUST_LOG", "info")
        .serve(
            port,
            &dir.join(format!("warden-{name}-{start}.log")),
            Probe::Ready,
        )
        .with_context(|| format!("instance {name}"))
}

/// `GET path` on 127.0.0.1:`port`: (status, body), status 0 without an answer.
fn get(port: u16, path: &str) -> (u16, String) {
    net::http(&format!("127.0.0.1:{port}"), "GET", path, &[], "").unwrap_or_default()
}

/// Waits until HAProxy sends requests to both instances again: its stats page (on the
/// frontend's port) lists them UP.
fn wait_until_proxied(proxy: &str, ports: [u16; 2]) -> anyhow::Result<()> {
    let port: u16 = proxy.rsplit(':').next().unwrap_or_default().parse()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // HAProxy's stats as CSV.
        let (_, csv) = get(port, "/haproxy-stats;csv");
        let up = csv
            .lines()
            .filter(|line| line.starts_with("wardens,a,") || line.starts_with("wardens,b,"))
            .filter(|line| line.split(',').nth(17) == Some("UP"))
            .count();
        if up == 2 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "HAProxy does not see both instances (ports {ports:?}) up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HAProxy in the foreground, stopped on drop.
struct HaProxy(Child);

impl HaProxy {
    fn start(binary: &Path, dir: &Path, port: u16, backends: [u16; 2]) -> anyhow::Result<Self> {
        // Round robin; an instance is taken out at its first failed readiness check (every
        // 300 ms) and put back after two good ones. A request whose connection to an instance
        // fails (it never reached it) is sent to the other; nothing else is retried.
        let config = format!(
            "global\n\
             \x20   maxconn 1000\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 2s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             \x20   retries 2\n\
             \x20   option redispatch\n\
             \x20   retry-on conn-failure\n\
             frontend api\n\
             \x20   bind 127.0.0.1:{port}\n\
             \x20   option forwardfor\n\
             \x20   stats enable\n\
             \x20   stats uri /haproxy-stats\n\
             \x20   default_backend wardens\n\
             backend wardens\n\
             \x20   balance roundrobin\n\
             \x20   option httpchk GET /health/ready\n\
             \x20   http-check expect status 200\n\
             \x20   default-server inter 300ms fall 1 rise 2\n\
             \x20   server a 127.0.0.1:{a} check\n\
             \x20   server b 127.0.0.1:{b} check\n",
            a = backends[0],
            b = backends[1],
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let child = Command::new(binary)
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("haproxy.log"))?))
            .spawn()
            .context("cannot start HAProxy")?;
        let haproxy = Self(child);
        ensure!(
            net::listening_within(port, Duration::from_secs(10)),
            "HAProxy did not come up; see target/cluster/haproxy.log"
        );
        Ok(haproxy)
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
