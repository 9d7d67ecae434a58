//! `GET /v1/nodes`: every node sharing this node's store, as their heartbeats say, with the age
//! of each heartbeat and whether the node is up, lost or stopped.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiState, AppError};
use crate::nodes::NodeStatus;

/// The nodes, and which of them answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeList {
    answered_by: String,
    nodes: Vec<NodeStatus>,
}

#[utoipa::path(get, path = "/v1/nodes", tag = "nodes",
    responses(
        (status = 200, description = "Every node sharing the store", body = NodeList),
        (status = 409, description = "The store refused the listing", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
pub async fn list(State(api): State<ApiState>) -> Result<Json<NodeList>, AppError> {
    let nodes = api.nodes.nodes(api.app.store().as_ref()).await?;
    Ok(Json(NodeList { answered_by: api.node_id, nodes }))
}
