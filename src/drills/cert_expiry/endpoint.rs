//! Fetching the chain a live TLS endpoint serves. The drill inspects, it does not trust: the
//! verifier accepts any certificate (the handshake signature is still checked, so the server
//! holds the leaf's key) and the chain is judged afterwards by [`super::analysis`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::analysis::{FindingCode, Unreadable};
use super::spec::Endpoint;
use crate::clock::Clock;

/// Accepts every server certificate; checks handshake signatures with aws-lc-rs.
#[derive(Debug)]
struct Inspector(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Inspector {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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

/// One client configuration for every fetch.
fn connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let config = rustls::ClientConfig::builder_with_provider(provider.clone() as Arc<CryptoProvider>)
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous().with_custom_certificate_verifier(Arc::new(Inspector(algorithms))).with_no_client_auth()
            });
        // The aws-lc-rs provider supports the default versions; this cannot fail.
        Arc::new(config.unwrap_or_else(|e| panic!("aws-lc-rs does not support TLS 1.2/1.3: {e}")))
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// Connects, completes a handshake within `limit`, and returns the served chain (DER, leaf first).
pub async fn fetch(endpoint: &Endpoint, clock: Clock, limit: Duration) -> Result<Vec<Vec<u8>>, Unreadable> {
    let address = endpoint.address();
    let server_name = match &endpoint.sni {
        Some(s) => ServerName::try_from(s.clone()),
        None => ServerName::try_from(endpoint.host.clone()),
    }
    .map_err(|e| Unreadable {
        code: FindingCode::EndpointUnreachable,
        reason: format!("`{}` is not a server name: {e}", endpoint.expected_name()),
    })?;
    let attempt = async {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await.map_err(|e| Unreadable {
            code: FindingCode::EndpointUnreachable,
            reason: format!("cannot connect to {address}: {e}"),
        })?;
        let mut tls = connector().connect(server_name, tcp).await.map_err(|e| Unreadable {
            code: FindingCode::EndpointNotTls,
            reason: format!("{address} did not complete a TLS handshake: {e}"),
        })?;
        let chain: Vec<Vec<u8>> =
            tls.get_ref().1.peer_certificates().unwrap_or_default().iter().map(|c| c.to_vec()).collect();
        let _ = tls.shutdown().await;
        if chain.is_empty() {
            return Err(Unreadable {
                code: FindingCode::EndpointNotTls,
                reason: format!("{address} completed a handshake without a certificate"),
            });
        }
        Ok(chain)
    };
    clock.timeout(limit, attempt).await.unwrap_or_else(|e| {
        Err(Unreadable {
            code: FindingCode::EndpointTimeout,
            reason: format!("{address} did not complete a TLS handshake: {e}"),
        })
    })
}
