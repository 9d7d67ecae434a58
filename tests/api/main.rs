//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP.

mod binary;
#[cfg(all(feature = "mqtt", feature = "kafka"))]
mod brokers;
mod cluster;
mod concurrency;
mod connections;
mod data;
mod dataset;
mod disk;
mod durability;
mod errors;
mod faults;
#[cfg(feature = "s3")]
mod fleet;
mod helpers;
mod hostile;
mod jobs;
mod kserve;
mod load;
mod memory;
mod mlflow;
mod model;
mod model_events;
mod numbers;
mod observability;
mod openapi;
mod origins;
mod outage;
mod predict;
#[cfg(all(feature = "mqtt", feature = "kafka"))]
mod predict_streams;
mod process;
mod security;
mod served;
mod shutdown;
mod stored;
mod stores;
mod tf_serving;
#[cfg(feature = "tls")]
mod tls;
mod train;
mod triggers;
mod upload;
mod versions;
