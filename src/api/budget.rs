//! The budget of requests in flight: the memory their bodies and answers hold, and the cores
//! their heavy work takes.
//!
//! Bytes of request bodies being received and of answers waiting to be sent, over [`SMALL`] each,
//! are reserved here first. A client that sends large bodies, or never reads large answers, can
//! then hold at most the budget, and a request that would go beyond it is answered 503 instead of
//! growing the process. Work too large for the async workers (parsing a large body, serialising a
//! large answer) runs on blocking threads, at most one per core at a time: however many such
//! requests arrive, the workers keep their share of the cores to answer everything else.

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppError;

/// Bodies and answers up to this size are not counted: the request limit bounds them.
pub const SMALL: usize = 64 * 1024;
/// The budget is kept in units of this many bytes.
const UNIT: u64 = 1024;

/// Shared by every listener; clones share the budget.
#[derive(Clone)]
pub struct Budget {
    units: Arc<Semaphore>,
    bytes: u64,
    /// One permit per core for heavy work off the async workers.
    cores: Arc<Semaphore>,
}

/// Bytes held against the budget until dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            units: Arc::new(Semaphore::new(units as usize)),
            bytes,
            cores: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Runs `work` on a blocking thread once a core is free for it (waiting its turn).
    pub async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let core = self.cores.clone().acquire_owned().await.expect("the core semaphore is never closed");
        let done = tokio::task::spawn_blocking(move || {
            let _core = core;
            work()
        });
        done.await.map_err(super::join_error)
    }

    /// Reserves `bytes`, or says the budget is used up (503).
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, AppError> {
        let mut reservation = Reservation::none();
        self.cover(&mut reservation, bytes)?;
        Ok(reservation)
    }

    /// Grows `reservation` to cover `bytes` in all (nothing for [`SMALL`] amounts), or says the
    /// budget is used up (503); a reservation that covers them already stays as it is.
    pub fn cover(&self, reservation: &mut Reservation, bytes: usize) -> Result<(), AppError> {
        if bytes <= SMALL {
            return Ok(());
        }
        let wanted = u32::try_from((bytes as u64).div_ceil(UNIT)).unwrap_or(u32::MAX);
        let held = reservation.permit.as_ref().map_or(0, |permit| permit.num_permits() as u32);
        if wanted <= held {
            return Ok(());
        }
        let extra = self.units.clone().try_acquire_many_owned(wanted - held).map_err(|_| self.exhausted())?;
        match &mut reservation.permit {
            Some(permit) => permit.merge(extra),
            None => reservation.permit = Some(extra),
        }
        Ok(())
    }

    /// The answer when the budget is used up.
    pub fn exhausted(&self) -> AppError {
        AppError::Busy(format!(
            "the server holds its limit of {} MiB of request bodies and answers in memory (--max-buffered); \
             try again shortly, or send smaller requests",
            self.bytes >> 20
        ))
    }
}

impl Reservation {
    /// No bytes reserved.
    pub fn none() -> Self {
        Self { permit: None }
    }

    /// `response` with this reservation held until its body has been sent or dropped.
    pub fn hold_until_sent(self, response: Response) -> Response {
        if self.permit.is_none() {
            return response;
        }
        super::server::Guarded::hold(response, self)
    }
}

/// `value` as a JSON answer. Large ones (by `estimate`, in bytes) are reserved against the
/// budget and serialised on a blocking thread, so that building them holds up no other request.
pub async fn large_json<T>(budget: &Budget, estimate: usize, value: T) -> Result<Response, AppError>
where
    T: serde::Serialize + Send + 'static,
{
    let json = |value: &T| serde_json::to_vec(value).expect("answers serialise");
    if estimate <= SMALL {
        return Ok(json_response(json(&value)));
    }
    let reservation = budget.reserve(estimate)?;
    let bytes = budget.offload(move || json(&value)).await?;
    Ok(reservation.hold_until_sent(json_response(bytes)))
}

fn json_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_come_back_when_dropped_and_small_ones_are_free() {
        let budget = Budget::new(1 << 20);
        let first = budget.reserve(600 << 10).unwrap();
        assert!(budget.reserve(600 << 10).is_err(), "over the budget");
        assert!(budget.reserve(SMALL).is_ok(), "small ones are not counted");
        drop(first);
        let mut held = budget.reserve(600 << 10).unwrap();
        assert!(budget.cover(&mut held, 900 << 10).is_ok());
        assert!(budget.cover(&mut held, 800 << 10).is_ok(), "covered already");
        assert!(budget.cover(&mut held, 1200 << 10).is_err());
        drop(held);
        assert!(budget.reserve(1 << 20).is_ok());
        assert_eq!(budget.exhausted().status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
