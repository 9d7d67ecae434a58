//! The layer every routed request passes first: it lets the request in through the [`Gate`]
//! (listener, token, in-flight limit) or answers it, and counts the answer with its latency in
//! the metrics. Written as a plain service rather than `from_fn` middleware, so that it costs
//! no allocation per request: predictions are small and many.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::security::{Gate, Slot};
use crate::state::AppState;

/// Builds [`Front`] services that share one gate (so one in-flight limit per listener).
#[derive(Clone)]
pub struct FrontLayer {
    shared: Arc<Shared>,
}

struct Shared {
    gate: Gate,
    state: AppState,
}

impl FrontLayer {
    pub fn new(gate: Gate, state: AppState) -> Self {
        Self { shared: Arc::new(Shared { gate, state }) }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front { inner, shared: self.shared.clone() }
    }
}

#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let route_name = route.as_ref().map(MatchedPath::as_str);
        let outcome = match self.shared.gate.admit(&method, route_name, request.headers()) {
            Ok(slot) => Outcome::Admitted { inner: self.inner.call(request), slot },
            Err(refusal) => {
                Outcome::Refused { answer: Some(self.shared.gate.answer(refusal, &method, route_name)) }
            }
        };
        FrontFuture { outcome, record: Some(Record { shared: self.shared.clone(), method, route, started }) }
    }
}

/// What to count once the answer is known.
struct Record {
    shared: Arc<Shared>,
    method: Method,
    route: Option<MatchedPath>,
    started: Instant,
}

pin_project! {
    pub struct FrontFuture<F> {
        #[pin]
        outcome: Outcome<F>,
        record: Option<Record>,
    }
}

pin_project! {
    #[project = OutcomeProjection]
    enum Outcome<F> {
        Admitted { #[pin] inner: F, slot: Option<Slot> },
        Refused { answer: Option<Response> },
    }
}

impl<F> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.outcome.project() {
            OutcomeProjection::Admitted { inner, slot } => {
                let Ok(response) = ready!(inner.poll(cx));
                match slot.take() {
                    Some(slot) => slot.hold_until_sent(response),
                    None => response,
                }
            }
            OutcomeProjection::Refused { answer } => answer.take().expect("polled after it completed"),
        };
        if let Some(Record { shared, method, route, started }) = this.record.take() {
            shared.state.metrics().record_request(
                &method,
                route,
                response.status().as_u16(),
                started.elapsed(),
            );
        }
        Poll::Ready(Ok(response))
    }
}
