//! regserve trains and serves a linear-regression model over HTTP.
//!
//! The crate is layered so each part can be read and tested alone:
//! [`train`] is the numeric core (no I/O), [`data`] parses, validates and stores datasets,
//! [`model`] is the fitted model that gets served, [`versions`] stores every trained model and
//! which one is active, [`training`] runs one training at a time in the background, [`metrics`] counts what
//! happens for Prometheus, [`state`] is the shared handle the HTTP layer works on, [`api`] maps HTTP to
//! all of that, and [`startup`] binds a listener and runs the server.
//! [`storage`] is where what must outlive the process is kept: a local directory, an
//! S3-compatible object store, or memory, behind one interface.
//! [`cli`] is the offline command line: `regserve train` and `regserve predict` without a server.

pub mod api;
pub mod app;
pub mod cli;
pub mod data;
pub mod metrics;
pub mod model;
pub mod server;
pub mod settings;
pub mod state;
pub mod storage;
pub mod train;
pub mod training;
pub mod units;
pub mod versions;
