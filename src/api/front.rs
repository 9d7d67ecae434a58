//! The layer every routed request passes first. It lets the request through the [`Gate`]
//! (host, listener, token, origin), receives its body whole when the route's class says so
//! (paced, within `--max-body` and the memory budget) before the request takes its slot, so that
//! a client sending slowly holds a connection but no slot, then calls the handler and counts the
//! answer with its latency in the metrics. Written as a plain service rather than `from_fn`
//! middleware, so that a request without a body costs no allocation here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use super::AppError;
use super::body::{PacedBody, too_slow};
use super::budget::Reservation;
use super::gate::{Gate, Held, StreamSlot};
use super::routes::{Class, Slot};
use crate::state::AppState;

/// Builds [`Front`] services that share one gate (so one set of limits per listener).
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
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let gate = &self.shared.gate;
        let matched = request.extensions().get::<MatchedPath>();
        let route = matched.and_then(|path| gate.classes.template(path.as_str()));
        let method = request.method().clone();
        let class = gate.classes.of(&method, route);
        let record = Some(Record { shared: self.shared.clone(), method, route, started });
        let has_body = !request.body().is_end_stream();
        let stage = match gate.check(class, request.headers()) {
            Err(refusal) => refused(gate.answer(refusal, request.method(), route_name(&record)), has_body),
            Ok(()) if has_body && class.is_some_and(Class::receives_body_first) => {
                receive(&self.shared, self.inner.clone(), class, request)
            }
            Ok(()) => {
                let request = match has_body {
                    true => request.map(|body| Body::new(PacedBody::new(body, gate.pace))),
                    false => request,
                };
                call(gate, self.inner.clone(), class, request, Reservation::none())
            }
        };
        FrontFuture { stage, record }
    }
}

fn route_name(record: &Option<Record>) -> Option<&str> {
    record.as_ref().and_then(|record| record.route)
}

/// Starts receiving a body, after checking its declared length against the limit and the budget.
fn receive<S>(shared: &Arc<Shared>, service: S, class: Option<Class>, request: Request) -> Stage<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    let (gate, shared) = (&shared.gate, shared.clone());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > gate.max_body) {
        return refused(too_large(gate.max_body), true);
    }
    let reservation = match gate.budget.reserve(declared.unwrap_or(0)) {
        Ok(reservation) => reservation,
        Err(error) => return refused(error.into_response(), true),
    };
    let (parts, body) = request.into_parts();
    let pending = Pending { shared, parts, service, class, chunks: Vec::new(), received: 0, reservation };
    Stage::Receiving { body: PacedBody::new(body, gate.pace), pending: Some(pending) }
}

/// Takes the class's slot and calls the handler; `body` is the memory of a received body, held
/// until the handler is done with it.
fn call<S>(gate: &Gate, service: S, class: Option<Class>, request: Request, body: Reservation) -> Stage<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    match gate.take_slot(class) {
        Ok(held) => {
            let stream = class.and_then(Class::slot) == Some(Slot::Stream);
            let held = held.map(Arc::new);
            let mut request = request;
            if let (true, Some(held)) = (stream, &held) {
                request.extensions_mut().insert(StreamSlot(held.clone()));
            }
            Stage::Calling { answer: service.oneshot(request), held, stream, _body: body }
        }
        Err(refusal) => refused(gate.answer(refusal, request.method(), None), false),
    }
}

/// A refusal, closing the connection when the request's body is left unread (its rest would
/// otherwise be read as the client's next request).
fn refused<S>(mut answer: Response, body_unread: bool) -> Stage<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    if body_unread {
        answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Stage::Answered { answer: Some(answer) }
}

fn too_large(limit: usize) -> Response {
    let message = format!("the request body is larger than the limit of {limit} bytes (--max-body)");
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response()
}

/// What to count once the answer is known.
struct Record {
    shared: Arc<Shared>,
    method: Method,
    route: Option<&'static str>,
    started: Instant,
}

/// A body being received, and what the request needs once it is whole.
struct Pending<S> {
    shared: Arc<Shared>,
    parts: Parts,
    service: S,
    class: Option<Class>,
    chunks: Vec<Bytes>,
    received: usize,
    reservation: Reservation,
}

pin_project! {
    pub struct FrontFuture<S>
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        #[pin]
        stage: Stage<S>,
        record: Option<Record>,
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<S>
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        Receiving { #[pin] body: PacedBody, pending: Option<Pending<S>> },
        Calling { #[pin] answer: Oneshot<S, Request>, held: Option<Arc<Held>>, stream: bool, _body: Reservation },
        Answered { answer: Option<Response> },
    }
}

impl<S> Future for FrontFuture<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = loop {
            match this.stage.as_mut().project() {
                StageProjection::Receiving { body, pending } => {
                    let next = match ready!(poll_receive(body, pending, cx)) {
                        Ok(whole) => whole,
                        Err(answer) => refused(answer, true),
                    };
                    this.stage.set(next);
                }
                StageProjection::Calling { answer, held, stream, .. } => {
                    let Ok(response) = ready!(answer.poll(cx));
                    break match (*stream, held.take()) {
                        (true, Some(held)) => super::server::Guarded::hold(response, held),
                        _ => response,
                    };
                }
                StageProjection::Answered { answer } => {
                    break answer.take().expect("polled after it completed");
                }
            }
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

/// Receives the rest of a body, covering it in the memory budget as it grows; once it is whole,
/// the stage that calls the handler with it.
fn poll_receive<S>(
    mut body: Pin<&mut PacedBody>,
    pending: &mut Option<Pending<S>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Stage<S>, Response>>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    let receiving = pending.as_mut().expect("polled after the body was received");
    let shared = receiving.shared.clone();
    let gate = &shared.gate;
    while let Some(frame) = ready!(body.as_mut().poll_frame(cx)) {
        let frame = frame.map_err(|error| unreadable(&error))?;
        let Ok(data) = frame.into_data() else { continue };
        receiving.received += data.len();
        if receiving.received > gate.max_body {
            return Poll::Ready(Err(too_large(gate.max_body)));
        }
        gate.budget
            .cover(&mut receiving.reservation, receiving.received)
            .map_err(IntoResponse::into_response)?;
        receiving.chunks.push(data);
    }
    let Pending { parts, service, class, chunks, reservation, .. } = pending.take().expect("checked above");
    let bytes = match chunks.len() {
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => Bytes::from(chunks.concat()),
    };
    Poll::Ready(Ok(call(gate, service, class, Request::from_parts(parts, Body::from(bytes)), reservation)))
}

/// The answer to a body that could not be read: too slow (408), or broken off (400).
fn unreadable(error: &axum::Error) -> Response {
    match too_slow(error) {
        Some(slow) => AppError::new(StatusCode::REQUEST_TIMEOUT, slow.to_string()).into_response(),
        None => {
            AppError::new(StatusCode::BAD_REQUEST, format!("the request body could not be read: {error}"))
                .into_response()
        }
    }
}
