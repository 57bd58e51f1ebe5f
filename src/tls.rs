//! TLS as libpq's `sslmode` means it, with rustls, so the binary is static and has no
//! OpenSSL. tokio-postgres only knows disable/prefer/require and never verifies by itself;
//! the certificate checks of verify-ca and verify-full are made here.
//!
//! | sslmode     | encrypts          | checks the chain          | checks the host name |
//! |-------------|-------------------|---------------------------|----------------------|
//! | disable     | no                | -                         | -                    |
//! | prefer      | if the server can | no                        | no                   |
//! | require     | yes               | only if sslrootcert is set (as libpq) | no       |
//! | verify-ca   | yes               | yes                       | no                   |
//! | verify-full | yes               | yes                       | yes                  |

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres::config::SslMode as WireSslMode;

use crate::config::{Connection, SslMode};
use crate::error::{Error, Result};

pub type MakeTls = tokio_postgres_rustls::MakeRustlsConnect;

/// The connector and the mode tokio-postgres should use for this connection.
pub fn connector(connection: &Connection) -> Result<(MakeTls, WireSslMode)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let wire_mode = match connection.ssl_mode {
        SslMode::Disable => WireSslMode::Disable,
        SslMode::Prefer => WireSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match connection.ssl_mode {
        SslMode::Disable | SslMode::Prefer => Arc::new(NoVerification::new(&provider)),
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
        wire_mode,
    ))
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
