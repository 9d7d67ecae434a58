//! Who may call what, and how much: bearer tokens, the split between the main and the admin
//! listener, the in-flight request limit, request timeouts and CORS.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppError;
use crate::config::{Access, Token};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the page, its assets, the health probes and the metrics.
    Open,
    /// The read token, when one is set: predictions and the `/v1` reads.
    Read,
    /// The admin token, when one is set: the routes that change the state.
    Admin,
}

/// The access a request needs, from its method and the route template it matched.
///
/// The state-changing routes are exactly `POST /upload`, `POST /train`,
/// `DELETE /v1/jobs/{id}` and `POST /v1/models/{version}/activate`. Unknown paths are open, so
/// that they answer 404 whoever asks.
pub fn need(method: &Method, route: Option<&str>) -> Need {
    match (route, method) {
        (Some("/upload" | "/train" | "/v1/models/{version}/activate"), &Method::POST)
        | (Some("/v1/jobs/{id}"), &Method::DELETE) => Need::Admin,
        (None | Some("/" | "/static/{file}" | "/healthz" | "/readyz" | "/metrics"), _) => Need::Open,
        _ => Need::Read,
    }
}

/// Routes that the in-flight limit leaves alone, so that probes and scrapes still answer
/// when the server is saturated.
fn exempt_from_limit(route: Option<&str>) -> bool {
    matches!(route, Some("/healthz" | "/readyz" | "/metrics"))
}

/// The tokens, kept as SHA-256 digests so every comparison takes the same time whatever the
/// length or content of what a client sends.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
}

impl Tokens {
    pub fn new(access: &Access) -> Self {
        Self { admin: access.admin_token.as_ref().map(digest), read: access.read_token.as_ref().map(digest) }
    }

    fn is_open(&self) -> bool {
        self.admin.is_none() && self.read.is_none()
    }

    /// Whether `headers` carry what `need` asks for. The state-changing routes take the admin
    /// token, or the read token when it is the only one set; reads take either token.
    fn allows(&self, need: Need, headers: &HeaderMap) -> Result<(), &'static str> {
        let accepted: [Option<&[u8; 32]>; 2] = match need {
            Need::Open => return Ok(()),
            Need::Read if self.read.is_none() => return Ok(()),
            Need::Read => [self.read.as_ref(), self.admin.as_ref()],
            Need::Admin => match (&self.admin, &self.read) {
                (Some(admin), _) => [Some(admin), None],
                (None, Some(read)) => [Some(read), None],
                (None, None) => return Ok(()),
            },
        };
        let Some(presented) = bearer(headers) else {
            return Err(match need {
                Need::Admin if self.admin.is_some() => {
                    "this route needs the admin token: send `Authorization: Bearer <token>`"
                }
                _ => "this route needs a token: send `Authorization: Bearer <token>`",
            });
        };
        let presented = Sha256::digest(presented);
        let mut matched = subtle::Choice::from(0);
        for expected in accepted.into_iter().flatten() {
            matched |= presented.as_slice().ct_eq(expected);
        }
        match bool::from(matched) {
            true => Ok(()),
            false => Err("the bearer token is not valid for this route"),
        }
    }
}

fn digest(token: &Token) -> [u8; 32] {
    Sha256::digest(token.as_str().as_bytes()).into()
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii()).filter(|token| !token.is_empty())
}

/// The checks every request passes before its handler: the listener serves the route, the
/// token fits, and a slot is free.
pub struct Gate {
    tokens: Tokens,
    serves_admin_routes: bool,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    in_flight: Gauge,
}

impl Gate {
    pub fn new(tokens: Tokens, serves_admin_routes: bool, max_concurrent: usize, in_flight: Gauge) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            tokens,
            serves_admin_routes,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            in_flight,
        }
    }

    /// Lets a request in, with the slot it holds (none for the routes the limit leaves alone),
    /// or says why not.
    pub fn admit(
        &self,
        method: &Method,
        route: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Option<Slot>, Refusal> {
        let need = need(method, route);
        if need == Need::Admin && !self.serves_admin_routes {
            return Err(Refusal::NotOnThisListener);
        }
        if !self.tokens.is_open()
            && let Err(message) = self.tokens.allows(need, headers)
        {
            return Err(Refusal::Unauthorized(message));
        }
        if exempt_from_limit(route) {
            return Ok(None);
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Err(Refusal::Busy);
        };
        self.in_flight.inc();
        Ok(Some(Slot { _permit: permit, in_flight: self.in_flight.clone() }))
    }

    /// The answer to a refused request: 403 for a state-changing route on the main listener
    /// when an admin listener exists, 401 without the token the route needs, 503 when
    /// `--max-concurrent` requests are already in flight.
    pub fn answer(&self, refusal: Refusal, method: &Method, route: Option<&str>) -> Response {
        match refusal {
            Refusal::NotOnThisListener => {
                let message = format!(
                    "{method} {} is served only on the admin listener (--admin-addr), not on this address",
                    route.unwrap_or_default()
                );
                AppError::new(StatusCode::FORBIDDEN, message).into_response()
            }
            Refusal::Unauthorized(message) => {
                let mut response = AppError::new(StatusCode::UNAUTHORIZED, message).into_response();
                let challenge = HeaderValue::from_static("Bearer realm=\"regserve\"");
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                response
            }
            Refusal::Busy => {
                let message = format!(
                    "the server is answering its limit of {} requests at once (--max-concurrent); try again shortly",
                    self.max_concurrent
                );
                // Not logged as an error: under overload that would add a log line to every refusal.
                let body = axum::Json(serde_json::json!({ "error": message }));
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}

/// Why the gate did not let a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A state-changing route on the main listener, when an admin listener exists.
    NotOnThisListener,
    /// The route needs a token that the request does not carry.
    Unauthorized(&'static str),
    /// `--max-concurrent` requests are in flight already.
    Busy,
}

/// One of the `--max-concurrent` slots, counted in the in-flight gauge while held.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Slot {
    /// Keeps the slot until `response` has been sent when its body is a stream (an event
    /// stream, a file); a body already in memory gives it back now, as the request is done.
    pub fn hold_until_sent(self, response: Response) -> Response {
        if response.body().size_hint().exact().is_some() {
            return response;
        }
        response.map(|body| Body::new(HoldingSlot { body, _slot: self }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// A response body that gives its slot back when it has been sent or dropped.
struct HoldingSlot {
    body: Body,
    _slot: Slot,
}

impl HttpBody for HoldingSlot {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Turns the empty 408 of the request timeout into the service's JSON error.
pub fn timeout_as_json(timeout: Duration) -> impl Fn(Response) -> Response + Clone {
    move |response: Response| {
        if response.status() != StatusCode::REQUEST_TIMEOUT
            || response.headers().contains_key(header::CONTENT_TYPE)
        {
            return response;
        }
        let message =
            format!("the request took longer than {} to answer (--request-timeout)", humanize(timeout));
        AppError::new(StatusCode::REQUEST_TIMEOUT, message).into_response()
    }
}

/// `1.5s`, `250ms`.
pub fn humanize(duration: Duration) -> String {
    match duration.subsec_millis() {
        0 => format!("{}s", duration.as_secs()),
        _ if duration.as_secs() == 0 => format!("{}ms", duration.as_millis()),
        _ => format!("{}s", duration.as_secs_f64()),
    }
}

/// CORS for the listed origins, or `None` (no CORS headers at all) when there are none.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::LOCATION,
                header::ETAG,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    fn tokens(admin: Option<&str>, read: Option<&str>) -> Tokens {
        Tokens::new(&Access {
            admin_token: admin.map(|t| Token::parse(t).unwrap()),
            read_token: read.map(|t| Token::parse(t).unwrap()),
        })
    }

    #[test]
    fn routes_are_classified_by_method_and_template() {
        assert_eq!(need(&Method::POST, Some("/upload")), Need::Admin);
        assert_eq!(need(&Method::POST, Some("/train")), Need::Admin);
        assert_eq!(need(&Method::DELETE, Some("/v1/jobs/{id}")), Need::Admin);
        assert_eq!(need(&Method::POST, Some("/v1/models/{version}/activate")), Need::Admin);
        assert_eq!(need(&Method::GET, Some("/v1/jobs/{id}")), Need::Read);
        assert_eq!(need(&Method::POST, Some("/predict")), Need::Read);
        assert_eq!(need(&Method::GET, Some("/upload")), Need::Read, "405, not 401");
        assert_eq!(need(&Method::GET, Some("/healthz")), Need::Open);
        assert_eq!(need(&Method::GET, Some("/metrics")), Need::Open);
        assert_eq!(need(&Method::GET, None), Need::Open);
    }

    #[test]
    fn tokens_are_checked_per_need() {
        let both = tokens(Some("admin-secret"), Some("read-secret"));
        assert!(both.allows(Need::Admin, &headers("Bearer admin-secret")).is_ok());
        assert!(both.allows(Need::Admin, &headers("bearer  admin-secret ")).is_ok());
        assert!(both.allows(Need::Admin, &headers("Bearer read-secret")).is_err());
        assert!(both.allows(Need::Admin, &headers("Basic admin-secret")).is_err());
        assert!(both.allows(Need::Admin, &HeaderMap::new()).is_err());
        assert!(both.allows(Need::Read, &headers("Bearer read-secret")).is_ok());
        assert!(both.allows(Need::Read, &headers("Bearer admin-secret")).is_ok());
        assert!(both.allows(Need::Read, &headers("Bearer admin-secre")).is_err());
        assert!(both.allows(Need::Open, &HeaderMap::new()).is_ok());

        let admin_only = tokens(Some("admin-secret"), None);
        assert!(admin_only.allows(Need::Read, &HeaderMap::new()).is_ok());
        assert!(admin_only.allows(Need::Admin, &headers("Bearer nope")).is_err());

        let read_only = tokens(None, Some("read-secret"));
        assert!(read_only.allows(Need::Admin, &HeaderMap::new()).is_err(), "writes are never less guarded");
        assert!(read_only.allows(Need::Admin, &headers("Bearer read-secret")).is_ok());
    }

    #[test]
    fn durations_read_like_flags() {
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }
}
