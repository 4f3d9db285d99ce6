//! TLS on the API listener (DESIGN §17): rustls, TLS 1.2 and 1.3, the certificate chain and
//! key read from PEM files. [`Tls::reload`] (on SIGHUP) swaps them for new handshakes only:
//! connections already open keep the session they have, and a file that does not load (or a
//! certificate that has expired or is not valid yet) leaves the previous certificate in place.

use crate::time::Clock;
use anyhow::{bail, Context};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// How far ahead of this machine's clock a certificate's start may be.
const NOT_BEFORE_SKEW_SECS: i64 = 300;

/// Largest certificate or key file read: a chain of a few certificates is a few KiB, so
/// anything near this is a wrong path (a log, a database), not a certificate.
const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// The API listener's TLS: the files it came from and the certificate now offered.
pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    clock: Arc<dyn Clock>,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    /// When the certificate now offered expires (Unix seconds).
    not_after: AtomicI64,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads `cert_file` and `key_file`, refusing a certificate not valid at `clock`'s time;
    /// an error names the file at fault and why.
    pub fn load(cert_file: &Path, key_file: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, not_after) = certified_key(&provider, cert_file, key_file, clock.now_secs())?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("cannot configure TLS 1.2 and 1.3")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The server speaks HTTP/1.1 only; saying so lets clients skip trying h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            clock,
            provider,
            current,
            not_after: AtomicI64::new(not_after),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// What accepts new connections; it always offers the latest certificate loaded.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads the files again and offers them to new connections. On error the certificate
    /// already in use stays, and the error names the file.
    pub fn reload(&self) -> anyhow::Result<()> {
        let (key, not_after) = certified_key(
            &self.provider,
            &self.cert_file,
            &self.key_file,
            self.clock.now_secs(),
        )?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        self.not_after.store(not_after, Ordering::Release);
        Ok(())
    }

    /// When the certificate now offered expires (Unix seconds).
    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::Acquire)
    }

    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }
}

/// Reloads `tls` on every SIGHUP `hangups` delivers, logging and counting the outcome.
#[cfg(unix)]
pub async fn reload_on_hangup(
    tls: Arc<Tls>,
    mut hangups: tokio::signal::unix::Signal,
    metrics: Arc<crate::metrics::Metrics>,
) {
    while hangups.recv().await.is_some() {
        let reloaded = tls.reload();
        metrics.tls_reload(reloaded.is_ok());
        metrics.tls_cert_expiry.set(tls.not_after());
        match reloaded {
            Ok(()) => tracing::info!(
                cert_file = %tls.cert_file().display(),
                "SIGHUP: reloaded the TLS certificate; new connections use it"
            ),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "SIGHUP: cannot reload the TLS certificate; still serving the previous one"
            ),
        }
    }
}

/// The certificate offered to every handshake, swapped whole by a reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The chain in `cert_file` with the key in `key_file`, checked to belong together and to be
/// valid at `now`; and when the certificate expires (Unix seconds).
fn certified_key(
    provider: &CryptoProvider,
    cert_file: &Path,
    key_file: &Path,
    now: i64,
) -> anyhow::Result<(CertifiedKey, i64)> {
    let cert_pem = read_bounded(cert_file, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "the TLS certificate file {} is not valid PEM: {e}",
                cert_file.display()
            )
        })?;
    let Some(leaf) = chain.first() else {
        bail!(
            "the TLS certificate file {} holds no CERTIFICATE block",
            cert_file.display()
        );
    };
    let not_after = valid_at(leaf, now)
        .with_context(|| format!("the TLS certificate in {}", cert_file.display()))?;
    // The key's bytes are wiped when dropped; rustls keeps only its parsed signing key.
    let key_pem = Zeroizing::new(read_bounded(key_file, "key")?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!(
            "the TLS key file {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key_file.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "the TLS key file {} cannot be used with the certificate in {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok((certified, not_after))
}

/// The certificate's expiry (Unix seconds), if it is valid at `now`: clients refuse one that
/// has expired or is not valid yet, so serving it would only fail every handshake.
fn valid_at(cert: &CertificateDer<'_>, now: i64) -> anyhow::Result<i64> {
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|e| anyhow::anyhow!("is not a valid X.509 certificate: {e}"))?;
    let validity = &parsed.tbs_certificate.validity;
    let secs = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let (not_before, not_after) = (secs(&validity.not_before), secs(&validity.not_after));
    // A certificate issued this minute may start a little after a clock that lags; clients
    // would judge it by their own clocks, so only one clearly not valid yet is refused.
    if now.saturating_add(NOT_BEFORE_SKEW_SECS) < not_before {
        bail!(
            "is not valid before {}",
            crate::time::to_rfc3339(not_before)
        );
    }
    if now > not_after {
        bail!("expired at {}", crate::time::to_rfc3339(not_after));
    }
    Ok(not_after)
}

fn read_bounded(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the TLS {what} file {}", path.display()))?
        .len();
    if size > MAX_PEM_FILE_BYTES {
        bail!(
            "the TLS {what} file {} is {size} bytes, more than a PEM file of this kind can be",
            path.display()
        );
    }
    std::fs::read(path)
        .with_context(|| format!("cannot read the TLS {what} file {}", path.display()))
}
