//! regserve trains and serves a linear-regression model over HTTP.
//!
//! The crate is layered so each part can be read and tested alone:
//! [`train`] is the numeric core (no I/O), [`data`] parses and validates datasets, [`model`] is
//! the fitted model that gets served and its file format. [`storage`] is where what must outlive
//! the process is kept (a local directory, an S3-compatible object store, or memory, behind one
//! interface); on it, [`datasets`] keeps the dataset (a base and the appended segments, group
//! committed) and [`registry`] every trained model
//! and which one is active; [`ingest`] decodes appended rows and subscribes to MQTT and Kafka;
//! [`nodes`] is each node's heartbeat and the list of them; [`serving`] is the one prediction service every protocol translates to. [`training`] runs one training at a time in the background (behind a quality gate when asked), [`retrain`] starts trainings
//! by itself on row thresholds, schedules and webhooks,
//! [`metrics`] counts what happens for Prometheus, [`state`] is the shared handle the HTTP layer
//! works on. [`settings`] holds the configuration as plain values; [`app`] composes everything
//! and owns the background tasks, [`api`] serves connections and maps HTTP to the
//! services, and [`cli`] is the command line (the server's flags, `regserve train` and
//! `regserve predict` without a server). Only [`api`] and [`cli`] know HTTP or
//! flags.

pub mod api;
pub mod app;
pub mod cli;
pub mod data;
pub mod datasets;
pub mod digest;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod nodes;
pub mod registry;
pub mod retrain;
pub mod serving;
pub mod settings;
pub mod state;
pub mod storage;
pub mod train;
pub mod training;
pub mod units;
