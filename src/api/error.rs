//! The one error type of the HTTP layer: every failure becomes `{"error": "..."}` with the
//! status code that fits it, including axum's own rejections of malformed requests.

use std::sync::Arc;

use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::data::DataError;
use crate::registry::RegistryError;
use crate::serving::ServeError;
use crate::storage::StoreError;
use crate::train::TrainError;
use crate::training::{CancelReason, JobError};

/// What every error answer carries, as the OpenAPI document names it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Job(#[from] JobError),
    /// How a finished job ended, shared with everyone who waited for it.
    #[error(transparent)]
    JobFailed(Arc<JobError>),
    #[error(transparent)]
    Version(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// The server is at a limit: 503 with `Retry-After`, and not logged as an error (under
    /// overload that would add a log line to every refusal).
    #[error("{0}")]
    Busy(String),
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Status { status, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Data(error) => data_status(error),
            Self::Job(error) => job_status(error),
            Self::JobFailed(error) => job_status(error),
            Self::Version(error) => version_status(error),
            Self::Store(error) => store_status(error),
            Self::Serve(error) => serve_status(error),
            Self::Status { status, .. } => *status,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The status of a prediction that was not made, the same for every protocol that answers
/// with this type.
pub fn serve_status(error: &ServeError) -> StatusCode {
    match error {
        ServeError::NotTrained => StatusCode::CONFLICT,
        ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServeError::UnknownModel { .. } => StatusCode::NOT_FOUND,
        ServeError::Version(error) => version_status(error),
        ServeError::Shape { .. } | ServeError::Predict(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn job_status(error: &JobError) -> StatusCode {
    match error {
        JobError::Busy { .. } | JobError::NoModelToWarmStart => StatusCode::CONFLICT,
        JobError::Cancelled { by: CancelReason::Request, .. } => StatusCode::CONFLICT,
        JobError::Cancelled { by: CancelReason::Shutdown, .. } => StatusCode::SERVICE_UNAVAILABLE,
        JobError::Data(error) => data_status(error),
        JobError::Train(TrainError::Cancelled { .. }) => StatusCode::CONFLICT,
        JobError::Train(_) => StatusCode::UNPROCESSABLE_ENTITY,
        JobError::Store(error) => version_status(error),
        JobError::Crashed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn version_status(error: &RegistryError) -> StatusCode {
    match error {
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Conflict { .. } => StatusCode::CONFLICT,
        RegistryError::Corrupt { .. } | RegistryError::Unreadable(_) | RegistryError::Unstorable(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        RegistryError::Store(error) => store_status(error),
    }
}

/// A store that refused or did not answer: never a 500, and nothing stored has changed.
fn store_status(error: &StoreError) -> StatusCode {
    match error {
        StoreError::AlreadyExists { .. } | StoreError::Conflict { .. } => StatusCode::CONFLICT,
        StoreError::Full { .. } => StatusCode::INSUFFICIENT_STORAGE,
        StoreError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn data_status(error: &DataError) -> StatusCode {
    match error {
        DataError::Storage { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        DataError::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        let busy = matches!(self, Self::Busy(_));
        if status.is_server_error() && !busy {
            tracing::error!(%status, error = %message, "request failed");
        } else {
            tracing::debug!(%status, error = %message, "request rejected");
        }
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        if busy {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Implements `From<rejection>` keeping the rejection's own status and text, except that a
/// body that arrived too slowly is a 408.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for AppError {
            fn from(rejection: $rejection) -> Self {
                if let Some(slow) = super::body::too_slow(&rejection) {
                    return Self::new(StatusCode::REQUEST_TIMEOUT, slow.to_string());
                }
                Self::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(
    JsonRejection,
    QueryRejection,
    BytesRejection,
    PathRejection,
    MultipartRejection,
    MultipartError
);
