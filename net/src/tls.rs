//! Who the server is and how a client knows it: the server's [`Identity`] (a
//! certificate and key from PEM files, or a self-signed one made at start) and the
//! client's [`Trust`] (the certificate's SHA-256 pinned, or a CA file). Both become
//! QUIC configurations with rustls on the ring provider and the tickstep ALPN.

use ring::digest::{SHA256, digest};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol both sides speak: tickstep's session protocol. Frozen at its name
/// from protocol 4: the protocol's version travels in the hello, so a client of any
/// version gets through TLS and is answered `VersionMismatch` (see
/// `tickstep_session::hello_protocol`), which says more than a TLS alert would.
pub const ALPN: &[u8] = b"tickstep/4";

/// A certificate's SHA-256 fingerprint, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest(&SHA256, der).as_ref());
        Fingerprint(bytes)
    }

    /// Reads 64 hex digits (colons allowed between bytes, as some tools print them).
    pub fn parse(text: &str) -> Result<Fingerprint, SetupError> {
        let digits: String = text.chars().filter(|&c| c != ':').collect();
        let bad = || SetupError::Fingerprint(text.chars().take(80).collect());
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a transport cannot be set up: a certificate, key or trust setting that cannot
/// be used, or a socket that cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What was looked for.
        what: &'static str,
        /// The file.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// The text is not a SHA-256 fingerprint.
    #[error("{0:?} is not a certificate sha256 (64 hex digits)")]
    Fingerprint(String),
    /// rustls or rcgen refused the material.
    #[error("certificate setup failed: {0}")]
    Setup(String),
    /// No UDP socket (or no runtime to run it on).
    #[error("{0}")]
    Socket(String),
}

/// The server's certificate chain and private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh self-signed certificate for `names` (DNS names or IP addresses), with
    /// a key from the OS random source.
    pub fn self_signed(names: &[String]) -> Result<Identity, SetupError> {
        let certified = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| SetupError::Setup(e.to_string()))?;
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .map_err(|e| SetupError::Setup(e.to_string()))?;
        Ok(Identity {
            chain: vec![certified.cert.der().clone()],
            key,
        })
    }

    /// The chain in `cert` (PEM, leaf first) and the key in `key` (PEM).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, SetupError> {
        let pem = |what, path: &Path, reason: String| SetupError::Pem {
            what,
            path: path.display().to_string(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem("certificates", cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem("certificates", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem("certificates", cert, "no CERTIFICATE block".into()));
        }
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| pem("a key", key, e.to_string()))?;
        Ok(Identity { chain, key })
    }

    /// The leaf certificate's fingerprint: what clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.chain[0])
    }

    /// The TLS configuration for HTTPS and secure WebSockets over TCP (a browser's
    /// `wss://`): this identity, TLS 1.3, HTTP/1.1.
    pub fn web_tls(&self) -> Result<Arc<rustls::ServerConfig>, SetupError> {
        let mut tls = self.tls13()?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(tls))
    }

    /// A TLS 1.3 server configuration of this identity (ring's provider).
    fn tls13(&self) -> Result<rustls::ServerConfig, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| SetupError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| SetupError::Setup(e.to_string()))
    }

    /// The QUIC server configuration: this identity, the tickstep ALPN, `transport`.
    pub(crate) fn server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ServerConfig, SetupError> {
        let mut tls = self.tls13()?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| SetupError::Setup(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(transport);
        Ok(config)
    }
}

/// How a client knows the server it reached is the right one.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The server's certificate has this SHA-256 (as `serve` prints it); nothing else
    /// about it is checked, so a self-signed certificate works.
    Pinned(Fingerprint),
    /// The server's certificate chains to one of these roots and names the host.
    Roots(Vec<CertificateDer<'static>>),
}

impl Trust {
    /// The CA certificates in a PEM file.
    pub fn ca_file(path: &Path) -> Result<Trust, SetupError> {
        let roots = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| SetupError::Pem {
                what: "CA certificates",
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        if roots.is_empty() {
            return Err(SetupError::Pem {
                what: "CA certificates",
                path: path.display().to_string(),
                reason: "no CERTIFICATE block".into(),
            });
        }
        Ok(Trust::Roots(roots))
    }

    /// The QUIC client configuration: this trust, the tickstep ALPN, `transport`.
    pub fn client_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ClientConfig, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| SetupError::Setup(e.to_string()))?;
        let mut tls = match self {
            Trust::Pinned(fingerprint) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    fingerprint: *fingerprint,
                    provider,
                }))
                .with_no_client_auth(),
            Trust::Roots(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for root in roots {
                    store
                        .add(root.clone())
                        .map_err(|e| SetupError::Setup(e.to_string()))?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
        };
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| SetupError::Setup(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(transport);
        Ok(config)
    }
}

/// Accepts exactly the certificate with the pinned fingerprint, and checks that the
/// server holds its key (the handshake signatures).
#[derive(Debug)]
struct Pinned {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = Fingerprint::of(end_entity);
        if found == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate sha256 {found} is not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Datagrams waiting for the congestion window at most: beyond it the oldest go. Verified
/// ticks and updates are repeated in the next ones, so a stale datagram is worth less
/// than no queue.
const DATAGRAM_SEND_BUFFER: usize = 8 << 10;

/// QUIC transport settings for one side: idle timeout, keep-alives, one
/// bidirectional stream, datagrams, and BBR congestion control (random loss on a
/// player's link is not congestion; a loss-based controller would starve the game).
pub(crate) fn quic_transport(
    idle: Duration,
    keep_alive: Option<Duration>,
) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(idle).unwrap_or(quinn::VarInt::MAX.into());
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(keep_alive)
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        .congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    transport
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alpn_stays_what_every_earlier_client_offers() {
        // Frozen: a new name would fail every older client at TLS, before its hello
        // could be told VersionMismatch.
        assert_eq!(ALPN, b"tickstep/4");
    }

    #[test]
    fn fingerprints_print_and_parse_back() {
        let fingerprint = Fingerprint::of(b"certificate");
        let text = fingerprint.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(Fingerprint::parse(&text).unwrap(), fingerprint);
        let colons: Vec<String> = fingerprint.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Fingerprint::parse(&colons.join(":")).unwrap(), fingerprint);
        assert!(Fingerprint::parse("abc").is_err());
        assert!(Fingerprint::parse(&"zz".repeat(32)).is_err());
        // From `printf certificate | sha256sum`.
        assert_eq!(
            text,
            "03d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d72"
        );
    }

    #[test]
    fn a_self_signed_identity_has_a_stable_fingerprint() {
        let identity = Identity::self_signed(&["localhost".into()]).unwrap();
        assert_eq!(identity.fingerprint(), Fingerprint::of(&identity.chain[0]));
        let other = Identity::self_signed(&["localhost".into()]).unwrap();
        assert_ne!(identity.fingerprint(), other.fingerprint(), "fresh keys");
    }
}
