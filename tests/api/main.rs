//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP.

mod binary;
mod concurrency;
mod dataset;
mod errors;
mod helpers;
mod jobs;
mod model;
mod predict;
mod train;
mod upload;
mod versions;
