//! The HTTP server loop of `picket serve`: accepts connections up to a cap, serves each
//! with hyper (HTTP/1.1 and HTTP/2), and closes the ones that dawdle.
//!
//! `axum::serve` has no timeouts and no connection cap, and hyper's own header timeout
//! also runs while a kept-alive connection waits for its next request, so one number
//! would mean both. Here each connection has a small watch ([`Activity`]) fed by its
//! socket (first byte of a request, bytes written) and by its requests (started,
//! answered), and a deadline drawn from it:
//!
//! ```text
//!  connected ──first byte──> reading head ──head parsed──> busy ──answered──> idle ──first byte──> ...
//!  |<-- header_read -->|    |<-- header_read -->|         (request timeout   |<-- idle -->|
//!                                                          answers 408)
//! ```
//!
//! A connection past its deadline is dropped. The deadline is looked at by one timer per
//! connection, at least once per header timeout, not on every request; so a head that
//! starts on an idle connection and stalls is dropped up to one header timeout late.
//! While a request is in flight there is no deadline here: the request timeout (a tower
//! layer, [`super::layers`]) answers it 408 instead.
//! Each connection's requests carry `ConnectInfo` with the client's address as
//! [`super::guard::client_addr`] finds it (the TCP peer unless that is a trusted proxy),
//! so every handler and rate limit sees the client, not the proxy.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::{HttpSettings, TrustedProxies};

/// What the loop needs from the settings.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_connections: usize,
    pub trusted_proxies: TrustedProxies,
}

impl ConnectionLimits {
    pub fn from_settings(
        http: &HttpSettings,
        trusted_proxies: &TrustedProxies,
    ) -> ConnectionLimits {
        ConnectionLimits {
            header_read: Duration::from_secs(http.header_read_timeout_secs.max(1)),
            idle: Duration::from_secs(http.idle_timeout_secs.max(1)),
            max_connections: http.max_connections.max(1),
            trusted_proxies: trusted_proxies.clone(),
        }
    }
}

/// Serve `router` on `listener` until `stop`; then stop accepting, let every connection
/// finish its request in flight, and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        // A slot first: past the cap, connections wait in the listen queue, unread.
        let slot = tokio::select! {
            _ = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (router, limits, stop) = (router.clone(), limits.clone(), stop.clone());
        connections.spawn(async move {
            serve_connection(stream, peer, router, &limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let trusted = limits.trusted_proxies.clone();
    let watch = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let client = super::guard::client_addr(peer, req.headers(), &trusted);
        req.extensions_mut().insert(ConnectInfo(client));
        let busy = watch.begin();
        let answer = router.clone().oneshot(req.map(Body::new));
        async move {
            let answered = answer.await;
            drop(busy);
            answered.map_err(|never: Infallible| match never {})
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    // The watch below times heads; hyper's own header timer would also cut idle
    // connections at the same mark.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    // One timer for the connection's life, looked at when it fires instead of moved on
    // every request (waking this task for each request was a measurable share of serving
    // a cached page): a request only writes its phase. The timer never sleeps longer than
    // the shortest limit, so a deadline that comes closer (an idle connection's first byte
    // starts the head's shorter one) is met at most that much late: a head that stalls is
    // cut off between one and two header timeouts after its first byte.
    let look = limits.header_read.min(limits.idle);
    let timer = tokio::time::sleep(look);
    tokio::pin!(timer);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = cancelled.as_mut(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = timer.as_mut() => {
                let now = Instant::now();
                let next = match activity.deadline(limits) {
                    Some(d) if d <= now => {
                        tracing::debug!("closing a connection that was too slow or idle too long");
                        return;
                    }
                    Some(d) => d.min(now + look),
                    // Answering: no deadline until the answer is out.
                    None => now + look,
                };
                timer.as_mut().reset(next);
            }
        }
    }
}

/// Where a connection is in its life, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Connected, nothing received yet.
    Fresh(Instant),
    /// Between requests on a kept-alive connection (or writing out an answer).
    Idle(Instant),
    /// Receiving the head of a request.
    Head(Instant),
    /// This many requests are being answered.
    Busy(usize),
}

/// The watch over one connection: what its deadline is.
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Fresh(Instant::now())),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        crate::sync::lock(&self.phase)
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        match *self.phase() {
            Phase::Fresh(t) | Phase::Head(t) => Some(t + limits.header_read),
            Phase::Idle(t) => Some(t + limits.idle),
            Phase::Busy(_) => None,
        }
    }

    fn read(&self) {
        let mut phase = self.phase();
        if let Phase::Fresh(_) | Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }

    fn wrote(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            // A client reading a long answer is not idle.
            *phase = Phase::Idle(Instant::now());
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        Busy(self.clone())
    }
}

/// A request in flight; dropped when it is answered (or abandoned).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }
}

/// The socket, telling its [`Activity`] about bytes read and written.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_connections: 1,
            trusted_proxies: TrustedProxies::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_has_a_deadline_except_while_it_is_answering() {
        let a = Arc::new(Activity::new());
        let t0 = Instant::now();
        assert_eq!(a.deadline(&limits()), Some(t0 + Duration::from_secs(10)));

        tokio::time::advance(Duration::from_secs(3)).await;
        a.read();
        assert_eq!(
            a.deadline(&limits()),
            Some(t0 + Duration::from_secs(13)),
            "the head has 10 s from its first byte"
        );
        a.read();
        assert_eq!(a.deadline(&limits()), Some(t0 + Duration::from_secs(13)));

        let first = a.begin();
        let second = a.begin();
        assert_eq!(a.deadline(&limits()), None, "no deadline while answering");
        drop(first);
        assert_eq!(
            a.deadline(&limits()),
            None,
            "one request is still in flight"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(second);
        assert_eq!(
            a.deadline(&limits()),
            Some(t0 + Duration::from_secs(68)),
            "idle: 60 s for the next request"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        a.wrote();
        assert_eq!(a.deadline(&limits()), Some(t0 + Duration::from_secs(69)));
    }
}
