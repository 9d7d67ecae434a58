//! `POST /upload`: multipart field `file` holding a CSV. The file is streamed to a staging file
//! of the store, validated there, and only then installed as the active dataset, so a bad or
//! interrupted upload never touches the previous one.

use axum::extract::multipart::Field;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

use super::AppError;
use super::error::ErrorBody;
use crate::data::{DataError, parse_csv};
use crate::state::AppState;
use crate::storage::StoreError;

/// Room for the multipart boundaries and part headers around the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The form `POST /upload` takes, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The CSV file, with a header line.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/upload", tag = "dataset",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The dataset is replaced", content_type = "text/plain; charset=utf-8", body = String, example = "success"),
        (status = 400, description = "A malformed form, or no field `file`", body = ErrorBody),
        (status = 408, description = "The file arrived too slowly", body = ErrorBody),
        (status = 413, description = "The file is larger than `--max-upload`", body = ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = ErrorBody),
        (status = 422, description = "A CSV that cannot be used", body = ErrorBody),
        (status = 500, description = "The dataset could not be written", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    match receive_upload(&state, &headers, multipart).await {
        Ok(()) => "success".into_response(),
        // The body may not have been read to its end; closing says so, where keeping the
        // connection would leave the rest of the body to be read as the client's next request.
        Err(error) => ([(header::CONNECTION, "close")], error).into_response(),
    }
}

async fn receive_upload(
    state: &AppState,
    headers: &HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(), AppError> {
    let limit = state.limits().max_upload_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(too_large(limit));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("multipart/form-data") {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "upload the CSV as multipart/form-data with a field named `file` (curl -F file=@data.csv)",
        ));
    }
    let mut multipart = multipart?;
    while let Some(field) = multipart.next_field().await? {
        if field.name() == Some("file") {
            return receive_dataset(state, field, limit).await;
        }
    }
    Err(AppError::new(StatusCode::BAD_REQUEST, "the multipart form has no field named `file`"))
}

/// Streams the field to disk, then parses and validates it off the async workers, and installs
/// it.
async fn receive_dataset(state: &AppState, mut field: Field<'_>, limit: u64) -> Result<(), AppError> {
    let temp = state.datasets().staging_file()?;
    let store = state.store().name().to_owned();
    let failed = |action: &'static str| {
        let store = store.clone();
        move |error: std::io::Error| StoreError::from_io(&store, action, "a staging file", &error)
    };
    let mut file = tokio::fs::File::from_std(temp.reopen().map_err(failed("open"))?);
    let mut received: u64 = 0;
    // A client that sends too slowly is cut off by the paced body under the field.
    while let Some(chunk) = field.chunk().await? {
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(failed("write"))?;
    }
    file.flush().await.map_err(failed("write"))?;
    drop(file);
    tracing::info!(bytes = received, "upload received");

    // One upload is parsed at a time (parsing uses every core, and holds the numbers of the
    // file in memory); the others wait here, their files on disk.
    let _turn = state.datasets().parse_turn().await;
    let reader = temp.reopen().map_err(DataError::storage("read the upload"))?;
    let dataset =
        tokio::task::spawn_blocking(move || parse_csv(reader)).await.map_err(super::join_error)??;
    tracing::info!(rows = dataset.rows(), columns = ?dataset.column_names(), "dataset accepted");
    Ok(state.datasets().install(temp, dataset).await?)
}

fn too_large(limit: u64) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the file is larger than the upload limit of {limit} bytes (--max-upload)"),
    )
}
