//! Building and running the server. `main` and the tests use the same [`Application::build`],
//! which binds its listeners (port 0 allowed) before returning, so callers learn the ports.

use crate::audit::note::LogKey;
use crate::config::Config;
use crate::crypto::{MasterKey, MasterKeyring};
use crate::domain::Principal;
use crate::http::{self, AppState, Authenticator};
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::nonce::{MemoryNonceStore, NonceStore, RedisNonceStore};
use crate::redis_conn::Redis;
use crate::server;
use crate::service::{
    check_master_keyring, database_is_initialised, AbuseControl, KeySettings, MasterKeyCheck,
    Vault, VaultParts, VerifierState,
};
use crate::spikes::{SpikeDetector, SpikeSettings};
use crate::store::{self, Store};
use crate::time::{Clock, SystemClock};
use anyhow::Context;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use zeroize::Zeroizing;

pub struct Application {
    vault: Arc<Vault>,
    api_listener: TcpListener,
    metrics_listener: TcpListener,
    api: axum::Router,
    metrics: axum::Router,
    max_connections: usize,
    timeouts: server::Timeouts,
    grace: Duration,
    verify_interval: Duration,
    tls: Option<ListenerTls>,
}

/// The API listener's TLS and the SIGHUP stream that reloads it, taken at build time so a
/// SIGHUP that arrives as soon as the server reports its address reloads instead of killing.
struct ListenerTls {
    tls: Arc<server::Tls>,
    #[cfg(unix)]
    hangups: tokio::signal::unix::Signal,
}

/// Opens the configured database and the vault over it, with the master key checked, and no
/// abuse control (the admin CLI and tests that act as it).
pub async fn open_vault(config: &Config) -> anyhow::Result<Arc<Vault>> {
    let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
    open_vault_with(
        config,
        metrics,
        AbuseControl::default(),
        Arc::new(SystemClock),
        false,
    )
    .await
}

/// [`open_vault`] on `clock`: tests that set the time an admin operation happens at.
pub async fn open_vault_at(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Vault>> {
    let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
    open_vault_with(config, metrics, AbuseControl::default(), clock, false).await
}

async fn open_vault_with(
    config: &Config,
    metrics: Arc<Metrics>,
    abuse: AbuseControl,
    clock: Arc<dyn Clock>,
    serving: bool,
) -> anyhow::Result<Arc<Vault>> {
    let storage = &config.storage;
    let migrations_url = storage.migrations_database_url.as_deref();
    // Only `serve` creates a database and, on the embedded default, its keys (DESIGN §20).
    let store = match serving {
        true => {
            store::connect_service(
                &storage.database_url,
                migrations_url,
                storage.max_connections,
            )
            .await
        }
        false => {
            store::connect_existing(
                &storage.database_url,
                migrations_url,
                storage.max_connections,
            )
            .await
        }
    }
    .context("cannot open the database")?;
    let mut master = load_master_keyring(config, store.as_ref(), serving).await?;
    if check_master_keyring(store.as_ref(), &mut master, clock.now_secs()).await?
        == MasterKeyCheck::Recorded
    {
        tracing::info!("recorded the master key's fingerprint in a new database");
    }
    // Only a serving vault signs checkpoints; the admin CLI needs no log key.
    let log_key = match serving {
        true => Some(load_log_key(config)?),
        false => None,
    };
    let platform_admins = config
        .auth
        .platform_admins
        .iter()
        .map(|p| Principal::parse(p))
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(Vault::new(VaultParts {
        store,
        master,
        scopes: config.scope_table()?,
        max_payload_bytes: config.server.max_payload_bytes,
        platform_admins,
        metrics,
        abuse,
        clock,
        log_key,
        objects: crate::objects::from_config(&config.object_store, &default_object_root(config))?,
        inline_max_bytes: config.storage.inline_max_bytes,
        object_lease_secs: object_lease_secs(config),
        max_large_uploads: usize::try_from(config.storage.max_large_uploads).unwrap_or(1),
        large_upload_wait: Duration::from_secs(config.server.request_timeout_secs),
        retention: crate::retention::Settings {
            configured: crate::retention::configured(&config.retention.policies)
                .map_err(anyhow::Error::msg)?,
            batch_size: i64::from(config.retention.batch_size),
            sweep_interval_secs: config.retention.sweep_interval_secs,
        },
        keys: KeySettings {
            max_age_days: i64::from(config.keys.max_age_days),
            warn_age_days: i64::from(config.keys.warn_age_days),
            rewrap_batch_size: i64::from(config.keys.rewrap_batch_size),
            rewrap_pause: Duration::from_millis(config.keys.rewrap_pause_ms),
        },
    })?))
}

/// How long an upload may go without renewing its object's lease before the sweep may take
/// the object: far longer than any stall an upload survives (`server.request_timeout_secs`).
pub const OBJECT_LEASE_SECS: i64 = 900;

/// The lease actually used: [`OBJECT_LEASE_SECS`], or three stall limits when those are
/// longer, so that an upload still sending (a byte per stall limit) always renews in time.
fn object_lease_secs(config: &Config) -> i64 {
    let stall = i64::try_from(config.server.request_timeout_secs).unwrap_or(i64::MAX);
    OBJECT_LEASE_SECS.max(stall.saturating_mul(3))
}

/// Where `file://` objects go when `object_store.url` is unset: `objects/` beside the SQLite
/// database, else `./data/objects` (then several replicas must share it, or use S3).
fn default_object_root(config: &Config) -> std::path::PathBuf {
    let database = config
        .is_embedded()
        .then(|| crate::store::sqlite_database_file(&config.storage.database_url).ok())
        .flatten()
        .flatten();
    match database.as_deref().and_then(std::path::Path::parent) {
        Some(dir) => dir.join("objects"),
        None => std::path::PathBuf::from("./data/objects"),
    }
}

/// The wallet verifier for the configured prefix and (older clients') chain id.
pub(crate) fn wallet_verifier(config: &Config) -> anyhow::Result<data_vault_auth::WalletVerifier> {
    let chain_id = Some(config.auth.chain_id.as_str()).filter(|c| !c.is_empty());
    data_vault_auth::WalletVerifier::new(&config.auth.wallet_prefix, chain_id)
        .map_err(|e| anyhow::anyhow!("auth.wallet_prefix / auth.chain_id: {e}"))
}

/// The limiter and spike detector the configuration asks for.
fn abuse_control(
    config: &Config,
    redis: Option<Arc<Redis>>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<AbuseControl> {
    let limiter = match config.rate_limit.enabled {
        true => Some(Arc::new(Limiter::new(
            config.rate_limit.rates()?,
            redis.clone(),
            metrics,
        ))),
        false => None,
    };
    let spike = &config.denial_spike;
    let spikes = spike.enabled.then(|| {
        Arc::new(SpikeDetector::new(
            SpikeSettings {
                threshold: spike.threshold,
                window_secs: spike.window_secs,
                block_secs: spike.block_principal.then_some(spike.block_secs),
            },
            redis,
        ))
    });
    Ok(AbuseControl { limiter, spikes })
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds the server on `clock` (tests set the time instead of waiting for it).
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
        // First: a bad certificate is an operator's typo, to be told before any connection
        // to the database or Redis is tried.
        let tls = match (&config.server.tls_cert_file, &config.server.tls_key_file) {
            (Some(cert), Some(key)) => {
                warn_if_readable_by_others(key, "TLS key file");
                let tls = Arc::new(server::Tls::load(cert, key, clock.clone())?);
                metrics.tls_cert_expiry.set(tls.not_after());
                Some(ListenerTls {
                    tls,
                    #[cfg(unix)]
                    hangups: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                        .context("cannot listen for SIGHUP (TLS reload)")?,
                })
            }
            _ => None,
        };
        let redis = match &config.redis.url {
            Some(url) => {
                let redis = Arc::new(
                    Redis::new(url, &config.redis.key_prefix, metrics.clone())
                        .context("invalid redis.url")?,
                );
                redis.start_probe();
                if !redis.ping().await {
                    tracing::warn!(
                        "redis is not reachable at start-up; serving degraded on in-process state"
                    );
                }
                Some(redis)
            }
            None => None,
        };
        let abuse = abuse_control(config, redis.clone(), metrics.clone())?;
        let vault = open_vault_with(config, metrics, abuse, clock, true).await?;
        let built = vault
            .build_missing_trees()
            .await
            .context("cannot build the audit trees of chains written before them")?;
        if built > 0 {
            tracing::info!(
                chains = built,
                "built the Merkle trees of older audit chains"
            );
        }
        // A missing object store does not stop the vault: small blobs are still served, and
        // `/readyz` says `degraded` until it answers.
        let objects = vault.object_backend();
        match tokio::time::timeout(Duration::from_secs(5), objects.ping()).await {
            Ok(Ok(())) => {
                tracing::info!(objects = %objects.describe(), "large blobs go to the object store")
            }
            Ok(Err(e)) => {
                tracing::warn!(objects = %objects.describe(), error = %e, "the object store does not answer; large blobs get 503 until it does")
            }
            Err(_) => {
                tracing::warn!(objects = %objects.describe(), "the object store did not answer within 5 s; large blobs get 503 until it does")
            }
        }
        if !config.is_embedded() && config.object_store.url.is_none() {
            tracing::warn!(objects = %objects.describe(), "object_store.url is unset on PostgreSQL: large blobs go to a local directory, which every replica must share; configure s3:// for several replicas");
        }
        let local_nonces = MemoryNonceStore::new(config.auth.nonce_capacity);
        let nonces: Arc<dyn NonceStore> = match &redis {
            Some(redis) => Arc::new(RedisNonceStore::new(redis.clone(), local_nonces)),
            None => Arc::new(local_nonces),
        };
        let state = AppState {
            auth: Arc::new(Authenticator::new(
                vault.clone(),
                nonces,
                wallet_verifier(config)?,
            )),
            vault: vault.clone(),
            redis,
            client_ip_header: config.server.client_ip_header.clone(),
            upload_stall: Duration::from_secs(config.server.request_timeout_secs),
        };
        let api = http::api_router(
            state,
            Duration::from_secs(config.server.request_timeout_secs),
        );
        let metrics = http::metrics_router(vault.metrics().clone());
        let api = http::serve_browsers(
            api,
            &http::Serving {
                cors_allowed_origins: &config.server.cors_allowed_origins,
                tls: config.server.tls_cert_file.is_some(),
            },
        );
        server::check_descriptor_limit(
            config.server.max_connections,
            config.storage.max_connections,
        );
        let api_listener = TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let metrics_listener = TcpListener::bind(&config.server.metrics_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.metrics_listen))?;
        Ok(Self {
            vault: vault.clone(),
            api_listener,
            metrics_listener,
            api,
            metrics,
            max_connections: config.server.max_connections,
            timeouts: server::Timeouts {
                request: Duration::from_secs(config.server.request_timeout_secs),
                idle: Duration::from_secs(config.server.idle_timeout_secs),
            },
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            verify_interval: Duration::from_secs(config.audit.verify_interval_secs),
            tls,
        })
    }

    pub fn api_addr(&self) -> std::io::Result<SocketAddr> {
        self.api_listener.local_addr()
    }

    /// Whether the API listener speaks TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to the grace period) and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let metrics = self.vault.metrics().clone();
        let acceptor = self.tls.as_ref().map(|t| t.tls.acceptor());
        #[cfg(unix)]
        let reloader = self
            .tls
            .map(|t| tokio::spawn(server::reload_on_hangup(t.tls, t.hangups, metrics.clone())));
        let api = server::serve(
            self.api_listener,
            self.api,
            server::Settings {
                name: "api",
                max_connections: self.max_connections,
                timeouts: self.timeouts,
                metrics: metrics.clone(),
                tls: acceptor,
            },
            stop_rx.clone(),
        );
        let metrics = server::serve(
            self.metrics_listener,
            self.metrics,
            server::Settings {
                name: "metrics",
                max_connections: server::METRICS_MAX_CONNECTIONS,
                timeouts: self.timeouts,
                metrics,
                tls: None,
            },
            stop_rx,
        );
        let housekeeping = tokio::spawn(housekeeping(self.vault.clone()));
        let verifier = tokio::spawn(verify_audit_periodically(
            self.vault.clone(),
            self.verify_interval,
        ));
        let sweeper = tokio::spawn(retention_sweeper(self.vault.clone()));
        let objects = tokio::spawn(object_sweeper(self.vault.clone()));
        let rotations = tokio::spawn(rotation_worker(self.vault.clone()));
        let mut api = tokio::spawn(api);
        let mut metrics = tokio::spawn(metrics);
        // The accept loops end only when told to; one that ends earlier has panicked.
        tokio::select! {
            () = shutdown => {}
            result = &mut api => {
                result.context("API server failed")?;
                anyhow::bail!("API server stopped unexpectedly");
            }
            result = &mut metrics => {
                result.context("metrics server failed")?;
                anyhow::bail!("metrics server stopped unexpectedly");
            }
        }
        housekeeping.abort();
        verifier.abort();
        sweeper.abort();
        objects.abort();
        #[cfg(unix)]
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        rotations.abort();
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(self.grace, async {
            let (a, m) = tokio::join!(api, metrics);
            a.context("API server failed")?;
            m.context("metrics server failed")
        })
        .await;
        // Requests still in flight have handed their events over; commit them before exit.
        self.vault.flush_audit().await;
        match drained {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    grace_secs = self.grace.as_secs(),
                    "in-flight requests did not finish within the grace period"
                );
                Ok(())
            }
        }
    }
}

/// Periodic upkeep: bound the in-process limiter state, prune spent nonces and refresh the
/// key-age gauges.
async fn housekeeping(vault: Arc<Vault>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Some(limiter) = &vault.abuse().limiter {
            limiter.sweep();
        }
        if let Some(spikes) = &vault.abuse().spikes {
            let count = spikes.blocked_count(vault.clock().now_millis());
            vault.metrics().principals_blocked.set(count);
        }
        // Spent nonces are needed only while their request could still be replayed.
        match vault.store().prune_nonces(vault.clock().now_millis()).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "pruned spent nonces"),
            Err(e) => tracing::warn!(error = %e, "cannot prune spent nonces"),
        }
        // Sets the key-age gauges, and warns about keys due for rotation.
        if let Err(e) = vault.warn_about_key_ages().await {
            tracing::warn!(error = %e.cause_chain(), "cannot read key ages");
        }
        vault.refresh_retention_gauges().await;
    }
}

/// This replica's sweep of the object store (DESIGN §18): deletes the objects of failed or
/// crashed uploads and of deleted or shredded blobs, at once when an upload, a delete, a purge
/// or an erasure here leaves one behind, and otherwise every `OBJECT_SWEEP_SECS`.
async fn object_sweeper(vault: Arc<Vault>) {
    loop {
        match vault.collect_objects().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "object sweep removed unreferenced objects"),
            Err(e) => tracing::warn!(error = %e.cause_chain(), "object sweep failed; retrying"),
        }
        vault
            .object_sweep_due(Duration::from_secs(OBJECT_SWEEP_SECS))
            .await;
    }
}

/// How often the object sweep runs when no upload failed in between.
const OBJECT_SWEEP_SECS: u64 = 10;

/// The background purge sweep of this replica (DESIGN §12): every
/// `[retention] sweep_interval_secs`, the first one interval after start. Every replica runs
/// it; the store makes concurrent sweeps take disjoint blobs. Expiry is judged by the
/// vault's clock, not this timer's.
async fn retention_sweeper(vault: Arc<Vault>) {
    let secs = vault.sweep_interval_secs();
    if secs == 0 {
        tracing::info!("background retention sweep disabled (retention.sweep_interval_secs = 0)");
        return;
    }
    let period = Duration::from_secs(secs);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = vault.sweep_in_background().await {
            tracing::warn!(error = %e.cause_chain(), "retention sweep failed; retrying next interval");
        }
    }
}

/// How often a replica looks for rotations started elsewhere (or left by a crashed one).
const ROTATION_POLL: Duration = Duration::from_secs(2);

/// Carries running tenant key rotations on (DESIGN §15): at start-up (a rotation a crash
/// interrupted resumes), when one starts here, and every few seconds for those started on
/// other replicas. Every replica runs it; the store gives concurrent ones disjoint batches.
async fn rotation_worker(vault: Arc<Vault>) {
    loop {
        if let Err(e) = vault.advance_rotations().await {
            tracing::warn!(error = %e.cause_chain(), "key rotation step failed; retrying");
        }
        vault.rotation_started_or(ROTATION_POLL).await;
    }
}

/// Verifies the audit chains that changed since the last pass, every `interval` (DESIGN §16);
/// the first pass, at start-up, covers every chain.
async fn verify_audit_periodically(vault: Arc<Vault>, interval: Duration) {
    let mut state = VerifierState::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = vault.verify_changed_chains(&mut state).await {
            tracing::warn!(error = %e, "periodic audit verification could not run");
        }
    }
}

/// The log key from `audit.log_key_file`. Only the embedded default generates one (like the
/// master key); production must provide it.
pub fn load_log_key(config: &Config) -> anyhow::Result<LogKey> {
    let path = &config.audit.log_key_file;
    let name = &config.audit.log_name;
    if path.exists() {
        return read_key_file(path, "log key file", "audit.log_key_file", |text| {
            LogKey::from_hex(name, text)
        });
    }
    if !config.is_embedded() {
        anyhow::bail!(
            "no log key: set audit.log_key_file to a file holding 64 hex characters \
             (openssl rand -hex 32); production never generates one"
        );
    }
    let text = LogKey::generate_hex();
    write_new_key_file(path, &text)?;
    let key = LogKey::from_hex(name, &text).context("generated log key")?;
    tracing::warn!(
        path = %path.display(),
        verifier_key = %key.verifier(),
        "GENERATED A NEW AUDIT LOG KEY. Witnesses trust checkpoints signed by it: back it up \
         with the master key and give witnesses the verifier key"
    );
    Ok(key)
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The keyring: the active master key (see [`load_master_key`]) and the keys of
/// `keys.previous_master_key_files`, each of which must exist and hold 64 hex characters.
pub async fn load_master_keyring(
    config: &Config,
    store: &dyn Store,
    may_generate: bool,
) -> anyhow::Result<MasterKeyring> {
    let active = load_master_key(config, store, may_generate).await?;
    let mut previous = Vec::with_capacity(config.keys.previous_master_key_files.len());
    for path in &config.keys.previous_master_key_files {
        previous.push(read_key_file(
            path,
            "previous master key file",
            "keys.previous_master_key_files",
            MasterKey::from_hex,
        )?);
    }
    Ok(MasterKeyring::new(active, previous))
}

/// The master key from `keys.master_key`, else from `keys.master_key_file`. Only the embedded
/// default creates one, and only for a database that has never been used: a generated key
/// for an existing database would make its data unreadable.
pub async fn load_master_key(
    config: &Config,
    store: &dyn Store,
    may_generate: bool,
) -> anyhow::Result<MasterKey> {
    if let Some(key) = &config.keys.master_key {
        return MasterKey::from_hex(key.expose_secret())
            .context("keys.master_key (DATA_VAULT_KEYS__MASTER_KEY)");
    }
    let path = &config.keys.master_key_file;
    if path.exists() {
        return read_key_file(
            path,
            "master key file",
            "keys.master_key_file",
            MasterKey::from_hex,
        );
    }
    if !may_generate {
        anyhow::bail!(
            "no master key file at {}: set keys.master_key_file to the server's (or \
             DATA_VAULT_KEYS__MASTER_KEY). Only `data-vault serve` generates one, for a new \
             embedded vault; a new key here would not open the server's data",
            path.display()
        );
    }
    if !config.is_embedded() {
        anyhow::bail!(
            "no master key: set keys.master_key_file to a file holding 64 hex characters \
             (openssl rand -hex 32) or DATA_VAULT_KEYS__MASTER_KEY; production never generates one"
        );
    }
    if database_is_initialised(store).await? {
        anyhow::bail!(
            "the master key file {} is missing but the database already holds data sealed \
             under a master key; restore the key file (see runbooks/backup-restore.md)",
            path.display()
        );
    }
    let text = MasterKey::generate_hex();
    write_new_key_file(path, &text)?;
    tracing::warn!(
        path = %path.display(),
        "GENERATED A NEW MASTER KEY. Everything stored is sealed under it: back this file up \
         separately from the database, keep it mode 0600, and never lose it"
    );
    MasterKey::from_hex(&text).context("generated master key")
}

fn write_new_key_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The key held in the file at `path` (the `what` of `setting`, for the messages): read into
/// memory that is zeroized after parsing, with a warning when others may read the file.
fn read_key_file<K, E>(
    path: &Path,
    what: &str,
    setting: &str,
    parse: impl FnOnce(&str) -> Result<K, E>,
) -> anyhow::Result<K>
where
    Result<K, E>: Context<K, E>,
{
    warn_if_readable_by_others(path, what);
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} {} ({setting})", path.display()))?,
    );
    parse(&text).with_context(|| format!("{what} {} ({setting})", path.display()))
}

fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the {what} is readable by group or others; chmod 600 it");
            }
        }
    }
}
