//! The QUIC server: a thin shell around the codec and the sequencer. One bidirectional stream per
//! request; a malformed frame gets an error frame and closes only its stream.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{oneshot, Semaphore};

use crate::protocol::{self, FrameDecoder, ProtocolError, Request, FRAME_BODY_MAX_BYTES, HEADER_SIZE};
use crate::sequencer::{Job, SequencerHandle};

/// Server limits, each named once.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Connections served at once; more are refused.
    pub connections_max: usize,
    /// Concurrent request streams per connection (QUIC flow control).
    pub streams_per_connection_max: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits { connections_max: 1024, streams_per_connection_max: 64 }
    }
}

/// Serves until `shutdown` resolves: then stops accepting, lets requests in flight finish, and returns.
pub async fn serve(
    endpoint: quinn::Endpoint,
    sequencer: SequencerHandle,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming { Some(incoming) => incoming, None => break },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        let sequencer = sequencer.clone();
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                serve_connection(connection, sequencer).await;
            }
            drop(permit);
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
    endpoint.wait_idle().await;
}

async fn serve_connection(connection: quinn::Connection, sequencer: SequencerHandle) {
    while let Ok((send, recv)) = connection.accept_bi().await {
        let sequencer = sequencer.clone();
        tokio::spawn(serve_stream(send, recv, sequencer));
    }
}

async fn serve_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream, sequencer: SequencerHandle) {
    let reply = match recv.read_to_end(HEADER_SIZE + FRAME_BODY_MAX_BYTES).await {
        Ok(bytes) => answer(&bytes, &sequencer).await,
        Err(quinn::ReadToEndError::TooLong) => error_frame(0, 0, ProtocolError::FrameTooLarge),
        Err(_) => return, // the client went away
    };
    let _ = send.write_all(&reply).await;
    let _ = send.finish();
}

fn error_frame(request_id: u64, operation: u8, error: ProtocolError) -> Vec<u8> {
    let mut frame = Vec::new();
    protocol::encode_error(request_id, operation, error, &mut frame);
    frame
}

async fn answer(bytes: &[u8], sequencer: &SequencerHandle) -> Vec<u8> {
    let mut decoder = FrameDecoder::new();
    decoder.feed(bytes);
    let (header, body) = match decoder.next_frame() {
        Ok(Some(frame)) => frame,
        Ok(None) => return error_frame(0, 0, ProtocolError::Truncated),
        Err(e) => return error_frame(0, 0, e),
    };
    if decoder.finish().is_err() {
        return error_frame(header.request_id, header.operation, ProtocolError::LengthMismatch);
    }
    let request = match Request::decode(&header, &body) {
        Ok(request) => request,
        Err(e) => return error_frame(header.request_id, header.operation, e),
    };
    let (reply, answer) = oneshot::channel();
    if sequencer.try_submit(Job { request_id: header.request_id, request, reply }).is_err() {
        return error_frame(header.request_id, header.operation, ProtocolError::Busy);
    }
    answer.await.unwrap_or_else(|_| error_frame(header.request_id, header.operation, ProtocolError::ShuttingDown))
}

/// Binds a QUIC endpoint on `addr` with the given server config and stream limit.
pub fn bind(addr: SocketAddr, mut config: quinn::ServerConfig, limits: ServerLimits) -> std::io::Result<quinn::Endpoint> {
    let mut transport = crate::tls::transport_config();
    transport.max_concurrent_bidi_streams(limits.streams_per_connection_max.into());
    transport.max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    crate::tls::endpoint(addr, Some(config))
}
