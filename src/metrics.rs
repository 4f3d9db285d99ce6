//! Prometheus metrics under `virtengine_data_vault_*` (DESIGN §9), served on their own
//! listener. Labels are bounded: scopes come from the scope table, never a principal or id.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    access: IntCounterVec,
    access_denied: IntCounterVec,
    pub audit_failures: IntCounter,
    auth_failures: IntCounterVec,
    request_duration: HistogramVec,
    /// 1 while Redis is unreachable and shared state has fallen back to in-process state.
    pub redis_fallback: IntGauge,
    pub redis_errors: IntCounter,
    rate_limited: IntCounterVec,
    replays: IntCounterVec,
    denial_spikes: IntCounterVec,
    pub principals_blocked: IntGauge,
    /// Chains the periodic verification found invalid (DESIGN §16).
    pub audit_invalid_chains: IntGauge,
    /// When the periodic verification last completed, in Unix seconds.
    pub audit_last_verified: IntGauge,
    key_age: IntGaugeVec,
    connections_open: IntGaugeVec,
    connections_max: IntGaugeVec,
    connections_cut: IntCounterVec,
    accept_errors: IntCounterVec,
    /// SIGHUP reloads of the TLS certificate, by outcome (DESIGN §17).
    tls_reloads: IntCounterVec,
    /// When the API listener's TLS certificate expires (Unix seconds; 0 without TLS).
    pub tls_cert_expiry: IntGauge,
    /// Blobs destroyed by sweeps and erasure, by purge method.
    purged: IntCounterVec,
    /// Live blobs under legal hold.
    pub blobs_held: IntGauge,
    /// Expired blobs a sweep would purge (not held), and how long the oldest has waited.
    pub expired_pending_purge: IntGauge,
    pub oldest_pending_purge_seconds: IntGauge,
    /// When this replica last finished a sweep that purged (not a dry run).
    pub last_sweep: IntGauge,
    /// Envelope bytes of large blobs moved through the object store, by direction (DESIGN §18).
    object_bytes: IntCounterVec,
    /// Objects the sweep deleted (failed uploads, deleted and shredded blobs).
    objects_collected: IntCounter,
    /// Reads of a large blob that failed after the answer began (the client's body is cut).
    object_read_failures: IntCounter,
    /// Objects awaiting the sweep, uploads in flight included.
    pub object_gc_pending: IntGauge,
    /// Running key rotations that cannot complete: data keys that do not open.
    pub key_rotations_blocked: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let access = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_access_total",
                "Blob operations, authorised or not, by scope, action and outcome.",
            ),
            &["scope", "action", "success"],
        )?;
        let access_denied = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_access_denied_total",
                "Authorisation denials by scope and action (not 404s, not 5xx).",
            ),
            &["scope", "action"],
        )?;
        let audit_failures = IntCounter::new(
            "virtengine_data_vault_audit_failures_total",
            "Audit events that could not be written durably.",
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_auth_failures_total",
                "Rejected authentication attempts by scheme and reason.",
            ),
            &["scheme", "reason"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "virtengine_data_vault_http_request_duration_seconds",
                "HTTP request latency by matched route, method and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method", "status"],
        )?;
        let redis_fallback = IntGauge::new(
            "virtengine_data_vault_redis_fallback",
            "1 while Redis is unreachable and the vault runs on in-process state.",
        )?;
        let redis_errors = IntCounter::new(
            "virtengine_data_vault_redis_errors_total",
            "Redis commands that failed or timed out.",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_rate_limited_total",
                "Requests refused with 429, by the limit that refused them.",
            ),
            &["limit"],
        )?;
        let replays = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_replays_total",
                "Replayed nonces refused.",
            ),
            &["scheme"],
        )?;
        let denial_spikes = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_denial_spikes_total",
                "Bursts of denials by one principal or against one org within the window.",
            ),
            &["kind"],
        )?;
        let principals_blocked = IntGauge::new(
            "virtengine_data_vault_principals_blocked",
            "Principals temporarily blocked after a denial spike.",
        )?;
        let audit_invalid_chains = IntGauge::new(
            "virtengine_data_vault_audit_invalid_chains",
            "Audit chains the periodic verification found invalid (hash chain, tree or consistency).",
        )?;
        let audit_last_verified = IntGauge::new(
            "virtengine_data_vault_audit_last_verified_timestamp_seconds",
            "When the periodic audit verification last completed (Unix seconds; 0 before the first).",
        )?;
        let key_age = IntGaugeVec::new(
            Opts::new(
                "virtengine_data_vault_key_age_seconds",
                "Age of the oldest active key of each kind (tenant, master, client_secret).",
            ),
            &["kind"],
        )?;
        let connections_open = IntGaugeVec::new(
            Opts::new(
                "virtengine_data_vault_http_connections_open",
                "Open HTTP connections by listener.",
            ),
            &["listener"],
        )?;
        let connections_max = IntGaugeVec::new(
            Opts::new(
                "virtengine_data_vault_http_connections_max",
                "The connection limit of each listener; clients beyond it wait to be accepted.",
            ),
            &["listener"],
        )?;
        let connections_cut = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_http_connections_cut_total",
                "Connections closed by the server for being too slow or idle, by reason.",
            ),
            &["listener", "reason"],
        )?;
        let accept_errors = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_http_accept_errors_total",
                "Failed accepts (such as running out of file descriptors), by listener.",
            ),
            &["listener"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_tls_reloads_total",
                "SIGHUP reloads of the API listener's TLS certificate, by outcome (ok, failed).",
            ),
            &["outcome"],
        )?;
        let tls_cert_expiry = IntGauge::new(
            "virtengine_data_vault_tls_cert_expiry_timestamp_seconds",
            "When the API listener's TLS certificate expires (Unix seconds; 0 without TLS).",
        )?;
        registry.register(Box::new(tls_cert_expiry.clone()))?;
        let purged = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_blobs_purged_total",
                "Blobs destroyed by retention sweeps and erasure, by purge method.",
            ),
            &["method"],
        )?;
        let blobs_held = IntGauge::new(
            "virtengine_data_vault_blobs_held",
            "Live blobs under legal hold.",
        )?;
        let expired_pending_purge = IntGauge::new(
            "virtengine_data_vault_blobs_expired_pending_purge",
            "Expired blobs, not held, that a sweep has yet to purge.",
        )?;
        let oldest_pending_purge_seconds = IntGauge::new(
            "virtengine_data_vault_blobs_expired_oldest_pending_seconds",
            "How long ago the oldest expired blob awaiting purge expired (0 when none).",
        )?;
        let last_sweep = IntGauge::new(
            "virtengine_data_vault_retention_last_sweep_timestamp_seconds",
            "Unix time this replica last finished a purge sweep (dry runs excluded).",
        )?;
        let object_bytes = IntCounterVec::new(
            Opts::new(
                "virtengine_data_vault_object_bytes_total",
                "Envelope bytes of large blobs written to (in) and read from (out) the object store.",
            ),
            &["direction"],
        )?;
        let objects_collected = IntCounter::new(
            "virtengine_data_vault_objects_collected_total",
            "Objects deleted by the sweep: failed or crashed uploads, deleted and shredded blobs.",
        )?;
        let object_read_failures = IntCounter::new(
            "virtengine_data_vault_object_read_failures_total",
            "Reads of a large blob that failed after the answer began, cutting the client's body.",
        )?;
        let object_gc_pending = IntGauge::new(
            "virtengine_data_vault_object_gc_pending",
            "Objects awaiting the sweep, uploads in flight included.",
        )?;
        registry.register(Box::new(object_bytes.clone()))?;
        registry.register(Box::new(objects_collected.clone()))?;
        registry.register(Box::new(object_read_failures.clone()))?;
        registry.register(Box::new(object_gc_pending.clone()))?;
        let key_rotations_blocked = IntGauge::new(
            "virtengine_data_vault_key_rotations_blocked",
            "Running tenant key rotations that cannot complete: data keys that do not open.",
        )?;
        registry.register(Box::new(key_rotations_blocked.clone()))?;
        registry.register(Box::new(purged.clone()))?;
        for gauge in [
            &blobs_held,
            &expired_pending_purge,
            &oldest_pending_purge_seconds,
            &last_sweep,
        ] {
            registry.register(Box::new(gauge.clone()))?;
        }
        for collector in [
            &rate_limited,
            &replays,
            &denial_spikes,
            &connections_cut,
            &accept_errors,
            &tls_reloads,
        ] {
            registry.register(Box::new(collector.clone()))?;
        }
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_max.clone()))?;
        registry.register(Box::new(principals_blocked.clone()))?;
        registry.register(Box::new(audit_invalid_chains.clone()))?;
        registry.register(Box::new(audit_last_verified.clone()))?;
        registry.register(Box::new(key_age.clone()))?;
        registry.register(Box::new(redis_fallback.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(access.clone()))?;
        registry.register(Box::new(access_denied.clone()))?;
        registry.register(Box::new(audit_failures.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        Ok(Self {
            registry,
            access,
            access_denied,
            audit_failures,
            auth_failures,
            request_duration,
            redis_fallback,
            redis_errors,
            rate_limited,
            replays,
            denial_spikes,
            principals_blocked,
            audit_invalid_chains,
            audit_last_verified,
            key_age,
            connections_open,
            connections_max,
            connections_cut,
            accept_errors,
            tls_reloads,
            tls_cert_expiry,
            purged,
            blobs_held,
            expired_pending_purge,
            oldest_pending_purge_seconds,
            last_sweep,
            object_bytes,
            objects_collected,
            object_read_failures,
            object_gc_pending,
            key_rotations_blocked,
        })
    }

    pub fn object_bytes(&self, direction: &str, count: u64) {
        self.object_bytes
            .with_label_values(&[direction])
            .inc_by(count);
    }

    pub fn object_collected(&self) {
        self.objects_collected.inc();
    }

    pub fn object_read_failed(&self) {
        self.object_read_failures.inc();
    }

    pub fn purged(&self, method: &str, count: u64) {
        self.purged.with_label_values(&[method]).inc_by(count);
    }

    pub fn access(&self, scope: &str, action: &str, success: bool) {
        let success = if success { "true" } else { "false" };
        self.access
            .with_label_values(&[scope, action, success])
            .inc();
    }

    pub fn denied(&self, scope: &str, action: &str) {
        self.access_denied.with_label_values(&[scope, action]).inc();
    }

    pub fn auth_failure(&self, scheme: &str, reason: &str) {
        self.auth_failures
            .with_label_values(&[scheme, reason])
            .inc();
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.request_duration
            .with_label_values(&[route, method, &status.to_string()])
            .observe(seconds);
    }

    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }

    pub fn replayed(&self, scheme: &str) {
        self.replays.with_label_values(&[scheme]).inc();
    }

    pub fn denial_spike(&self, kind: &str) {
        self.denial_spikes.with_label_values(&[kind]).inc();
    }

    /// `kind` is `tenant`, `master` or `client_secret` (DESIGN §15).
    pub fn set_key_age(&self, kind: &str, seconds: i64) {
        self.key_age.with_label_values(&[kind]).set(seconds);
    }

    pub fn connection_opened(&self, listener: &str) {
        self.connections_open.with_label_values(&[listener]).inc();
    }

    pub fn connection_closed(&self, listener: &str) {
        self.connections_open.with_label_values(&[listener]).dec();
    }

    pub fn tls_reload(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.tls_reloads.with_label_values(&[outcome]).inc();
    }

    pub fn connection_cut(&self, listener: &str, reason: &str) {
        self.connections_cut
            .with_label_values(&[listener, reason])
            .inc();
    }

    pub fn set_max_connections(&self, listener: &str, max: usize) {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.connections_max.with_label_values(&[listener]).set(max);
    }

    pub fn accept_error(&self, listener: &str) {
        self.accept_errors.with_label_values(&[listener]).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
