//! The one server assembly: a recovered node, its sequencer thread and a QUIC endpoint, served
//! until told to stop or until the sequencer stops by itself (a log failure). `bursar start`, the
//! bench's embedded server, the end-to-end tests and the server benchmark all start it here.

use std::net::SocketAddr;

use bursar_wal::Storage;
use rustls::pki_types::CertificateDer;

use crate::feed::FeedConfig;
use crate::sequencer::{self, SequencerConfig, SequencerThread};
use crate::server::{self, ServerLimits};
use crate::tls::{self, Identity};
use crate::Node;

/// How to serve: where, with which sequencer settings and limits, and whether gateways must
/// present a certificate from a client CA (mutual TLS).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (port 0: any free port, see [`Running::addr`]).
    pub listen: SocketAddr,
    /// The sequencer's settings.
    pub sequencer: SequencerConfig,
    /// The server's limits.
    pub limits: ServerLimits,
    /// The client CA (DER) gateways' certificates must come from; None: no client certificates.
    pub client_ca: Option<CertificateDer<'static>>,
    /// Where the change feed reads the log; None: subscriptions answer `feed_unavailable`.
    pub feed: Option<FeedConfig>,
}

impl Default for ServerConfig {
    /// Loopback, any free port, default settings: what tests and benchmarks want.
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sequencer: SequencerConfig::default(),
            limits: ServerLimits::default(),
            client_ca: None,
            feed: None,
        }
    }
}

/// A server being served (see [`Running::start`]).
#[derive(Debug)]
pub struct Running<S: Storage + 'static> {
    addr: SocketAddr,
    sequencer: sequencer::SequencerHandle,
    cert: CertificateDer<'static>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    thread: SequencerThread<S>,
}

impl<S: Storage + 'static> Running<S> {
    /// Starts serving `node` with `identity` as `config` says. Call inside a tokio runtime; the
    /// sequencer gets a thread of its own.
    pub fn start(node: Node<S>, identity: &Identity, config: ServerConfig) -> Result<Running<S>, String> {
        let (handle, thread) = sequencer::start(node, config.sequencer).map_err(|e| format!("starting the sequencer: {e}"))?;
        let tls = tls::server_config_with(identity, config.client_ca.as_ref())?;
        let endpoint = server::bind(config.listen, tls, config.limits).map_err(|e| format!("listening on {}: {e}", config.listen))?;
        let addr = endpoint.local_addr().map_err(|e| e.to_string())?;
        let (stop, stop_asked) = tokio::sync::oneshot::channel::<()>();
        let watcher = handle.clone();
        let sequencer = handle.clone();
        // Serve until stopped, or until the sequencer stops by itself: then a restart recovers
        // from the log, and serving on would only answer `shutting_down`.
        let until = async move {
            tokio::select! {
                _ = stop_asked => {}
                () = watcher.stopped() => {}
            }
        };
        let server = tokio::spawn(server::serve(endpoint, handle, config.limits, config.feed, until));
        Ok(Running { addr, sequencer, cert: identity.cert.clone(), stop, server, thread })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on its sequencer, for other front ends in the process (the HTTP endpoints). The
    /// sequencer stops only once every handle is dropped: drop it before stopping the server.
    pub fn sequencer(&self) -> sequencer::SequencerHandle {
        self.sequencer.clone()
    }

    /// Its certificate, for clients to trust.
    pub fn cert(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// Serves until `signal` resolves (or the sequencer stops by itself), then stops taking
    /// requests, lets those accepted be answered, stops the sequencer (which takes its shutdown
    /// snapshot if configured) and returns the node, or why the sequencer stopped.
    pub async fn serve_until(self, signal: impl std::future::Future<Output = ()>) -> Result<Node<S>, String> {
        let Running { stop, mut server, thread, sequencer, .. } = self;
        // The sequencer runs until every handle is gone: this one goes now.
        drop(sequencer);
        tokio::select! {
            () = signal => {
                let _ = stop.send(());
                (&mut server).await.map_err(|e| format!("the server task: {e}"))?;
            }
            _ = &mut server => {} // the sequencer stopped by itself
        }
        let node = tokio::task::spawn_blocking(move || thread.join()).await.map_err(|e| e.to_string())?;
        node.map_err(|_| "the sequencer thread panicked".to_string())?
    }

    /// Stops now (see [`Running::serve_until`]).
    pub async fn stop(self) -> Result<Node<S>, String> {
        self.serve_until(std::future::ready(())).await
    }
}
