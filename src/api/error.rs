//! The one error type of the HTTP layer: every failure becomes `{"error": "..."}` with the
//! status code that fits it, including axum's own rejections of malformed requests.

use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::data::DataError;
use crate::jobs::JobError;
use crate::model::PredictError;
use crate::train::TrainError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error("{message}")]
    Status { status: StatusCode, message: String },
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Status { status, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Data(error) => data_status(error),
            Self::Job(JobError::Busy { .. }) => StatusCode::CONFLICT,
            Self::Job(JobError::Data(error)) => data_status(error),
            Self::Job(JobError::Train(TrainError::Cancelled { .. })) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Job(JobError::Train(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Job(JobError::Crashed { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Predict(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Status { status, .. } => *status,
        }
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
        if status.is_server_error() {
            tracing::error!(%status, error = %message, "request failed");
        } else {
            tracing::debug!(%status, error = %message, "request rejected");
        }
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// Implements `From<rejection>` keeping the rejection's own status and text.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for AppError {
            fn from(rejection: $rejection) -> Self {
                Self::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(JsonRejection, QueryRejection, BytesRejection, MultipartRejection, MultipartError);
