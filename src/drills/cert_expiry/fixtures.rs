//! Certificates with exact validity windows, minted with rcgen for tests and the benchmark
//! (`Mint::leaf("web.example.com").valid(from, until).signed_by(&ca)`), and a loopback TLS server
//! serving them. The drill never uses it.

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::clock::Timestamp;

/// What to mint.
pub struct Mint {
    common_name: String,
    dns_names: Vec<String>,
    ca: bool,
    from: Timestamp,
    until: Timestamp,
}

/// A minted certificate, its key and the issuer it can act as.
pub struct Minted {
    pub pem: String,
    pub der: Vec<u8>,
    /// PKCS#8 PEM, for a TLS server in a test.
    pub key_pem: String,
    pub key_der: Vec<u8>,
    pub not_after: Timestamp,
    issuer: Issuer<'static, KeyPair>,
}

fn since_epoch(t: Timestamp) -> Duration {
    Duration::from_secs(u64::try_from(t.millis() / 1000).unwrap_or(0))
}

impl Mint {
    /// A leaf for `name` (its common name and only DNS SAN), valid for 90 days from the epoch
    /// until [`Mint::valid`] says otherwise.
    pub fn leaf(name: &str) -> Self {
        Self {
            common_name: name.to_string(),
            dns_names: vec![name.to_string()],
            ca: false,
            from: Timestamp::from_millis(0),
            until: Timestamp::from_millis(90 * 86_400_000),
        }
    }

    /// A CA certificate named `name` (no SANs).
    pub fn ca(name: &str) -> Self {
        Self { dns_names: Vec::new(), ca: true, ..Self::leaf(name) }
    }

    pub fn valid(mut self, from: Timestamp, until: Timestamp) -> Self {
        self.from = from;
        self.until = until;
        self
    }

    /// Valid from a day before `now` until `now + days` (negative: expired that long ago).
    pub fn expiring(self, now: Timestamp, days: i64) -> Self {
        let until = Timestamp::from_millis(now.millis() + days * 86_400_000);
        let from = Timestamp::from_millis(until.millis().min(now.millis()) - 86_400_000);
        self.valid(from, until)
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::new(self.dns_names.clone()).expect("DNS names are valid");
        p.distinguished_name.push(DnType::CommonName, self.common_name.clone());
        p.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.from);
        p.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.until);
        if self.ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p
    }

    pub fn self_signed(self) -> Minted {
        let key = KeyPair::generate().expect("generate a key");
        let params = self.params();
        let cert = params.self_signed(&key).expect("self-sign");
        self.minted(cert, key, params)
    }

    pub fn signed_by(self, ca: &Minted) -> Minted {
        let key = KeyPair::generate().expect("generate a key");
        let params = self.params();
        let cert = params.signed_by(&key, &ca.issuer).expect("sign");
        self.minted(cert, key, params)
    }

    fn minted(&self, cert: rcgen::Certificate, key: KeyPair, params: CertificateParams) -> Minted {
        Minted {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            not_after: Timestamp::from_millis(self.until.millis() / 1000 * 1000),
            issuer: Issuer::new(params, key),
        }
    }
}

/// A TLS server on a free loopback port serving `chain` (leaf first) with `key`'s private key,
/// closing each connection after the handshake; returns its port. For tests and benchmarks.
pub async fn tls_server(chain: &[&Minted], key: &Minted) -> u16 {
    use tokio::io::AsyncWriteExt;
    let certs = chain.iter().map(|c| rustls::pki_types::CertificateDer::from(c.der.clone())).collect();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.key_der.clone().into());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a minted key pair");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let port = listener.local_addr().expect("a bound listener").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    port
}
