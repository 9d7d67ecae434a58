//! The checks and limits every routed request passes before its handler, by its route's
//! [`Class`]: the host it names, the listener, its token, the origin of a state change, then the
//! slot it takes (a request, a stream or an upload slot). Refusals are answered here, each with
//! its own status and message.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppError;
use super::access::{Hosts, Tokens, cross_origin};
use super::body::Pace;
use super::budget::Budget;
use super::routes::{Class, Classes, Slot};
use crate::settings::Limits;

/// Everything the gate of one listener checks against.
pub struct Gate {
    pub classes: Arc<Classes>,
    pub tokens: Tokens,
    pub hosts: Hosts,
    pub cors_origins: Vec<String>,
    /// Whether this listener serves the state-changing routes.
    pub changes: Changes,
    pub budget: Budget,
    pub pace: Pace,
    pub max_body: usize,
    slots: Slots,
    in_flight: Gauge,
}

/// The three limits, one semaphore each.
struct Slots {
    requests: (Arc<Semaphore>, usize),
    streams: (Arc<Semaphore>, usize),
    uploads: (Arc<Semaphore>, usize),
}

/// Whether a listener serves the state-changing routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    Served,
    /// Only the admin listener serves them (`--admin-addr`).
    OnlyOnAdminListener,
    /// This node only predicts (`--role predictor`); the trainer is at `trainer_url`, if known.
    RefusedByPredictor {
        trainer_url: Option<String>,
    },
}

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` header names a host this server does not answer to.
    UnknownHost(String),
    /// A state-changing route on the main listener, when an admin listener exists.
    NotOnThisListener,
    /// A state-changing route on a predictor.
    OnlyPredicts,
    /// The route needs a token that the request does not carry.
    Unauthorized(&'static str),
    /// A state change from a browser page of another origin.
    CrossOrigin(String),
    /// The limit of the route's slot is reached.
    Busy(Slot),
}

/// The stream slot of a request, in its extensions for a handler whose stream outlives its
/// answer (a WebSocket, after the `101`): the slot is free once every holder has let go.
#[derive(Clone)]
pub struct StreamSlot(#[allow(dead_code, reason = "held for its drop")] pub Arc<Held>);

/// A held slot, counted in the in-flight gauge when it is a request slot.
pub struct Held {
    _permit: OwnedSemaphorePermit,
    counted: Option<Gauge>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(gauge) = &self.counted {
            gauge.dec();
        }
    }
}

impl Gate {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        classes: Arc<Classes>,
        tokens: Tokens,
        hosts: Hosts,
        cors_origins: Vec<String>,
        changes: Changes,
        limits: &Limits,
        budget: Budget,
        in_flight: Gauge,
    ) -> Self {
        let semaphore = |limit: usize| {
            let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
            (Arc::new(Semaphore::new(limit)), limit)
        };
        Self {
            classes,
            tokens,
            hosts,
            cors_origins,
            changes,
            budget,
            pace: Pace { idle: limits.body_idle_timeout, min_rate: limits.min_body_rate },
            max_body: limits.max_body_bytes,
            slots: Slots {
                requests: semaphore(limits.max_concurrent),
                streams: semaphore(limits.max_streams),
                uploads: semaphore(limits.max_uploads),
            },
            in_flight,
        }
    }

    /// The checks before the body: host, listener, token and origin.
    pub fn check(&self, class: Option<Class>, headers: &HeaderMap) -> Result<(), Refusal> {
        self.hosts.allows(headers).map_err(Refusal::UnknownHost)?;
        let Some(class) = class else { return Ok(()) };
        if class.changes_state() {
            match self.changes {
                Changes::Served => {}
                Changes::OnlyOnAdminListener => return Err(Refusal::NotOnThisListener),
                Changes::RefusedByPredictor { .. } => return Err(Refusal::OnlyPredicts),
            }
        }
        self.tokens.allows(class.need(), headers).map_err(Refusal::Unauthorized)?;
        if class.changes_state()
            && let Some(origin) = cross_origin(headers, &self.cors_origins)
        {
            return Err(Refusal::CrossOrigin(origin));
        }
        Ok(())
    }

    /// Takes the slot the class counts against (none for probes and unrouted requests).
    pub fn take_slot(&self, class: Option<Class>) -> Result<Option<Held>, Refusal> {
        let Some(slot) = class.and_then(Class::slot) else { return Ok(None) };
        let (semaphore, _) = self.semaphore(slot);
        let permit = semaphore.clone().try_acquire_owned().map_err(|_| Refusal::Busy(slot))?;
        let counted = (slot == Slot::Request).then(|| {
            self.in_flight.inc();
            self.in_flight.clone()
        });
        Ok(Some(Held { _permit: permit, counted }))
    }

    /// The answer to a refused request.
    pub fn answer(&self, refusal: Refusal, method: &Method, route: Option<&str>) -> Response {
        match refusal {
            Refusal::UnknownHost(host) => {
                let message = format!(
                    "this server does not answer to the host name {host:?} (a DNS-rebinding page would use one); \
                     start it with --allowed-host to add the name"
                );
                AppError::new(StatusCode::MISDIRECTED_REQUEST, message).into_response()
            }
            Refusal::NotOnThisListener => {
                let message = format!(
                    "{method} {} is served only on the admin listener (--admin-addr), not on this address",
                    route.unwrap_or_default()
                );
                AppError::new(StatusCode::FORBIDDEN, message).into_response()
            }
            Refusal::OnlyPredicts => {
                let trainer = match &self.changes {
                    Changes::RefusedByPredictor { trainer_url: Some(url) } => {
                        format!("send it to the trainer at {url}")
                    }
                    _ => "send it to the trainer".to_owned(),
                };
                let message = format!(
                    "{method} {} changes the state, and this node only predicts (--role predictor): {trainer}",
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
            Refusal::CrossOrigin(origin) => {
                let message = format!(
                    "{method} {} from {origin} is refused: a page of another site may not change this server's \
                     state (allow an origin with --cors-origin)",
                    route.unwrap_or_default()
                );
                AppError::new(StatusCode::FORBIDDEN, message).into_response()
            }
            Refusal::Busy(slot) => self.busy(slot),
        }
    }

    fn busy(&self, slot: Slot) -> Response {
        let (_, limit) = self.semaphore(slot);
        let what = match slot {
            Slot::Request => format!("its limit of {limit} requests at once (--max-concurrent)"),
            Slot::Stream => {
                format!("its limit of {limit} event streams and downloads at once (--max-streams)")
            }
            Slot::Upload => format!("its limit of {limit} uploads at once (--max-uploads)"),
        };
        AppError::Busy(format!("the server is answering {what}; try again shortly")).into_response()
    }

    fn semaphore(&self, slot: Slot) -> &(Arc<Semaphore>, usize) {
        match slot {
            Slot::Request => &self.slots.requests,
            Slot::Stream => &self.slots.streams,
            Slot::Upload => &self.slots.uploads,
        }
    }
}
