//! Serving the change feed: each subscription gets a follower thread (`bursar_node::feed`) that
//! reads the log from the position asked for and a task that writes its frames to the stream.
//! Between them a channel of [`FEED_FRAMES_BUFFERED`] frames: a consumer that reads slowly holds
//! back only its own follower, never the sequencer or another subscriber, and one that stops
//! reading for [`FEED_STALL_MAX`] has its stream reset (it resumes from the last event it has).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bursar_engine::{FeedEvent, Limits};
use bursar_node::feed::{Durable, FeedError, Follower};
use bursar_wire::feed::{encode_event, encode_progress, Subscription, EVENTS_PER_FRAME_MAX};
use bursar_wire::protocol::{self, FrameType, Operation, ProtocolError};

/// Subscriptions served at once unless configured otherwise: each holds a second copy of the
/// state (its follower's engine) while it lasts.
pub const SUBSCRIPTIONS_MAX_DEFAULT: usize = 4;

/// Frames (up to 1 MiB each) waiting between a follower and its stream at most.
pub const FEED_FRAMES_BUFFERED: usize = 4;

/// How long a subscriber may leave a frame unread before its stream is reset with
/// [`RESET_STALLED`].
pub const FEED_STALL_MAX: Duration = Duration::from_secs(30);

/// QUIC application error code of a subscription stream reset because its consumer stalled.
pub const RESET_STALLED: u32 = 1;

/// A progress event is sent at most this often while the log grows (and whenever the follower
/// has caught up with the durable end).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How long a follower waits for the log to grow before it looks whether its consumer left.
const FOLLOWER_POLL: Duration = Duration::from_millis(200);

/// Where the feed reads the log and how many subscriptions it serves.
#[derive(Clone, Debug)]
pub struct FeedConfig {
    /// The data directory (read-only: the feed takes no lock and writes nothing).
    pub dir: PathBuf,
    /// The server's engine limits (for a log replayed from its first entry).
    pub limits: Limits,
    /// Subscriptions at once at most; more are refused with `subscriptions_full`.
    pub subscriptions_max: usize,
}

/// The feed of one server.
#[derive(Debug)]
pub(crate) struct Feed {
    config: FeedConfig,
    durable: Arc<Durable>,
    active: AtomicUsize,
}

/// One subscription's place among the server's, given back when it ends.
struct Slot(Arc<Feed>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Feed {
    pub(crate) fn new(config: FeedConfig, durable: Arc<Durable>) -> Feed {
        Feed { config, durable, active: AtomicUsize::new(0) }
    }

    fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        let taken = self.active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(self));
        (taken < self.config.subscriptions_max).then_some(slot)
    }
}

/// What a follower thread hands its stream: a frame, or the error that ends the subscription.
type Frame = Result<Vec<u8>, ProtocolError>;

/// Serves one subscription on `send` until the consumer leaves, the server drains, or the feed
/// fails; `feed` is None where the server has no feed.
pub(crate) async fn serve(
    mut send: quinn::SendStream,
    request_id: u64,
    subscription: Subscription,
    feed: Option<Arc<Feed>>,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    let error = |e: ProtocolError| {
        let mut frame = Vec::new();
        protocol::encode_error(request_id, Operation::Subscribe as u8, e, &mut frame);
        frame
    };
    let Some(feed) = feed else {
        return finish(send, error(ProtocolError::FeedUnavailable)).await;
    };
    let Some(slot) = feed.take_slot() else {
        return finish(send, error(ProtocolError::SubscriptionsFull)).await;
    };
    let (frames, mut received) = tokio::sync::mpsc::channel::<Frame>(FEED_FRAMES_BUFFERED);
    let spawned = bursar_node::feed::spawn_follower_thread("feed", move || {
        follow(&slot.0, &subscription, request_id, &frames);
        drop(slot);
    });
    if spawned.is_err() {
        return finish(send, error(ProtocolError::FeedFailed)).await;
    }
    loop {
        let next = tokio::select! {
            next = received.recv() => next,
            _ = draining.wait_for(|draining| *draining) => Some(Err(ProtocolError::ShuttingDown)),
            _ = send.stopped() => return, // the consumer is gone
        };
        match next {
            Some(Ok(frame)) => match tokio::time::timeout(FEED_STALL_MAX, send.write_chunk(bytes::Bytes::from(frame))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    let _ = send.reset(RESET_STALLED.into());
                    return;
                }
            },
            Some(Err(e)) => return finish(send, error(e)).await,
            None => return finish(send, error(ProtocolError::FeedFailed)).await,
        }
    }
}

/// Writes a last frame and finishes the stream, waiting (bounded) until it was read.
async fn finish(mut send: quinn::SendStream, frame: Vec<u8>) {
    let _ = send.write_chunk(bytes::Bytes::from(frame)).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

/// The follower thread: opens at the subscription's position, then reads every durable entry,
/// sending the events the subscription wants, until its stream's task goes away or the log
/// closes.
fn follow(feed: &Feed, subscription: &Subscription, request_id: u64, frames: &tokio::sync::mpsc::Sender<Frame>) {
    let durable = &feed.durable;
    let mut follower = match Follower::open(&feed.config.dir, feed.config.limits, subscription.from_seq, durable) {
        Ok(follower) => follower,
        Err(e) => {
            let _ = frames.blocking_send(Err(code_of(&e)));
            return;
        }
    };
    let filter = subscription.clone();
    follower.set_filter(Box::new(move |kind, ledger, accounts| filter.wants_parts(kind, ledger, accounts)));
    let mut out = FrameBuilder::new(request_id);
    let first = follower.next_seq();
    let mut progress_at = std::time::Instant::now();
    // The last entry read whose events (if any) this subscriber has not been told of by an event.
    let mut unreported: Option<u64> = None;
    loop {
        let last = durable.seq();
        if last < follower.next_seq() {
            // Caught up: say how far, once, before waiting.
            if let Some(seq) = unreported.take().filter(|_| subscription.wants_progress()) {
                encode_progress(seq, &mut out.body);
                out.events += 1;
                progress_at = std::time::Instant::now();
                if !out.send(frames) {
                    return;
                }
            }
            if durable.is_closed() {
                let _ = frames.blocking_send(Err(ProtocolError::ShuttingDown));
                return;
            }
            if frames.is_closed() {
                return;
            }
            durable.wait_beyond(follower.next_seq() - 1, FOLLOWER_POLL);
            continue;
        }
        let mut skipped_since_sent = false;
        let read = follower.read_through(last, &mut |seq, events: &[FeedEvent]| {
            let skip_below = if seq == first && subscription.from_seq == first { subscription.from_index } else { 0 };
            let mut sent = false;
            // The follower built only the events the filter wants (`set_filter` above).
            for event in events.iter().filter(|e| e.index >= skip_below) {
                encode_event(seq, event, &mut out.body);
                out.events += 1;
                sent = true;
                if out.events == EVENTS_PER_FRAME_MAX && !out.send(frames) {
                    return false;
                }
            }
            skipped_since_sent = !sent;
            true
        });
        if let Err(e) = read {
            if e != FeedError::Stopped {
                let _ = frames.blocking_send(Err(code_of(&e)));
            }
            return;
        }
        unreported = skipped_since_sent.then_some(last);
        if unreported.is_some() && subscription.wants_progress() && progress_at.elapsed() >= PROGRESS_EVERY {
            encode_progress(last, &mut out.body);
            out.events += 1;
            progress_at = std::time::Instant::now();
            unreported = None;
        }
        if out.events > 0 && !out.send(frames) {
            return;
        }
    }
}

/// The events of the frame being filled.
struct FrameBuilder {
    request_id: u64,
    body: Vec<u8>,
    events: usize,
}

impl FrameBuilder {
    fn new(request_id: u64) -> FrameBuilder {
        FrameBuilder { request_id, body: Vec::new(), events: 0 }
    }

    /// Sends the frame (blocking while the stream is behind); false when the stream is gone.
    fn send(&mut self, frames: &tokio::sync::mpsc::Sender<Frame>) -> bool {
        let mut frame = Vec::with_capacity(protocol::HEADER_SIZE + self.body.len());
        let records = 3 * self.events as u32;
        protocol::encode_frame(FrameType::Reply, Operation::Subscribe as u8, self.request_id, records, &self.body, &mut frame);
        self.body.clear();
        self.events = 0;
        frames.blocking_send(Ok(frame)).is_ok()
    }
}

fn code_of(e: &FeedError) -> ProtocolError {
    match e {
        FeedError::Recycled { .. } => ProtocolError::PositionRecycled,
        FeedError::Ahead { .. } => ProtocolError::PositionAhead,
        FeedError::Failed(why) => {
            eprintln!("bursar: a change feed subscription failed: {why}");
            ProtocolError::FeedFailed
        }
        FeedError::Stopped => ProtocolError::ShuttingDown,
    }
}
