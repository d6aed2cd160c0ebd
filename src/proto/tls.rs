//! TLS 1.3 only, with the ring provider: the receiver's self-signed identity
//! (made on first start, kept in its state dir) and a client configuration that
//! pins the receiver's certificate by its SHA-256 fingerprint instead of
//! trusting any CA.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use super::pairing::hex;

const CERT_FILE: &str = "receiver-cert.der";
const KEY_FILE: &str = "receiver-key.pk8";
/// The name in the certificate and the SNI the source sends; never resolved.
pub const SERVER_NAME: &str = "ferry-receiver";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate's DER bytes.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, cert_der)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// A fingerprint as 64 lowercase hex digits (what `--fingerprint` takes).
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    hex(fp)
}

/// The same, in groups of four for reading aloud over a phone.
pub fn fingerprint_grouped(fp: &[u8; 32]) -> String {
    let h = hex(fp);
    h.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("hex is ASCII"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse a fingerprint as typed: hex with any spaces, colons or dashes.
pub fn parse_fingerprint(s: &str) -> anyhow::Result<[u8; 32]> {
    let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let junk = s
        .chars()
        .any(|c| !(c.is_ascii_hexdigit() || " :-".contains(c)));
    anyhow::ensure!(
        digits.len() == 64 && !junk,
        "fingerprint must be 64 hex digits (SHA-256), got {s:?}"
    );
    let mut fp = [0u8; 32];
    for (i, b) in fp.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).expect("hex digits");
    }
    Ok(fp)
}

/// The receiver's key pair and self-signed certificate.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// Load the identity from `state_dir`, or create and store one (the key
    /// file readable by its owner only).
    pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Identity> {
        let (cp, kp) = (state_dir.join(CERT_FILE), state_dir.join(KEY_FILE));
        if cp.exists() && kp.exists() {
            let cert = fs::read(&cp).with_context(|| format!("reading {}", cp.display()))?;
            let key = fs::read(&kp).with_context(|| format!("reading {}", kp.display()))?;
            return Ok(Identity {
                cert: CertificateDer::from(cert),
                key: PrivatePkcs8KeyDer::from(key),
            });
        }
        fs::create_dir_all(state_dir)
            .with_context(|| format!("creating state dir {}", state_dir.display()))?;
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .context("generating the receiver certificate")?;
        let key = ck.signing_key.serialize_der();
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&kp)
            .with_context(|| format!("creating {}", kp.display()))?;
        f.write_all(&key)?;
        f.sync_all()?;
        fs::write(&cp, ck.cert.der()).with_context(|| format!("writing {}", cp.display()))?;
        Ok(Identity {
            cert: ck.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key),
        })
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.cert)
    }

    /// TLS 1.3 server configuration presenting this identity.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?;
        Ok(Arc::new(cfg))
    }
}

/// Accepts exactly one certificate, by SHA-256, and checks the handshake
/// signature with it. No CA, no name, no expiry: the pin is the trust.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
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
        let got = fingerprint(end_entity);
        if got == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "receiver certificate fingerprint {} does not match the pinned {}",
                hex(&got),
                hex(&self.fingerprint)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS 1.3 client configuration pinning the receiver's certificate.
pub fn client_config(pinned: [u8; 32]) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = provider();
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: pinned,
            provider,
        }))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The server name the source presents (the certificate's only name).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let fp = a.fingerprint();
        assert_eq!(parse_fingerprint(&fingerprint_grouped(&fp)).unwrap(), fp);
        assert_eq!(
            parse_fingerprint(&fingerprint_hex(&fp).to_uppercase()).unwrap(),
            fp
        );
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&format!("{}zz", fingerprint_hex(&fp))).is_err());
    }

    async fn handshake(pin: [u8; 32], id: &Identity) -> Result<String, String> {
        let acceptor = tokio_rustls::TlsAcceptor::from(id.server_config().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            tls.write_all(b"hello over tls")
                .await
                .map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        });
        let connector = tokio_rustls::TlsConnector::from(client_config(pin).unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let result = async {
            let mut tls = connector
                .connect(server_name(), tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (_, conn) = tls.get_ref();
            assert_eq!(
                conn.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
            let mut s = String::new();
            tls.read_to_string(&mut s)
                .await
                .map_err(|e| e.to_string())?;
            Ok(s)
        }
        .await;
        let _ = server.await;
        result
    }

    #[tokio::test]
    async fn pinned_handshake_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(
            handshake(id.fingerprint(), &id).await.unwrap(),
            "hello over tls"
        );
        let e = handshake([0; 32], &id).await.unwrap_err();
        assert!(e.contains("does not match the pinned"), "{e}");
    }
}
