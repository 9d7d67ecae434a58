//! The flags of the server (`regserve`, `regserve serve`) and their `REGSERVE_*` environment
//! variables, turned into [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::ingest::settings::{parse_kafka_broker, parse_mqtt_url};
use crate::nodes::host_name;
use crate::settings::{
    Access, ClusterSettings, ConnectionLimits, DEFAULT_MODEL_NAME, IntakeSettings, KafkaSettings, Limits,
    Location, MqttPredictSettings, MqttSettings, RetrainSettings, Role, Settings, SourceSettings, TlsFiles,
    Token, TrainingPriority, default_data_dir, parse_host_name, parse_origin,
};
use crate::units::{parse_bytes, parse_duration};

/// Flags of the HTTP server.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("mqtt_filters").multiple(true)))]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "REGSERVE_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// Where to keep the uploaded dataset and the trained model versions: a directory (or
    /// file://DIR), s3://BUCKET[/PREFIX] on an S3-compatible object store (endpoint, region and
    /// credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP), or memory:// (nothing outlives the process)
    /// [default: $XDG_DATA_HOME/regserve, else ~/.local/share/regserve, else ./regserve-data].
    #[arg(long, env = "REGSERVE_STORE", value_parser = Location::parse, conflicts_with = "data_dir")]
    pub store: Option<Location>,
    /// A directory to keep the state in: the same as --store DIR.
    #[arg(long, env = "REGSERVE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// What this node does: `all` (train and predict, on its own or beside others on one
    /// store), `trainer` (the one node of a cluster that trains), or `predictor` (predicts only,
    /// following the model the trainer activates; state changes are refused with 403).
    #[arg(long, env = "REGSERVE_ROLE", default_value = "all", value_parser = Role::parse)]
    pub role: Role,
    /// On a predictor: the trainer's address (http://HOST:PORT), named in its refusals and used
    /// to pass on the reads only the trainer answers (jobs, the dataset).
    #[arg(long, env = "REGSERVE_TRAINER_URL")]
    pub trainer_url: Option<String>,
    /// On a predictor: a directory to keep the last good model in, so that a restart while the
    /// store cannot be reached still serves it.
    #[arg(long, env = "REGSERVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// On a predictor: how often to look at the active-model pointer (one conditional read).
    #[arg(long, env = "REGSERVE_FOLLOW_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    pub follow_interval: Duration,
    /// This node's name in GET /v1/nodes [default: the host name and the port].
    #[arg(long, env = "REGSERVE_NODE_ID")]
    pub node_id: Option<String>,
    /// The address this node gives in its heartbeat [default: http:// and the bound address].
    #[arg(long, env = "REGSERVE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// How often this node writes its heartbeat to the store (a node whose heartbeat is three
    /// intervals old shows as lost).
    #[arg(long, env = "REGSERVE_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long a commit of appended rows waits for more batches to write with the first (group
    /// commit): longer writes fewer, larger segments; every batch is answered once durable.
    #[arg(long, env = "REGSERVE_COMMIT_INTERVAL", default_value = "2ms", value_parser = parse_duration)]
    pub commit_interval: Duration,
    /// The most rows one commit writes as one segment.
    #[arg(long, env = "REGSERVE_COMMIT_ROWS", default_value = "500000")]
    pub commit_rows: usize,
    /// The most rows one appended batch may hold (larger ones are refused with 413).
    #[arg(long, env = "REGSERVE_MAX_BATCH_ROWS", default_value = "100000")]
    pub max_batch_rows: usize,
    /// Keep at least this many of the newest rows; older segments are dropped from training and
    /// from the store.
    #[arg(long, env = "REGSERVE_RETAIN_ROWS")]
    pub retain_rows: Option<u64>,
    /// Drop segments whose rows all arrived longer ago than this (e.g. 7d, 12h).
    #[arg(long, env = "REGSERVE_RETAIN_FOR", value_parser = parse_duration)]
    pub retain_for: Option<Duration>,
    /// A column holding each row's time in seconds since 1970: `/train` with
    /// `rows: {"since": ...}` then picks rows by it rather than by their arrival.
    #[arg(long, env = "REGSERVE_TIME_COLUMN", value_name = "NAME")]
    pub time_column: Option<String>,
    /// Retrain when this many rows have arrived since the last training (trigger `rows`).
    #[arg(long, env = "REGSERVE_RETRAIN_AFTER_ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retrain_after_rows: Option<u64>,
    /// Retrain at this interval, e.g. 1h (trigger `every`).
    #[arg(long, env = "REGSERVE_RETRAIN_EVERY", value_parser = parse_duration)]
    pub retrain_every: Option<Duration>,
    /// Retrain on this cron schedule in UTC, e.g. '0 3 * * *' (trigger `cron`).
    #[arg(long, env = "REGSERVE_RETRAIN_CRON", value_name = "EXPR", value_parser = parse_cron)]
    pub retrain_cron: Option<String>,
    /// The training spec of the --retrain-* triggers, as /train's JSON body, e.g.
    /// '{"solver": "least-squares"}'.
    #[arg(long, env = "REGSERVE_RETRAIN_SPEC", value_name = "JSON")]
    pub retrain_spec: Option<String>,
    /// Hold back this share of each training's newest rows (0 to 0.9) to score the new model and
    /// the served one on: the quality gate.
    #[arg(long, env = "REGSERVE_HOLDOUT", default_value = "0", value_parser = parse_holdout)]
    pub holdout: f64,
    /// A gated training activates its model only if its holdout MSE is at most the served
    /// model's times 1 + this.
    #[arg(long, env = "REGSERVE_GATE_MARGIN", default_value = "0", value_parser = parse_margin)]
    pub gate_margin: f64,
    /// Largest CSV file accepted by /upload, in bytes or with a K/M/G (binary) suffix.
    #[arg(long, env = "REGSERVE_MAX_UPLOAD", default_value = "1536M", value_parser = parse_bytes)]
    pub max_upload: u64,
    /// How many model versions to keep on disk (the active one is never deleted).
    #[arg(long, env = "REGSERVE_KEEP_MODELS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_models: u64,
    /// The model's name, by which KServe v2, TensorFlow Serving and MLflow clients address it.
    #[arg(long, env = "REGSERVE_MODEL_NAME", default_value = DEFAULT_MODEL_NAME, value_parser = parse_model_name)]
    pub model_name: String,
    /// Largest JSON request body (predict, train), in bytes or with a K/M/G suffix.
    #[arg(long, env = "REGSERVE_MAX_BODY", default_value = "16M", value_parser = parse_bytes)]
    pub max_body: u64,
    /// How long a request body may send nothing before it is cut off (408), e.g. 10s or 500ms;
    /// it is also the window over which a body must keep --min-body-rate.
    #[arg(long, env = "REGSERVE_BODY_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_idle_timeout: Duration,
    /// Least rate a request body must keep, in bytes per second (K/M suffixes), measured over
    /// every --body-idle-timeout; a slower body is cut off (408).
    #[arg(long, env = "REGSERVE_MIN_BODY_RATE", default_value = "1K", value_parser = parse_bytes)]
    pub min_body_rate: u64,
    /// Priority of training threads: `adaptive` (normal priority among the machine's programs,
    /// but a fit pauses while this server needs the cores for requests), `idle` (a fit runs only
    /// on CPU time no other thread on the machine wants: requests preempt it at once, but any
    /// busy program starves it) or a fixed nice value from 0 (full) to 19.
    #[arg(long, env = "REGSERVE_TRAINING_PRIORITY", default_value = "adaptive", value_parser = TrainingPriority::parse)]
    pub training_priority: TrainingPriority,
    /// Longest time to answer an ordinary request (408 after it); uploads, `/train` and event
    /// streams are not limited by it.
    #[arg(long, env = "REGSERVE_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Most requests being handled at once on a listener (a request counts once its body has
    /// arrived, until its answer is ready); more are answered 503 at once.
    #[arg(long, env = "REGSERVE_MAX_CONCURRENT", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent: u32,
    /// Most event streams and dataset downloads open at once on a listener (each counts until
    /// its answer ends); more are answered 503.
    #[arg(long, env = "REGSERVE_MAX_STREAMS", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
    /// Most uploads in progress at once (receiving, or waiting for their turn to be parsed: one
    /// is parsed at a time); more are answered 503.
    #[arg(long, env = "REGSERVE_MAX_UPLOADS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_uploads: u32,
    /// Most memory held at once by request bodies and answers in flight (each over 64 KiB
    /// counts), in bytes or with a K/M/G suffix; a request that would go beyond it gets 503.
    #[arg(long, env = "REGSERVE_MAX_BUFFERED", default_value = "256M", value_parser = parse_bytes)]
    pub max_buffered: u64,
    /// Most connections open at once on a listener [default: 10000, or fewer to stay below the
    /// open-file limit, which is raised to its hard limit at start]. At the limit, the
    /// connection idle the longest is closed to make room.
    #[arg(long, env = "REGSERVE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Longest time from the first byte of a request's head to its end (the connection is closed);
    /// with TLS, also from a connection's opening to the end of its handshake.
    #[arg(long, env = "REGSERVE_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection waits for its next request before it is closed.
    /// Keep a proxy's upstream keep-alive timeout below it.
    #[arg(long, env = "REGSERVE_KEEP_ALIVE_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub keep_alive_timeout: Duration,
    /// Longest time an answer may go unread (no byte taken by the client) before the
    /// connection is closed.
    #[arg(long, env = "REGSERVE_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Longest time a shutdown (SIGTERM, Ctrl-C) waits for requests in flight and a running
    /// training to stop; then the remaining connections are dropped and the process exits.
    #[arg(long, env = "REGSERVE_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// A host name the server answers to (the Host header), besides the addresses it listens on
    /// and localhost; repeat the flag or separate names with commas. A server listening on all
    /// interfaces answers to any name unless this is given. Other names get 421, which stops
    /// DNS-rebinding pages.
    #[arg(long = "allowed-host", value_name = "NAME", env = "REGSERVE_ALLOWED_HOST", value_delimiter = ',', value_parser = parse_host_name)]
    pub allowed_hosts: Vec<String>,
    /// Bearer token that upload, train, cancel and activate require
    /// (`Authorization: Bearer TOKEN`); it also grants the reads. Prefer the environment
    /// variable: command lines are visible to other users.
    #[arg(long, env = "REGSERVE_ADMIN_TOKEN", value_parser = Token::parse, hide_env_values = true)]
    pub admin_token: Option<Token>,
    /// Bearer token that predictions and the /v1 reads require (the admin token works too).
    /// The page, /healthz, /readyz and /metrics stay open.
    #[arg(long, env = "REGSERVE_READ_TOKEN", value_parser = Token::parse, hide_env_values = true)]
    pub read_token: Option<Token>,
    /// Serve upload, train, cancel and activate on this second address only (e.g.
    /// 127.0.0.1:5001); the main address then answers them with 403.
    #[arg(long, env = "REGSERVE_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Allow cross-origin requests from this origin (e.g. https://app.example.com); repeat the
    /// flag or separate origins with commas. Off by default: the page is same-origin.
    #[arg(long = "cors-origin", value_name = "ORIGIN", env = "REGSERVE_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Subscribe to this MQTT broker (mqtt://HOST[:PORT], port 1883 by default) and append the
    /// rows of every message (a JSON row, a JSON batch, an array of rows, or CSV with a header)
    /// on the --mqtt-topic filters. QoS 1 on a persistent session: a message is acknowledged
    /// only once its rows are durable (only on a node that trains); and answer predictions on the
    /// --mqtt-predict-topic filters (on any node). Needs one of the two.
    #[arg(long, env = "REGSERVE_MQTT_URL", value_name = "URL", value_parser = parse_mqtt_url, requires = "mqtt_filters")]
    pub mqtt_url: Option<(String, u16)>,
    /// An MQTT topic filter to subscribe to (`+` and `#` wildcards allowed); repeat the flag or
    /// separate filters with commas.
    #[arg(
        long = "mqtt-topic",
        value_name = "FILTER",
        env = "REGSERVE_MQTT_TOPIC",
        value_delimiter = ',',
        requires = "mqtt_url",
        group = "mqtt_filters"
    )]
    pub mqtt_topics: Vec<String>,
    /// An MQTT topic filter on which to answer predictions: each message (JSON
    /// {"id": ANY, "x": [[...]]} or {"x_predict": [...]}, or little-endian f64 rows) is answered
    /// on its topic with the last level replaced by `y` (devices/42/x -> devices/42/y). A filter
    /// that would match its own answers (ending in #, + or y) is refused. Repeat the flag or
    /// separate filters with commas.
    #[arg(
        long = "mqtt-predict-topic",
        value_name = "FILTER",
        env = "REGSERVE_MQTT_PREDICT_TOPIC",
        value_delimiter = ',',
        requires = "mqtt_url",
        group = "mqtt_filters"
    )]
    pub mqtt_predict_topics: Vec<String>,
    /// An MQTT topic that receives (QoS 1) the payload of every message whose rows were refused.
    #[arg(long, env = "REGSERVE_MQTT_DEAD_LETTER", value_name = "TOPIC", requires = "mqtt_url")]
    pub mqtt_dead_letter: Option<String>,
    /// The MQTT client id, under which the broker keeps the session and the messages not yet
    /// acknowledged: keep it stable across restarts [default: regserve- and the node id, else
    /// the host name]. The prediction adapter connects as this id with -predict appended.
    #[arg(long, env = "REGSERVE_MQTT_CLIENT_ID", value_name = "ID", requires = "mqtt_url")]
    pub mqtt_client_id: Option<String>,
    /// Read the --kafka-topic from these Kafka brokers (HOST:PORT, comma-separated) and append
    /// the rows of its records; the offsets read are stored with the rows, so every record is
    /// appended once, also across restarts. Only on a node that trains.
    #[arg(long, env = "REGSERVE_KAFKA_BROKERS", value_name = "HOST:PORT,...", value_delimiter = ',', value_parser = parse_kafka_broker, requires = "kafka_topic")]
    pub kafka_brokers: Vec<String>,
    /// The Kafka topic to read (every partition).
    #[arg(long, env = "REGSERVE_KAFKA_TOPIC", value_name = "TOPIC", requires = "kafka_brokers")]
    pub kafka_topic: Option<String>,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, env = "REGSERVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The HTTPS flags (feature `tls`): every listener serves HTTPS with them.
#[cfg(feature = "tls")]
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Serve HTTPS on every listener with this certificate chain (PEM, the server's certificate
    /// first); needs --tls-key. Plain HTTP to a listener is then answered 400.
    #[arg(long, env = "REGSERVE_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "REGSERVE_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate signed by one of these CA certificates (PEM, one or more)
    /// on every connection; without one, or with one from another CA, the TLS handshake fails.
    /// Needs --tls-cert.
    #[arg(long, env = "REGSERVE_TLS_CLIENT_CA", value_name = "PATH")]
    pub tls_client_ca: Option<PathBuf>,
}

#[cfg(feature = "tls")]
impl From<TlsArgs> for TlsFiles {
    fn from(args: TlsArgs) -> Self {
        Self { cert: args.tls_cert, key: args.tls_key, client_ca: args.tls_client_ca }
    }
}

/// How the server writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// The broker subscribers the flags configure.
    fn sources(&self) -> SourceSettings {
        let intake = self.mqtt_url.clone().filter(|_| !self.mqtt_topics.is_empty());
        let mqtt = intake.map(|(host, port)| MqttSettings {
            host,
            port,
            topics: self.mqtt_topics.clone(),
            dead_letter: self.mqtt_dead_letter.clone(),
            client_id: self.mqtt_client_id(),
        });
        let kafka = self
            .kafka_topic
            .clone()
            .map(|topic| KafkaSettings { brokers: self.kafka_brokers.clone(), topic });
        SourceSettings { mqtt, kafka }
    }

    /// The MQTT prediction adapter the flags configure.
    fn mqtt_predict(&self) -> Option<MqttPredictSettings> {
        let (host, port) = self.mqtt_url.clone().filter(|_| !self.mqtt_predict_topics.is_empty())?;
        let (filters, client_id) =
            (self.mqtt_predict_topics.clone(), format!("{}-predict", self.mqtt_client_id()));
        Some(MqttPredictSettings { host, port, filters, client_id })
    }

    /// The intake's MQTT client id.
    fn mqtt_client_id(&self) -> String {
        let default = || format!("regserve-{}", self.node_id.clone().unwrap_or_else(host_name));
        self.mqtt_client_id.clone().unwrap_or_else(default)
    }
}

impl From<ServeArgs> for Settings {
    fn from(args: ServeArgs) -> Self {
        Self {
            sources: args.sources(),
            mqtt_predict: args.mqtt_predict(),
            addr: args.addr,
            store: args
                .store
                .or(args.data_dir.map(Location::Local))
                .unwrap_or_else(|| Location::Local(default_data_dir())),
            keep_models: usize::try_from(args.keep_models).unwrap_or(usize::MAX),
            model_name: args.model_name.clone(),
            limits: Limits {
                max_upload_bytes: args.max_upload,
                max_body_bytes: usize::try_from(args.max_body).unwrap_or(usize::MAX),
                body_idle_timeout: args.body_idle_timeout,
                min_body_rate: args.min_body_rate,
                training_priority: args.training_priority,
                request_timeout: args.request_timeout,
                max_concurrent: args.max_concurrent as usize,
                max_streams: args.max_streams as usize,
                max_uploads: args.max_uploads as usize,
                max_buffered_bytes: args.max_buffered,
            },
            cluster: ClusterSettings {
                role: args.role,
                trainer_url: args.trainer_url,
                cache_dir: args.cache_dir,
                follow_interval: args.follow_interval.max(Duration::from_millis(10)),
                node_id: args.node_id,
                advertise_url: args.advertise_url,
                heartbeat_interval: args.heartbeat_interval.max(Duration::from_millis(100)),
            },
            intake: IntakeSettings {
                commit_interval: args.commit_interval,
                commit_rows: args.commit_rows.max(1),
                max_batch_rows: args.max_batch_rows.max(1),
                retain_rows: args.retain_rows,
                retain_for: args.retain_for,
                time_column: args.time_column,
            },
            retrain: RetrainSettings {
                after_rows: args.retrain_after_rows,
                every: args.retrain_every,
                cron: args.retrain_cron,
                spec: args.retrain_spec,
                holdout: args.holdout,
                gate_margin: args.gate_margin,
            },
            admin_addr: args.admin_addr,
            access: Access { admin_token: args.admin_token, read_token: args.read_token },
            cors_origins: args.cors_origins,
            allowed_hosts: args.allowed_hosts,
            #[cfg(feature = "tls")]
            tls: args.tls.into(),
            #[cfg(not(feature = "tls"))]
            tls: TlsFiles::default(),
            connections: ConnectionLimits {
                max_connections: args.max_connections.map(|limit| limit as usize),
                header_timeout: args.header_timeout,
                keep_alive_timeout: args.keep_alive_timeout,
                write_timeout: args.write_timeout,
                shutdown_timeout: args.shutdown_timeout,
            },
        }
    }
}

fn parse_cron(text: &str) -> Result<String, String> {
    crate::retrain::cron::parse(text).map(|cron| cron.to_string())
}

fn parse_model_name(text: &str) -> Result<String, String> {
    crate::settings::check_model_name(text).map(|()| text.to_owned())
}

fn parse_holdout(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(share) if (0.0..=0.9).contains(&share) => Ok(share),
        _ => Err(format!("{text:?}: a share of the rows from 0 to 0.9, e.g. 0.2")),
    }
}

fn parse_margin(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(margin) if margin.is_finite() && margin >= 0.0 => Ok(margin),
        _ => Err(format!("{text:?}: a margin of 0 or more, e.g. 0.05 for 5%")),
    }
}
