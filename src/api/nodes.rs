//! `GET /v1/nodes`: every node sharing this node's store, as their heartbeats say, with the age
//! of each heartbeat and whether the node is up, lost or stopped.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiState, AppError};

pub async fn list(State(api): State<ApiState>) -> Result<Json<Value>, AppError> {
    let nodes = api.nodes.nodes(api.app.store().as_ref()).await?;
    Ok(Json(json!({ "answered_by": api.node_id, "nodes": nodes })))
}
