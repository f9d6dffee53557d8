//! The server's HTTP side for operators, on its own listener (loopback by default): Prometheus
//! `/metrics`, `/healthz` (the process serves) and `/readyz` (recovery is done and the sequencer
//! takes requests). It asks the sequencer the way the QUIC server does, with jobs on its queue,
//! so a scrape is three queries between batches and never touches the engine from another thread.

pub mod api;
mod exposition;
pub mod movements;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bursar_node::sequencer::{Job, SequencerHandle};
use bursar_wire::protocol::Request;
use bursar_wire::reply::Reply;

pub use exposition::{encode, Scrape};

/// How long a scrape waits for the sequencer before answering 503.
pub const SEQUENCER_WAIT: Duration = Duration::from_secs(2);

/// Where the server stands, for `/readyz`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the log and the newest snapshot.
    Recovering = 0,
    /// Serving requests.
    Ready = 1,
    /// Finishing accepted requests before exiting.
    Stopping = 2,
}

/// What the handlers share: the phase, and the sequencer while the node serves (its handle is
/// given back when stopping: the sequencer stops only once every handle is gone).
#[derive(Debug)]
pub struct HttpState {
    phase: AtomicU8,
    sequencer: Mutex<Option<SequencerHandle>>,
    /// The bearer token `/api/` asks for (none: `/api/` refuses everyone).
    token: Mutex<Option<String>>,
    /// Room for panels' event streams (see [`api::EVENT_STREAMS_MAX`]).
    event_streams: Arc<tokio::sync::Semaphore>,
    /// The accounts the operator marked, with their roles ("bank", "payout"...), for the panel.
    marked: Mutex<Vec<(String, u128)>>,
    /// The panel's change-feed follower (large movements, failed runs, live updates), if the
    /// server has a log the feed can read.
    feed: Mutex<Option<Arc<movements::PanelFeed>>>,
}

impl HttpState {
    /// A server still recovering.
    pub fn new() -> Arc<HttpState> {
        Arc::new(HttpState {
            phase: AtomicU8::new(Phase::Recovering as u8),
            sequencer: Mutex::new(None),
            token: Mutex::new(None),
            event_streams: Arc::new(tokio::sync::Semaphore::new(api::EVENT_STREAMS_MAX)),
            marked: Mutex::new(Vec::new()),
            feed: Mutex::new(None),
        })
    }

    /// Recovery is done: serve metrics from `sequencer`, answer ready.
    pub fn ready(&self, sequencer: SequencerHandle) {
        *self.sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sequencer);
        self.phase.store(Phase::Ready as u8, Ordering::Release);
    }

    /// The accounts the panel lists by role (at most [`api::MARKED_MAX`] are kept).
    pub fn set_marked(&self, marked: Vec<(String, u128)>) {
        let kept = marked.into_iter().take(api::MARKED_MAX).collect();
        *self.marked.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = kept;
    }

    pub(crate) fn marked(&self) -> Vec<(String, u128)> {
        self.marked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The panel follows the change feed through `feed`.
    pub fn set_feed(&self, feed: Arc<movements::PanelFeed>) {
        *self.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(feed);
    }

    pub(crate) fn feed(&self) -> Option<Arc<movements::PanelFeed>> {
        self.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The token `/api/` requests must carry from now on.
    pub fn set_token(&self, token: String) {
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
    }

    pub(crate) fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The server is stopping: no longer ready, and the sequencer's handle is let go (a scrape
    /// still running holds its own clone for at most `SEQUENCER_WAIT`).
    pub fn stopping(&self) {
        self.phase.store(Phase::Stopping as u8, Ordering::Release);
        self.sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }

    /// The sequencer while the node serves.
    pub(crate) fn sequencer(&self) -> Option<SequencerHandle> {
        self.sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The phase now; a stopped sequencer (a log failure) is not ready either.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Recovering,
            1 if self.sequencer().is_some_and(|s| !s.is_stopped()) => Phase::Ready,
            _ => Phase::Stopping,
        }
    }
}

/// The routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/ledgers", get(api::get_ledgers))
        .route("/api/accounts", get(api::get_accounts))
        .route("/api/status", get(api::get_status))
        .route("/api/events", get(api::get_events))
        .route("/panel", get(panel))
        .with_state(state)
}

/// Binds `addr` (port 0: any free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves `listener` until `until` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(until).await
}

/// The panel: a page with no data of its own, which reads `/api/` with the token given in its
/// address's fragment (`/panel#token=...`: a fragment never reaches the server or its logs).
async fn panel() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], include_str!("panel.html")).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    match state.phase() {
        Phase::Ready => (StatusCode::OK, "ready\n").into_response(),
        Phase::Recovering => (StatusCode::SERVICE_UNAVAILABLE, "recovering\n").into_response(),
        Phase::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let Some(sequencer) = state.sequencer().filter(|_| state.phase() == Phase::Ready) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "not serving\n").into_response();
    };
    match scrape(&sequencer).await {
        Some(scrape) => {
            let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            ([(header::CONTENT_TYPE, content_type)], encode(&scrape)).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "the sequencer did not answer\n").into_response(),
    }
}

/// The figures of one scrape, asked of the sequencer.
pub(crate) async fn scrape(sequencer: &SequencerHandle) -> Option<Scrape> {
    let queue_jobs = sequencer.queue_len();
    let Reply::Metrics(metrics) = ask(sequencer, Request::Metrics).await? else { return None };
    let Reply::Status(status) = ask(sequencer, Request::Status).await? else { return None };
    let Reply::LedgerTotals(ledgers) = ask(sequencer, Request::LedgerTotals(Vec::new())).await? else { return None };
    Some(Scrape { metrics: *metrics, status, ledgers: ledgers.into_iter().flatten().collect(), queue_jobs })
}

/// One query through the sequencer's queue; `None` if it is full, stopped or slow.
pub(crate) async fn ask(sequencer: &SequencerHandle, request: Request) -> Option<Reply> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    sequencer.try_submit(Job { request, reply }).ok()?;
    tokio::time::timeout(SEQUENCER_WAIT, answer).await.ok()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_between_recovery_and_stopping() {
        let state = HttpState::new();
        assert_eq!(readyz(State(state.clone())).await.status(), StatusCode::SERVICE_UNAVAILABLE, "recovering");
        assert_eq!(metrics(State(state.clone())).await.status(), StatusCode::SERVICE_UNAVAILABLE, "no figures before the node serves");
        assert_eq!(healthz().await, "ok\n", "alive all along");
        state.stopping();
        assert_eq!(state.phase(), Phase::Stopping);
        assert_eq!(readyz(State(state)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
