//! TLS material: a self-signed certificate for loopback generated on first start (rcgen) and kept
//! in the data directory, its SHA-256 fingerprint, and the rustls configs (ring provider, TLS 1.3).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The protocol name negotiated in the TLS handshake.
pub const ALPN: &[u8] = b"bursar/1";

/// A certificate and its key, as DER.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The certificate.
    pub cert: CertificateDer<'static>,
    /// Its private key (PKCS#8).
    pub key: Vec<u8>,
    /// Where the certificate is stored.
    pub cert_path: PathBuf,
}

impl Identity {
    /// SHA-256 of the certificate, hex: what a client pins.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

/// SHA-256 of a certificate, as lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert.as_ref()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a server certificate a client is to trust: one DER-encoded X.509 certificate, as
/// `bursar start` writes `server.crt`. A PEM file, an empty file or anything else that is not a
/// whole DER certificate is refused here, naming the file, instead of failing the handshake later
/// as if the server's certificate were bad.
pub fn read_certificate(path: &Path) -> Result<CertificateDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading the server certificate {}: {e}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        return Err(format!(
            "{} is a PEM file; bursar reads the DER certificate `bursar start` wrote (server.crt in its data directory), or convert it: openssl x509 -outform der",
            path.display()
        ));
    }
    if der_sequence_len(&bytes) != Some(bytes.len()) {
        return Err(format!("{} is not a DER certificate (expected server.crt from the server's data directory)", path.display()));
    }
    Ok(bytes.into())
}

/// The length of the DER SEQUENCE that starts `bytes` (tag, length, content), if it is one.
fn der_sequence_len(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (len, header) = match first {
        0..=0x7f => (usize::from(first), 2),
        0x81..=0x84 => {
            let n = usize::from(first - 0x80);
            let len = rest.get(..n)?.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            (len, 2 + n)
        }
        _ => return None,
    };
    len.checked_add(header)
}

/// Loads `server.crt`/`server.key` (DER) from `dir`, generating a self-signed pair for
/// `localhost`, 127.0.0.1 and ::1 on first start.
pub fn load_or_generate(dir: &Path) -> std::io::Result<Identity> {
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    if cert_path.exists() && key_path.exists() {
        let cert = CertificateDer::from(std::fs::read(&cert_path)?);
        return Ok(Identity { cert, key: std::fs::read(&key_path)?, cert_path });
    }
    std::fs::create_dir_all(dir)?;
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
    let cert = generated.cert.der().clone();
    let key = generated.key_pair.serialize_der();
    std::fs::write(&key_path, &key)?;
    std::fs::write(&cert_path, cert.as_ref())?;
    Ok(Identity { cert, key, cert_path })
}

/// The QUIC server config for `identity`, without client certificates.
pub fn server_config(identity: &Identity) -> Result<quinn::ServerConfig, String> {
    server_config_with(identity, None)
}

/// The QUIC server config for `identity`. With `client_ca`, mutual TLS: a gateway must present a
/// certificate issued by that CA, or the handshake fails before it can send anything.
pub fn server_config_with(identity: &Identity, client_ca: Option<&CertificateDer<'static>>) -> Result<quinn::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone()));
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).map_err(|e| format!("client CA: {e}"))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder.with_single_cert(vec![identity.cert.clone()], key).map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// A gateway's own certificate and PKCS#8 key, for servers that require mutual TLS.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    /// The gateway's certificate.
    pub cert: CertificateDer<'static>,
    /// Its private key, PKCS#8 DER.
    pub key: Vec<u8>,
}

/// Transport settings shared by server and client. Path-MTU discovery may grow packets up to
/// 64 KiB where the path allows (loopback, jumbo frames); on an ordinary 1 500-byte path it
/// settles there. A 1 MiB batch then crosses in far fewer packets, each a syscall and an AEAD seal.
pub fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(65_000);
    transport.mtu_discovery_config(Some(mtu));
    // A dead peer is noticed within 5 s (quinn's default is 30 s); keep-alives every second keep
    // a quiet but healthy connection open.
    transport.max_idle_timeout(Some(std::time::Duration::from_secs(CONNECTION_IDLE_TIMEOUT_S).try_into().expect("small duration")));
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(1)));
    transport
}

/// Bytes of UDP send and receive buffer asked for on every QUIC socket. The kernel's default
/// (208 KiB on Linux) overflows when several clients each send a 1 MiB batch at once: measured
/// here, 79 000 datagrams dropped in a few benchmark runs, and each loss cost a QUIC
/// retransmission timeout (p99.9 of 4 s at 2 clients). The kernel caps the request at
/// `net.core.rmem_max` / `wmem_max` (4 MiB on this machine).
pub const UDP_BUFFER_BYTES: usize = 8 << 20;

/// A UDP socket bound to `addr` with [`UDP_BUFFER_BYTES`] of buffers (or what the kernel allows).
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok(); // dual-stack where the platform allows; harmless where not
    }
    // Best effort: a smaller grant only means the kernel default behaviour.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A QUIC endpoint on [`udp_socket`]`(addr)`: a server if `server` is given, else a client.
pub fn endpoint(addr: std::net::SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, udp_socket(addr)?, Arc::new(quinn::TokioRuntime))
}

/// Seconds without any packet after which a connection is considered dead.
pub const CONNECTION_IDLE_TIMEOUT_S: u64 = 5;

/// A QUIC client config that trusts exactly `server_cert` (a CA file's or a pinned certificate).
pub fn client_config(server_cert: &CertificateDer<'static>) -> Result<quinn::ClientConfig, String> {
    client_config_with(server_cert, None)
}

/// As [`client_config`], presenting `auth` to servers that require client certificates.
pub fn client_config_with(server_cert: &CertificateDer<'static>, auth: Option<&ClientAuth>) -> Result<quinn::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert.clone()).map_err(|e| e.to_string())?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut tls = match auth {
        None => tls.with_no_client_auth(),
        Some(auth) => tls
            .with_client_auth_cert(vec![auth.cert.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(auth.key.clone())))
            .map_err(|e| format!("client certificate: {e}"))?,
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}
