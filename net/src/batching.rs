//! The gateway client's batching layer: concurrent `submit` calls from many tasks are coalesced
//! into one request (up to the batch limit, or after a short linger), with a timeout per request
//! and retries that resend the same commands (so the same ids: a retry never moves money twice,
//! what took effect answers `exists`). A lost connection is re-established on the next attempt.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bursar_engine::{Command, ResultCode, BATCH_COMMANDS_MAX};
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::client::{Backoff, Client, ClientError};

/// Batching and retry settings.
#[derive(Clone, Copy, Debug)]
pub struct BatchingConfig {
    /// How long the first waiting call waits for others to join its request.
    pub linger: Duration,
    /// Most commands per request.
    pub batch_commands_max: usize,
    /// How long one request may take before it is retried.
    pub request_timeout: Duration,
    /// How long a request is retried (busy, timeouts, lost connections) before the error is returned.
    pub retry_for: Duration,
    /// Calls waiting to be batched at most; more wait for room (backpressure).
    pub queue_calls_max: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            linger: Duration::from_millis(1),
            batch_commands_max: BATCH_COMMANDS_MAX,
            request_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(30),
            queue_calls_max: 65_536,
        }
    }
}

struct Call {
    commands: Vec<Command>,
    reply: oneshot::Sender<Result<Vec<ResultCode>, ClientError>>,
}

/// Where to (re)connect.
struct Target {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    server_name: String,
    client: Mutex<Option<Client>>,
}

impl Target {
    async fn client(&self) -> Result<Client, ClientError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            if client.connection().close_reason().is_none() {
                return Ok(client.clone());
            }
        }
        let client = Client::connect(self.addr, self.cert.clone(), &self.server_name).await?;
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// A client whose `submit` may be called from many tasks at once; see the module documentation.
#[derive(Clone)]
pub struct BatchingClient {
    calls: mpsc::Sender<Call>,
    requests_sent: Arc<AtomicU64>,
}

impl std::fmt::Debug for BatchingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchingClient").field("requests_sent", &self.requests_sent()).finish()
    }
}

impl BatchingClient {
    /// Connects and starts the batching task (on the current tokio runtime).
    pub async fn connect(
        addr: SocketAddr,
        cert: CertificateDer<'static>,
        server_name: &str,
        config: BatchingConfig,
    ) -> Result<BatchingClient, ClientError> {
        let target = Arc::new(Target { addr, cert, server_name: server_name.to_string(), client: Mutex::new(None) });
        target.client().await?;
        let (calls, inbox) = mpsc::channel(config.queue_calls_max);
        let requests_sent = Arc::new(AtomicU64::new(0));
        tokio::spawn(batch_loop(inbox, target, config, Arc::clone(&requests_sent)));
        Ok(BatchingClient { calls, requests_sent })
    }

    /// Submits commands; they may share a request with other callers' commands. One result per command.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Vec<ResultCode>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.calls.send(Call { commands, reply }).await.map_err(|_| ClientError::Connection("the batching task stopped".into()))?;
        answer.await.map_err(|_| ClientError::Connection("the batching task stopped".into()))?
    }

    /// Requests sent so far (retries included): shows how much coalescing happened.
    pub fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }
}

async fn batch_loop(mut inbox: mpsc::Receiver<Call>, target: Arc<Target>, config: BatchingConfig, sent: Arc<AtomicU64>) {
    let mut carried: Option<Call> = None;
    loop {
        let first = match carried.take() {
            Some(call) => call,
            None => match inbox.recv().await {
                Some(call) => call,
                None => return,
            },
        };
        let mut group = vec![first];
        let mut total = group[0].commands.len();
        // A call that ends inside an open linked chain goes alone: joined to the next call's
        // commands, its chain would link into them.
        let open_chain = |call: &Call| call.commands.last().is_some_and(Command::is_linked);
        if !open_chain(&group[0]) {
            let deadline = tokio::time::Instant::now() + config.linger;
            while total < config.batch_commands_max {
                let next = tokio::select! {
                    next = inbox.recv() => next,
                    () = tokio::time::sleep_until(deadline) => None,
                };
                let Some(call) = next else { break };
                if total + call.commands.len() > config.batch_commands_max || open_chain(&call) {
                    carried = Some(call);
                    break;
                }
                total += call.commands.len();
                group.push(call);
            }
        }
        let (target, sent) = (Arc::clone(&target), Arc::clone(&sent));
        tokio::spawn(async move {
            let commands: Vec<Command> = group.iter().flat_map(|c| c.commands.iter().copied()).collect();
            let outcome = submit_with_retries(&target, commands, &config, &sent).await;
            let mut at = 0;
            for call in group {
                let part = match &outcome {
                    Ok(results) => Ok(results[at..at + call.commands.len()].to_vec()),
                    Err(e) => Err(e.clone()),
                };
                at += call.commands.len();
                let _ = call.reply.send(part);
            }
        });
    }
}

async fn submit_with_retries(
    target: &Target,
    commands: Vec<Command>,
    config: &BatchingConfig,
    sent: &AtomicU64,
) -> Result<Vec<ResultCode>, ClientError> {
    let mut backoff = Backoff::new(config.retry_for);
    loop {
        sent.fetch_add(1, Ordering::Relaxed);
        let outcome = match target.client().await {
            Ok(client) => match tokio::time::timeout(config.request_timeout, client.submit_slice(&commands)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ClientError::Connection(format!("no reply within {:?}", config.request_timeout))),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Err(e) => match backoff.next_pause(&e) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(e),
            },
            ok => return ok,
        }
    }
}
