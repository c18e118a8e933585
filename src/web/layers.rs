//! What every answer passes through on its way out, as one tower layer: the request
//! timeout, the security headers, and marking the counts stale after an accepted write.
//!
//! These were six stock layers (`tower_http`'s timeout and set-header layers, an
//! `axum::middleware::from_fn`) wrapped around every route. Measured with perf on the cached
//! campaign page (`scripts/bench-web`), they cost on every request more than the page
//! itself: the stock timeout polls its timer before the handler, so each request put an
//! entry into tokio's timer wheel and took it out again; `from_fn` boxes its future and
//! clones the route it wraps; and each header layer is one more future around the others.
//! Here the timer is started only for a handler that does not answer on its first poll
//! (a cached page, a health check never wait), and all the headers go on in one pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::counts::{COUNTED_WRITES, Counts};

/// The headers every answer gets unless its handler set its own (see
/// [`super::security_headers`] for what each is for).
#[derive(Debug)]
pub struct Headers {
    pub always: Vec<(HeaderName, HeaderValue)>,
}

/// The layer: see the module docs.
#[derive(Clone)]
pub struct Answering {
    timeout: Duration,
    headers: Arc<Headers>,
    counts: Arc<Counts>,
}

impl Answering {
    pub fn new(timeout: Duration, headers: Headers, counts: Arc<Counts>) -> Self {
        Answering {
            timeout,
            headers: Arc::new(headers),
            counts,
        }
    }
}

impl<S> Layer<S> for Answering {
    type Service = AnsweringService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnsweringService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AnsweringService<S> {
    inner: S,
    layer: Answering,
}

impl<S> Service<Request> for AnsweringService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AnsweringFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The router names the matched route before its layers run.
        let counted = req.method() == Method::POST
            && req
                .extensions()
                .get::<MatchedPath>()
                .is_some_and(|p| COUNTED_WRITES.contains(&p.as_str()));
        AnsweringFuture {
            inner: self.inner.call(req),
            timer: None,
            deadline: tokio::time::Instant::now() + self.layer.timeout,
            counted,
            layer: self.layer.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct AnsweringFuture<F> {
        #[pin]
        inner: F,
        // Made the first time the handler is not ready, for `deadline`.
        #[pin]
        timer: Option<tokio::time::Sleep>,
        // The request timeout from when the request came.
        deadline: tokio::time::Instant,
        counted: bool,
        layer: Answering,
    }
}

impl<F, E> Future for AnsweringFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.timer.is_none() {
                    this.timer
                        .set(Some(tokio::time::sleep_until(*this.deadline)));
                }
                let timer = this.timer.as_pin_mut().expect("set just above");
                match timer.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => StatusCode::REQUEST_TIMEOUT.into_response(),
                }
            }
        };
        Poll::Ready(Ok(finish(response, *this.counted, this.layer)))
    }
}

/// The answer as it leaves: counts marked stale after an accepted counted write, and the
/// headers its handler did not set.
fn finish(mut response: Response, counted: bool, layer: &Answering) -> Response {
    let status = response.status();
    if counted && (status.is_success() || status.is_redirection()) {
        layer.counts.changed();
    }
    let headers = response.headers_mut();
    for (name, value) in &layer.headers.always {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    // An answer that sets a cookie is one visitor's: no shared cache may keep it.
    if headers.contains_key(header::SET_COOKIE) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn layer(timeout: Duration) -> (Answering, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let headers = Headers {
            always: vec![(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"))],
        };
        (Answering::new(timeout, headers, counts.clone()), counts)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_answered_408_and_a_quick_one_starts_no_timer() {
        let (layer, _) = layer(Duration::from_secs(5));
        let slow = tower::service_fn(|_: Request| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let answer = layer.layer(slow).oneshot(Request::new(Body::empty())).await;
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(answer.headers()[header::X_FRAME_OPTIONS], "DENY");

        let quick = tower::service_fn(|_: Request| async {
            let mut r = Response::new(Body::empty());
            r.headers_mut().insert(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            );
            r.headers_mut()
                .insert(header::SET_COOKIE, HeaderValue::from_static("a=b"));
            Ok::<_, std::convert::Infallible>(r)
        });
        let mut service = layer.layer(quick);
        let mut future = std::pin::pin!(service.call(Request::new(Body::empty())));
        let answer = match futures::poll!(future.as_mut()) {
            Poll::Ready(a) => a.unwrap(),
            Poll::Pending => panic!("a ready handler is answered on the first poll"),
        };
        assert!(future.timer.is_none(), "no timer for a ready handler");
        assert_eq!(
            answer.headers()[header::X_FRAME_OPTIONS],
            "SAMEORIGIN",
            "a handler's own header stays"
        );
        assert_eq!(answer.headers()[header::CACHE_CONTROL], "no-store");
    }
}
