//! The web page, compiled into the binary so it works offline and from any directory.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::error::ErrorBody;
use super::{AppError, AppPath};

const INDEX_HTML: &str = include_str!("../../static/index.html");

/// Every asset the page loads: name, content type, contents.
const ASSETS: [(&str, &str, &str); 14] = [
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../static/app.js")),
    ("core.js", "text/javascript; charset=utf-8", include_str!("../../static/core.js")),
    ("token.js", "text/javascript; charset=utf-8", include_str!("../../static/token.js")),
    ("events.js", "text/javascript; charset=utf-8", include_str!("../../static/events.js")),
    ("data.js", "text/javascript; charset=utf-8", include_str!("../../static/data.js")),
    ("train.js", "text/javascript; charset=utf-8", include_str!("../../static/train.js")),
    ("models.js", "text/javascript; charset=utf-8", include_str!("../../static/models.js")),
    ("predict.js", "text/javascript; charset=utf-8", include_str!("../../static/predict.js")),
    ("plots.js", "text/javascript; charset=utf-8", include_str!("../../static/plots.js")),
    ("nodes.js", "text/javascript; charset=utf-8", include_str!("../../static/nodes.js")),
    ("intake.js", "text/javascript; charset=utf-8", include_str!("../../static/intake.js")),
    ("timeline.js", "text/javascript; charset=utf-8", include_str!("../../static/timeline.js")),
    ("triggers.js", "text/javascript; charset=utf-8", include_str!("../../static/triggers.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../static/style.css")),
];

/// `GET /`: the page.
#[utoipa::path(get, path = "/", tag = "page",
    responses((status = 200, description = "The web page", content_type = "text/html", body = String)))]
pub async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

/// `GET /static/{file}`: a script or style sheet of the page.
#[utoipa::path(get, path = "/static/{file}", tag = "page",
    params(("file" = String, Path, description = "The asset's name", example = "app.js")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript; charset=utf-8"), (String = "text/css; charset=utf-8"))),
        (status = 404, description = "No asset has that name", body = ErrorBody),
    ))]
pub async fn asset(AppPath(file): AppPath<String>) -> Result<Response, AppError> {
    let (_, content_type, contents) = ASSETS
        .iter()
        .find(|(name, ..)| *name == file)
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, format!("no asset named {file:?}")))?;
    Ok(([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "no-cache")], *contents)
        .into_response())
}
