//! TLS as libpq's `sslmode` means it, with rustls, so the binary is static and has no
//! OpenSSL. tokio-postgres only knows disable/prefer/require, never verifies by itself and
//! never retries without TLS; the certificate checks of verify-ca and verify-full, and
//! libpq's second attempt for prefer and allow, are made here.
//!
//! | sslmode     | encrypts          | checks the chain          | checks the host name |
//! |-------------|-------------------|---------------------------|----------------------|
//! | disable     | no                | -                         | -                    |
//! | allow       | if the server insists (plain first, TLS second) | no | no            |
//! | prefer      | if the server can (TLS first, plain second) | no | no                 |
//! | require     | yes               | only if sslrootcert is set (as libpq) | no       |
//! | verify-ca   | yes               | yes                       | no                   |
//! | verify-full | yes               | yes                       | yes                  |
//!
//! As in libpq, sslmode does not apply to unix sockets, where PostgreSQL never does TLS.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres::config::{Host, SslMode as WireSslMode};

use crate::db::connection::{Connection, SslMode};
use crate::error::{Error, Result};

pub type MakeTls = tokio_postgres_rustls::MakeRustlsConnect;

/// The modes tokio-postgres is asked to connect with: libpq's prefer and allow try a
/// second time the other way when the first attempt is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub first: WireSslMode,
    pub fallback: Option<WireSslMode>,
}

/// The connector and the attempts for this connection.
pub fn connector(connection: &Connection) -> Result<(MakeTls, Attempts)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match connection.ssl_mode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => {
            Arc::new(NoVerification::new(&provider))
        }
        SslMode::Require if connection.ssl_root_cert.is_none() => {
            Arc::new(NoVerification::new(&provider))
        }
        SslMode::Require | SslMode::VerifyCa => Arc::new(ChainOnly(webpki(connection, &provider)?)),
        SslMode::VerifyFull => webpki(connection, &provider)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((
        tokio_postgres_rustls::MakeRustlsConnect::new(config),
        attempts(connection),
    ))
}

fn attempts(connection: &Connection) -> Attempts {
    let config = &connection.config;
    let only_sockets = config.get_hostaddrs().is_empty()
        && !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|host| !matches!(host, Host::Tcp(_)));
    let (first, fallback) = match connection.ssl_mode {
        _ if only_sockets => (WireSslMode::Disable, None),
        SslMode::Disable => (WireSslMode::Disable, None),
        SslMode::Allow => (WireSslMode::Disable, Some(WireSslMode::Require)),
        SslMode::Prefer => (WireSslMode::Prefer, Some(WireSslMode::Disable)),
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => (WireSslMode::Require, None),
    };
    Attempts { first, fallback }
}

/// Whether libpq would make its second attempt after `error`: the server answered the
/// first one with an error (pg_hba.conf turned that kind of connection away), or the TLS
/// handshake failed. Not after a refused or lost connection: the other way fares no better.
pub fn worth_second_attempt(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some() || is_tls_failure(error)
}

/// Of the errors of both attempts, the one that says more. A "no pg_hba.conf entry"
/// (28000) often only means "not this way", so the other attempt's error wins over it.
pub fn more_telling(
    first: tokio_postgres::Error,
    second: tokio_postgres::Error,
) -> tokio_postgres::Error {
    let code = |e: &tokio_postgres::Error| e.as_db_error().map(|db| db.code().code().to_string());
    if code(&first).as_deref() == Some("28000") {
        second
    } else {
        first
    }
}

/// Whether the TLS layer failed: a handshake or certificate error, or a server that does
/// not do TLS when it must.
pub fn is_tls_failure(error: &tokio_postgres::Error) -> bool {
    rustls_error(error).is_some() || error.to_string().contains("TLS")
}

/// A TLS failure in words that say what is wrong and what to change.
pub fn explain(error: &tokio_postgres::Error, connection: &Connection, detail: &str) -> String {
    let roots = match connection.ssl_root_cert.as_deref() {
        Some(path) if path.as_os_str() != "system" => format!("sslrootcert {}", path.display()),
        _ => "the system's CA certificates (no sslrootcert is set)".to_string(),
    };
    let Some(rustls_error) = rustls_error(error) else {
        if detail.contains("does not support TLS") {
            return "the server does not accept TLS connections, and sslmode=require or stronger \
             asks for TLS: turn on ssl in the server, or use sslmode=prefer (encrypt when \
             the server can) or sslmode=disable"
                .to_string();
        }
        return format!("TLS failed: {detail}; check sslmode and sslrootcert");
    };
    match rustls_error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "TLS failed: the server's certificate is not signed by a CA in {roots}: set \
             sslrootcert (URL parameter or PGSSLROOTCERT) to the CA certificate that signed the \
             server's certificate, or use sslmode=require to encrypt without checking it"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "TLS failed: the server's certificate is not valid for the host name we connected \
             to ({rustls_error}): connect with a host name the certificate names, or use \
             sslmode=verify-ca to check the CA only"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => format!(
            "TLS failed: the server's certificate is outside its validity period \
             ({rustls_error}): renew it, or check this machine's clock"
        ),
        rustls::Error::InvalidCertificate(_) => format!(
            "TLS failed: the server's certificate was rejected ({rustls_error}): check it \
             against {roots}, or use sslmode=require to encrypt without checking it"
        ),
        _ => format!("TLS failed: {detail}; check sslmode and sslrootcert"),
    }
}

/// The rustls error under a tokio-postgres error, which wraps it in an `io::Error`.
fn rustls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        source = e.source();
    }
    None
}

/// The trusted CAs: `sslrootcert`, or the system's store when it is unset or `system`.
fn roots(connection: &Connection) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match connection.ssl_root_cert.as_deref() {
        Some(path) if path.as_os_str() != "system" => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::Usage(format!("cannot read sslrootcert {shown}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    Error::Usage(format!(
                        "sslrootcert {shown} is not a PEM certificate file: {e}"
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::Usage(format!(
                        "sslrootcert {shown} holds an unusable certificate: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(Error::Usage(format!(
                    "sslrootcert {shown} holds no certificate"
                )));
            }
        }
        _ => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // One odd system certificate must not stop the others from working.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::Usage(
                    "sslmode verify-ca/verify-full needs a CA: set sslrootcert=/path/to/ca.pem \
                     (URL parameter or PGSSLROOTCERT), or install the system CA certificates"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

fn webpki(
    connection: &Connection,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots(connection)?), provider.clone())
        .build()
        .map_err(|e| Error::Usage(format!("TLS verifier: {e}")))
}

/// verify-ca: the chain must lead to a trusted CA; the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// prefer/require without a CA: encrypted, but any certificate is accepted (as in libpq).
/// Handshake signatures are still checked, so the session key belongs to that certificate.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl NoVerification {
    fn new(provider: &CryptoProvider) -> Self {
        NoVerification(provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attempts for a connection string and an `sslmode` (which the command line
    /// reads out of the string before the driver sees it).
    fn attempts_for(config: &str, mode: &str) -> Attempts {
        let connection = Connection {
            config: config.parse().expect("valid connection string"),
            ssl_mode: mode.parse().expect("valid sslmode"),
            ssl_root_cert: None,
        };
        attempts(&connection)
    }

    #[test]
    fn prefer_and_allow_make_a_second_attempt_the_other_way() {
        let cases = [
            ("disable", WireSslMode::Disable, None),
            ("allow", WireSslMode::Disable, Some(WireSslMode::Require)),
            ("prefer", WireSslMode::Prefer, Some(WireSslMode::Disable)),
            ("require", WireSslMode::Require, None),
            ("verify-ca", WireSslMode::Require, None),
            ("verify-full", WireSslMode::Require, None),
        ];
        for (mode, first, fallback) in cases {
            assert_eq!(
                attempts_for("postgres://u@db/d", mode),
                Attempts { first, fallback },
                "{mode}"
            );
        }
    }

    #[test]
    fn unix_sockets_never_use_tls() {
        let attempts = attempts_for("postgres://u@%2Fvar%2Frun%2Fpostgresql/d", "verify-full");
        assert_eq!(
            attempts,
            Attempts {
                first: WireSslMode::Disable,
                fallback: None
            }
        );
        // A TCP host among them keeps TLS.
        let attempts = attempts_for("host=/tmp,db user=u", "require");
        assert_eq!(attempts.first, WireSslMode::Require);
    }
}
