//! On a predictor, the reads that only the trainer can answer (its jobs and their event streams,
//! the dataset it trains on) are passed through to the trainer given by `--trainer-url`, as they
//! are, so that a client behind a load balancer sees one service. Without a trainer URL, or when
//! the trainer does not answer, they get a JSON error saying so.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{ApiState, AppError};

/// How long connecting to the trainer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The way to the trainer: its base URL and a pooled HTTP client.
#[derive(Clone, Debug)]
pub struct TrainerLink {
    base: Uri,
    url: String,
    client: Client<HttpConnector, Body>,
}

impl TrainerLink {
    /// A link to the trainer at `url` (`http://HOST:PORT`); `https` is for a proxy in front of
    /// the predictor to reach, not for the predictor itself.
    pub fn new(url: &str) -> Result<Self, String> {
        let url = url.trim_end_matches('/').to_owned();
        let base: Uri = url.parse().map_err(|error| format!("--trainer-url {url:?}: {error}"))?;
        if base.scheme_str() != Some("http") || base.authority().is_none() {
            return Err(format!("--trainer-url {url:?}: give it as http://HOST:PORT"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { base, url, client })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The trainer's URI for the path and query of `uri`.
    fn target(&self, uri: &Uri) -> Uri {
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        format!("{}{path}", self.url).parse().unwrap_or_else(|_| self.base.clone())
    }
}

/// Passes a request to the trainer and its answer back; the route is one that only the trainer
/// serves.
pub async fn to_trainer(State(state): State<ApiState>, request: Request) -> Response {
    let Some(trainer) = state.trainer.clone() else {
        let message = format!(
            "{} is served by the trainer: this node only predicts (--role predictor), and was not \
             told where the trainer is (--trainer-url)",
            request.uri().path()
        );
        return AppError::new(StatusCode::FORBIDDEN, message).into_response();
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = trainer.target(&parts.uri);
    parts.headers.remove(header::HOST);
    match trainer.client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => answer.map(Body::new).into_response(),
        Err(error) => {
            let message = format!("the trainer at {} did not answer: {error}", trainer.url());
            AppError::new(StatusCode::BAD_GATEWAY, message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainer_urls_are_http_with_a_host() {
        let link = TrainerLink::new("http://10.0.0.5:5000/").unwrap();
        assert_eq!(link.url(), "http://10.0.0.5:5000");
        let target = link.target(&"/v1/jobs/3?history=full".parse().unwrap());
        assert_eq!(target, "http://10.0.0.5:5000/v1/jobs/3?history=full");
        for bad in ["10.0.0.5:5000", "https://trainer", "http://", "not a url"] {
            assert!(TrainerLink::new(bad).is_err(), "{bad}");
        }
    }
}
