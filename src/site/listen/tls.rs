//! TLS: the certificate and key files, read with rustls' PEM support and checked as a pair, and
//! swapped for the files' new contents on SIGHUP (a bad new pair keeps the one in use).

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

use crate::server::Shutdown;

/// Certificate and key files larger than this are refused (a PEM chain is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The PEM files of the server certificate (chain) and its private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    File(PathBuf, String),
    #[error("{cert} and {key}: {why}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// The certificate the TLS listener presents. [`TlsCert::reload`] swaps it for the one now in
/// the files, so a renewed certificate is used without a restart; handshakes already under way
/// keep the one they started with.
#[derive(Debug)]
pub struct TlsCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl TlsCert {
    /// Reads and checks the certificate and key (the key must belong to the certificate).
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = read_pair(&files, &provider)?;
        Ok(Arc::new(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again. On any error the certificate in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_pair(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// A TLS acceptor that presents whatever certificate is current at each handshake.
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.pair_error(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // HTTP/1.1 only: the server speaks nothing else.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn pair_error(&self, why: String) -> TlsError {
        TlsError::Pair {
            cert: self.files.cert.clone(),
            key: self.files.key.clone(),
            why,
        }
    }
}

impl ResolvesServerCert for TlsCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_pem(&files.cert)?;
    let key_pem = read_pem(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File(files.cert.clone(), format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::File(
            files.cert.clone(),
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::File(files.key.clone(), format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        why: e.to_string(),
    })
}

/// Reads a small regular file (a FIFO or a device named by mistake is refused, not waited on).
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let fail = |why: String| TlsError::File(path.to_path_buf(), why);
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(fail(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES).read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Reloads the certificate on every SIGHUP until shutdown. The handler is installed before
/// this returns, so a SIGHUP sent afterwards never takes the default action (ending the
/// process).
pub fn reload_on_sighup(cert: Arc<TlsCert>, shutdown: Shutdown) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            let stop = shutdown.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    received = hangups.recv() => {
                        if received.is_none() {
                            break;
                        }
                        let cert = cert.clone();
                        match tokio::task::spawn_blocking(move || cert.reload()).await {
                            Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                            Ok(Err(error)) => tracing::error!(
                                %error,
                                "SIGHUP: cannot reload the TLS certificate; keeping the one in use"
                            ),
                            Err(error) => tracing::error!(%error, "SIGHUP: reload task failed"),
                        }
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (cert, shutdown);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn a_bad_pair_is_refused_and_reload_keeps_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::copy(fixture("a.crt"), &files.cert).expect("copy");
        std::fs::copy(fixture("a.key"), &files.key).expect("copy");
        let cert = TlsCert::load(files.clone()).expect("a good pair loads");
        let first = cert.current.read().expect("lock").cert.clone();

        // A key that belongs to another certificate.
        std::fs::copy(fixture("b.key"), &files.key).expect("copy");
        let error = cert.reload().expect_err("mismatched pair");
        assert!(matches!(error, TlsError::Pair { .. }), "{error}");
        assert_eq!(cert.current.read().expect("lock").cert, first);

        std::fs::write(&files.cert, "not pem").expect("write");
        let error = cert.reload().expect_err("garbage");
        assert!(error.to_string().contains("cert.pem"), "{error}");
        assert_eq!(cert.current.read().expect("lock").cert, first);

        std::fs::copy(fixture("b.crt"), &files.cert).expect("copy");
        cert.reload().expect("the new pair loads");
        assert_ne!(cert.current.read().expect("lock").cert, first);

        assert!(TlsCert::load(TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: files.key.clone(),
        })
        .is_err());
        assert!(TlsCert::load(TlsFiles {
            cert: dir.path().to_path_buf(),
            key: files.key,
        })
        .is_err());
    }
}
