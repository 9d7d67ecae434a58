//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP.

mod binary;
mod concurrency;
mod dataset;
mod errors;
mod faults;
mod helpers;
mod hostile;
mod jobs;
mod load;
mod model;
mod observability;
mod predict;
mod security;
mod train;
mod upload;
mod versions;
