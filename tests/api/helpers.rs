//! Test harness: start the vault on port 0 against a fresh database (a new SQLite file, or a
//! new PostgreSQL database per test), and talk to it through typed per-endpoint helpers.

mod api;
mod db;
mod log;

pub use api::*;
pub use db::*;

use data_vault::cli::{ClientAuth, VaultClient};
use data_vault::config::Config;
use data_vault::domain::{ClientName, OrgId, Principal};
use data_vault::service::Caller;
use data_vault::startup::{open_vault, Application};
use data_vault_scopes::RoleSet;
use std::io::Write;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from an `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::postgres_url().is_some() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            }
        )*
    };
}

/// Says loudly that the current test did not run its checks and why, and records it for the
/// end-of-run summary: `tools/test` sets `DATA_VAULT_TEST_SKIPS` to a file, and prints how many
/// tests did not run and why after the run (nextest shows a skipped test as passed and hides
/// its output).
pub fn skipped(reason: &str) {
    eprintln!("\n*** SKIPPING: {reason} ***\n");
    let Ok(path) = std::env::var("DATA_VAULT_TEST_SKIPS") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_owned();
    let line = format!("{test}\t{reason}\n");
    // One short append per line: concurrent test processes do not interleave within it.
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = appended {
        eprintln!("cannot record the skip in {path}: {e}");
    }
}

/// A tool that `test` drives is missing (`why`). CI installs every one (.ci/run), so there it
/// fails the test; elsewhere the test is skipped, loudly and counted.
pub fn tool_missing(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the {test} cannot run: {why} (.ci/run installs it)");
    }
    skipped(&format!("{test}: {why}"));
}

/// Whether `program ARGS` runs and succeeds; when it does not, the tool is missing for `test`
/// ([`tool_missing`]).
pub fn tool_runs(test: &str, program: &str, args: &[&str]) -> bool {
    let found = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        tool_missing(
            test,
            &format!("`{program} {}` does not run", args.join(" ")),
        );
    }
    found
}

/// Whether the PostgreSQL client tools that `test` drives (`pg_dump`, `pg_restore`) run.
pub fn postgresql_client_runs(test: &str) -> bool {
    ["pg_dump", "pg_restore"]
        .iter()
        .all(|tool| tool_runs(test, tool, &["--version"]))
}

/// The PostgreSQL server for tests. Under CI it must be configured; elsewhere its absence
/// skips the PostgreSQL variants, loudly.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATA_VAULT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATA_VAULT_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
        }
        _ => {
            skipped("PostgreSQL: DATA_VAULT_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// The shared Redis for tests, like `postgres_url`: required under CI, else skipped loudly.
pub fn redis_url() -> Option<String> {
    match std::env::var("DATA_VAULT_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATA_VAULT_TEST_REDIS_URL is not set: Redis tests must run in CI")
        }
        _ => {
            skipped("Redis: DATA_VAULT_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A private `redis-server` on a free port, which a test may stop and start again.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one, or returns `None` (loudly) when `redis-server` is not installed outside CI.
    pub fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut redis = Self { port, child: None };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but redis-server cannot be started: {e}")
            }
            Err(e) => {
                skipped(&format!(
                    "Redis outage: redis-server cannot be started ({e})"
                ));
                None
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(std::io::Error::other(
            "redis-server did not start listening",
        ))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates a fresh database on the test server and returns its URL.
pub async fn fresh_postgres_database() -> (String, String) {
    use sqlx::Connection;
    let admin_url = postgres_url().expect("postgres configured");
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at DATA_VAULT_TEST_POSTGRES_URL: {e}"));
    let name = format!("dv_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}

pub fn drop_postgres_database(name: String) {
    // Drop runs outside any runtime guarantee, so this uses a thread with its own runtime.
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use sqlx::Connection;
            if let Ok(url) = std::env::var("DATA_VAULT_TEST_POSTGRES_URL") {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            }
        });
    })
    .join();
}

pub struct Credentials {
    pub principal: String,
    pub secret: Zeroizing<String>,
}

pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub config: Config,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    pg_database: Option<String>,
    /// The vault's clock, when the test moves time itself.
    pub clock: Option<std::sync::Arc<data_vault::time::ManualClock>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, customise: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_clock(backend, None, customise).await
    }

    /// A server on a manual clock set to now, which the test moves (`app.clock()`).
    pub async fn spawn_on_manual_clock(
        backend: Backend,
        customise: impl FnOnce(&mut Config),
    ) -> Self {
        use data_vault::time::{Clock, ManualClock, SystemClock};
        let clock = std::sync::Arc::new(ManualClock::at_millis(SystemClock.now_millis()));
        Self::spawn_with_clock(backend, Some(clock), customise).await
    }

    /// The manual clock of an app made by [`TestApp::spawn_on_manual_clock`].
    pub fn clock(&self) -> &data_vault::time::ManualClock {
        self.clock
            .as_deref()
            .expect("the app runs on a manual clock")
    }

    async fn spawn_with_clock(
        backend: Backend,
        clock: Option<std::sync::Arc<data_vault::time::ManualClock>>,
        customise: impl FnOnce(&mut Config),
    ) -> Self {
        let mut app = Self::unstarted_with_clock(backend, clock, customise).await;
        app.start().await;
        app
    }

    /// An app whose database exists, empty and not migrated, and whose server is not started
    /// yet ([`TestApp::start`]): for tests that first write a database as an older version did.
    pub async fn unstarted(backend: Backend) -> Self {
        Self::unstarted_with_clock(backend, None, |_| {}).await
    }

    async fn unstarted_with_clock(
        backend: Backend,
        clock: Option<std::sync::Arc<data_vault::time::ManualClock>>,
        customise: impl FnOnce(&mut Config),
    ) -> Self {
        log::init();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.server.metrics_listen = "127.0.0.1:0".into();
        config.keys.master_key_file = dir.path().join("master.key");
        config.audit.log_key_file = dir.path().join("log.key");
        let mut pg_database = None;
        match backend {
            Backend::Sqlite => {
                config.storage.database_url =
                    format!("sqlite://{}", dir.path().join("vault.db").display());
            }
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                config.storage.database_url = url;
                config.storage.max_connections = 8;
                pg_database = Some(name);
                let mut file = std::fs::File::create(&config.keys.master_key_file).unwrap();
                file.write_all(data_vault::crypto::MasterKey::generate_hex().as_bytes())
                    .unwrap();
                let log_key = data_vault::audit::note::LogKey::generate_hex();
                std::fs::write(&config.audit.log_key_file, log_key.as_bytes()).unwrap();
            }
        }
        // Each app's objects in its own directory, whichever database it runs on.
        config.object_store.url = Some(format!("file://{}", dir.path().join("objects").display()));
        customise(&mut config);
        Self {
            backend,
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            config,
            dir,
            http: reqwest::Client::new(),
            shutdown: None,
            handle: None,
            pg_database,
            clock,
        }
    }

    pub async fn start(&mut self) {
        let application = match &self.clock {
            Some(clock) => Application::build_with_clock(&self.config, clock.clone())
                .await
                .unwrap(),
            None => Application::build(&self.config).await.unwrap(),
        };
        self.addr = application.api_addr().unwrap();
        self.metrics_addr = application.metrics_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.handle = Some(tokio::spawn(application.run_until(async {
            let _ = rx.await;
        })));
    }

    /// Stops the server (graceful shutdown) and starts it again on the same database and key.
    pub async fn restart(&mut self) {
        self.stop().await;
        // The restarted server binds new ports.
        self.config.server.listen = "127.0.0.1:0".into();
        self.start().await;
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The directory of the app's `file://` object store.
    pub fn objects_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("objects")
    }

    /// Registers an HMAC client the way `data-vault admin client create` does.
    pub async fn create_client(&self, name: &str) -> Credentials {
        let vault = open_vault(&self.config).await.unwrap();
        let name = ClientName::parse(name).unwrap();
        let secret = vault
            .create_client(&Caller::local_admin().unwrap(), &name)
            .await
            .unwrap();
        Credentials {
            principal: name.as_str().to_owned(),
            secret,
        }
    }

    /// Creates an org with members and roles, the way the admin CLI does at bootstrap.
    pub async fn create_org(&self, org: &str, members: &[(&str, &str)]) {
        let vault = open_vault(&self.config).await.unwrap();
        let admin = Caller::local_admin().unwrap();
        let org = OrgId::parse(org).unwrap();
        vault.create_org(&admin, &org).await.unwrap();
        for (principal, roles) in members {
            let principal = Principal::parse(principal).unwrap();
            let roles = RoleSet::parse_list(roles).unwrap();
            vault
                .set_member(&admin, &org, &principal, roles)
                .await
                .unwrap();
        }
    }

    /// The API as the HMAC client `creds` calls it.
    pub fn client(&self, creds: &Credentials) -> Api {
        Api::from(hmac_client(&self.url(""), creds))
    }

    /// The API as a caller without credentials calls it.
    pub fn anonymous(&self) -> Anonymous {
        Anonymous::with_client(self.http.clone(), &self.url(""))
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of an unlabelled metric.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
        if let Some(name) = self.pg_database.take() {
            drop_postgres_database(name);
        }
    }
}

/// An age identity and its recipient.
pub fn age_identity() -> (age::x25519::Identity, age::x25519::Recipient) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    (identity, recipient)
}

/// A real age envelope of exactly `size` bytes. X25519 headers carry a random-length
/// "grease" stanza, so their size varies; passphrase (scrypt) headers do not, which makes the
/// overhead measurable once and the plaintext trimmed to fit. A low work factor keeps it fast.
pub fn age_envelope_of_size(size: usize) -> Vec<u8> {
    let mut recipient = age::scrypt::Recipient::new(secrecy::SecretString::from("test passphrase"));
    recipient.set_work_factor(2);
    let encrypt = |len: usize| {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::with_capacity(len + 1024);
        let mut writer = encryptor.wrap_output(&mut out).unwrap();
        writer.write_all(&vec![0x5a; len]).unwrap();
        writer.finish().unwrap();
        out
    };
    let probe = size.saturating_sub(4096);
    let overhead = encrypt(probe).len() - probe;
    let envelope = encrypt(size - overhead);
    assert_eq!(
        envelope.len(),
        size,
        "could not hit the exact envelope size"
    );
    envelope
}

/// A signing client of the server at `base` with `creds`.
fn hmac_client(base: &str, creds: &Credentials) -> VaultClient {
    VaultClient::new(
        base,
        ClientAuth::Hmac {
            principal: creds.principal.clone(),
            secret: creds.secret.clone(),
        },
    )
    .unwrap()
}

/// The JSON error body of a response, with the request id checked against the header.
pub async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let header_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("every response carries X-Request-Id");
    let body: serde_json::Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(
        body["request_id"], header_id,
        "body and header request ids agree"
    );
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    (status, body["code"].as_str().unwrap().to_owned())
}

/// Reads blob `id` `count` times as `creds`, concurrently, alternating between `servers`
/// (a client of its own per read); every read must answer 200.
pub async fn read_concurrently(
    servers: &[ServerProcess],
    creds: &Credentials,
    id: &str,
    count: usize,
) {
    let mut tasks = Vec::new();
    for i in 0..count {
        let client = servers[i % servers.len()].client(creds);
        let id = id.to_owned();
        tasks.push(tokio::spawn(async move {
            client
                .get_blob(&id, &ReadQuery::default())
                .await
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
}

/// The real `data-vault serve` in its own process, on the test app's database and key.
pub struct ServerProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The process's log (its stderr), line by line, for tests that check what is logged.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The value of field `name` of a server log line: `name=VALUE` in the text format,
/// `"name":"VALUE"` in the JSON one.
fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let text = format!("{name}=");
    let json = format!("\"{name}\":\"");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(text.as_str()))
        .or_else(|| line.split(json.as_str()).nth(1)?.split('"').next())
}

/// The object-store settings of `config` as a server process reads them from its environment.
pub fn object_store_env(config: &Config) -> Vec<(&'static str, String)> {
    let store = &config.object_store;
    [
        ("DATA_VAULT_OBJECT_STORE__URL", &store.url),
        ("DATA_VAULT_OBJECT_STORE__ENDPOINT", &store.endpoint),
        ("DATA_VAULT_OBJECT_STORE__REGION", &store.region),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
    .chain([(
        "DATA_VAULT_STORAGE__INLINE_MAX_BYTES",
        config.storage.inline_max_bytes.to_string(),
    )])
    .collect()
}

impl ServerProcess {
    pub fn start(app: &TestApp) -> Self {
        Self::start_with(app, &[])
    }

    pub fn start_with(app: &TestApp, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_data-vault"))
            .arg("serve")
            .env(
                "DATA_VAULT_STORAGE__DATABASE_URL",
                &app.config.storage.database_url,
            )
            .env(
                "DATA_VAULT_KEYS__MASTER_KEY_FILE",
                &app.config.keys.master_key_file,
            )
            .env(
                "DATA_VAULT_AUDIT__LOG_KEY_FILE",
                &app.config.audit.log_key_file,
            )
            .envs(object_store_env(&app.config))
            .env("DATA_VAULT_LOG", "info")
            // The caller's settings win over the app's.
            .envs(env.iter().copied())
            .env("DATA_VAULT_SERVER__LISTEN", "127.0.0.1:0")
            .env("DATA_VAULT_SERVER__METRICS_LISTEN", "127.0.0.1:0")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        let show = std::env::var_os("TEST_LOG").is_some();
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if log_field(&line, "api").is_some() {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                if show {
                    eprintln!("{line}");
                }
                let mut kept = kept.lock().unwrap();
                if kept.len() < 100_000 {
                    kept.push(line);
                }
            }
        });
        let listening = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("server process did not report its address");
        let field = |name: &str| {
            log_field(&listening, name)
                .and_then(|addr| addr.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {listening}"))
        };
        let (addr, metrics_addr) = (field("api"), field("metrics"));
        Self {
            child,
            addr,
            metrics_addr,
            log,
        }
    }

    /// The log lines so far that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Waits until the process has logged `count` lines containing `needle`; returns them.
    /// (A request's line is written as its response leaves, so it may trail the answer.)
    pub async fn wait_for_log(&self, needle: &str, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let lines = self.log_lines_with(needle);
            if lines.len() >= count {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server never logged {needle:?} {count} time(s)");
    }

    /// The API of this process as the HMAC client `creds` calls it.
    pub fn client(&self, creds: &Credentials) -> Api {
        Api::from(hmac_client(&format!("http://{}", self.addr), creds))
    }

    /// The API of this process as a caller without credentials calls it.
    pub fn anonymous(&self) -> Anonymous {
        Anonymous::at(&format!("http://{}", self.addr))
    }

    /// The process's peak resident set (`VmHWM` of /proc), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// Sends SIGHUP (reload the TLS certificate).
    pub fn hangup(&self) {
        let status = std::process::Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGKILL (a crash: nothing is drained, flushed or cleaned up) and waits for the
    /// process to end.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            !status.success(),
            "the killed server exited cleanly: {status}"
        );
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 60 s) until `done` holds.
pub async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("still not so after 60 s: {what}");
}
