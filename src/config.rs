//! Configuration: command-line flags and their `REGSERVE_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cli::{PredictArgs, TrainArgs};
pub use crate::training::TrainingPriority;

/// The command line of the `regserve` binary.
///
/// Without a subcommand `regserve` serves, taking the server's flags at the top level, so every
/// existing way of starting the server keeps working; the server's flags and a subcommand cannot
/// be mixed, so `regserve --addr .. train` is an error rather than a silently ignored flag.
#[derive(Debug, Parser)]
#[command(
    name = "regserve",
    version,
    about = "Trains and serves a linear-regression model over HTTP, or trains and predicts offline",
    long_about = None,
    after_help = "Examples:\n  \
        regserve                                      serve on 127.0.0.1:5000\n  \
        regserve train data.csv --output model.json   train offline and save the model\n  \
        regserve predict --model model.json 10 15.5   predict from the saved model",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What the binary does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (what `regserve` does without a subcommand).
    Serve(ServeArgs),
    /// Train a model on a CSV file offline, with the server's training code, and print it.
    Train(TrainArgs),
    /// Predict from a saved model file, without a server.
    Predict(PredictArgs),
}

impl Cli {
    /// The command to run: serving with the top-level flags when no subcommand was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Flags of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "REGSERVE_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// Directory for the uploaded dataset and the trained model versions
    /// [default: $XDG_DATA_HOME/regserve, else ~/.local/share/regserve, else ./regserve-data].
    #[arg(long, env = "REGSERVE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest CSV file accepted by /upload, in bytes or with a K/M/G (binary) suffix.
    #[arg(long, env = "REGSERVE_MAX_UPLOAD", default_value = "1536M", value_parser = parse_bytes)]
    pub max_upload: u64,
    /// How many model versions to keep on disk (the active one is never deleted).
    #[arg(long, env = "REGSERVE_KEEP_MODELS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_models: u64,
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
    /// Longest time from the first byte of a request's head to its end (the connection is closed).
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
    /// Allow cross-origin requests from this origin (e.g. https://app.example.com); repeat the
    /// flag or separate origins with commas. Off by default: the page is same-origin.
    #[arg(long = "cors-origin", value_name = "ORIGIN", env = "REGSERVE_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, env = "REGSERVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How the server writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A bearer token. Its `Debug` output hides it, so a logged configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token of visible ASCII characters (what an `Authorization` header can carry).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a token must not be empty".into());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token may only hold visible ASCII characters (no spaces)".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// Who may do what: without tokens everything is open.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Required by the state-changing routes; also grants the reads.
    pub admin_token: Option<Token>,
    /// Required by predictions and the `/v1` reads.
    pub read_token: Option<Token>,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// Model versions kept on disk.
    pub keep_models: usize,
    /// A second listener that alone serves the state-changing routes.
    pub admin_addr: Option<SocketAddr>,
    pub access: Access,
    /// Origins allowed to make cross-origin requests (none: CORS is off); they may also make
    /// state-changing requests.
    pub cors_origins: Vec<String>,
    /// Host names answered to besides the listening addresses and localhost.
    pub allowed_hosts: Vec<String>,
    /// Connection limits and timeouts; `None` for the connection limit picks one from the
    /// open-file limit.
    pub connections: ConnectionLimits,
}

/// Limits and timeouts of the connections of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: Option<usize>,
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        let defaults = crate::server::Settings::default();
        Self {
            max_connections: None,
            header_timeout: defaults.header_timeout,
            keep_alive_timeout: defaults.keep_alive_timeout,
            write_timeout: defaults.write_timeout,
            shutdown_timeout: defaults.shutdown_timeout,
        }
    }
}

/// Request size and time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_body_bytes: usize,
    /// How long a request body may send nothing before the request is answered 408, and the
    /// window over which it must keep `min_body_rate`.
    pub body_idle_timeout: Duration,
    /// Least bytes per second a request body must keep.
    pub min_body_rate: u64,
    /// Longest time to answer an ordinary request (not uploads, `/train` or event streams).
    pub request_timeout: Duration,
    /// Most requests being handled at once on a listener before new ones are answered 503.
    pub max_concurrent: usize,
    /// Most event streams and downloads open at once on a listener.
    pub max_streams: usize,
    /// Most uploads in progress at once.
    pub max_uploads: usize,
    /// Most bytes of request bodies and answers held in memory at once.
    pub max_buffered_bytes: u64,
    /// How a fit shares the processor with request handling.
    pub training_priority: TrainingPriority,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 1536 << 20,
            max_body_bytes: 16 << 20,
            body_idle_timeout: Duration::from_secs(10),
            min_body_rate: 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent: 512,
            max_streams: 128,
            max_uploads: 4,
            max_buffered_bytes: 256 << 20,
            training_priority: TrainingPriority::Adaptive,
        }
    }
}

impl Config {
    /// A configuration listening on `addr` and keeping its state in `data_dir`, with default limits.
    pub fn new(addr: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            addr,
            data_dir: data_dir.into(),
            limits: Limits::default(),
            keep_models: 20,
            admin_addr: None,
            access: Access::default(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Self {
        Self {
            addr: args.addr,
            data_dir: args.data_dir.unwrap_or_else(default_data_dir),
            keep_models: usize::try_from(args.keep_models).unwrap_or(usize::MAX),
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
            admin_addr: args.admin_addr,
            access: Access { admin_token: args.admin_token, read_token: args.read_token },
            cors_origins: args.cors_origins,
            allowed_hosts: args.allowed_hosts,
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

/// The per-user data directory, so the service keeps its state wherever it is started from.
fn default_data_dir() -> PathBuf {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .map(|base| base.join("regserve"))
        .unwrap_or_else(|| PathBuf::from("regserve-data"))
}

/// Parses `123`, `64K`, `16M`, `2G` (binary multiples; an optional trailing `B` or `iB`).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size like 1048576 or 16M"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?} has an unknown unit; use K, M or G")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration: `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds; it must not be 0.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30s or 500ms"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("{text:?} has an unknown unit; use ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err(format!("{text:?}: a duration must be above 0"));
    }
    Ok(duration)
}

/// Checks a host name as a Host header carries it (without a port), lower-cased.
fn parse_host_name(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    match valid {
        true => Ok(name),
        false => Err(format!("{text:?} is not a host name like api.example.com (no scheme, no port)")),
    }
}

/// Checks an origin as browsers send it: `scheme://host[:port]`, without a path.
fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !host.contains('/') && text.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(text.to_owned())
        }
        _ => Err(format!("{text:?} is not an origin like https://app.example.com (no path, no trailing /)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("64kb"), Ok(64 << 10));
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("M").is_err());
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn training_priority_defaults_to_adaptive() {
        let cli = Cli::try_parse_from(["regserve"]).unwrap();
        assert_eq!(cli.serve.training_priority, TrainingPriority::Adaptive);
        let cli = Cli::try_parse_from(["regserve", "--training-priority", "idle"]).unwrap();
        assert_eq!(cli.serve.training_priority, TrainingPriority::Idle);
        assert!(Cli::try_parse_from(["regserve", "--training-priority", "20"]).is_err());
    }

    #[test]
    fn connection_flags_parse_and_host_names_are_checked() {
        let cli = Cli::try_parse_from([
            "regserve",
            "--allowed-host",
            "API.example.com,localhost",
            "--header-timeout",
            "5s",
            "--max-connections",
            "100",
            "--min-body-rate",
            "2K",
        ])
        .unwrap();
        let config = Config::from(cli.serve);
        assert_eq!(config.allowed_hosts, ["api.example.com", "localhost"]);
        assert_eq!(config.connections.header_timeout, Duration::from_secs(5));
        assert_eq!(config.connections.max_connections, Some(100));
        assert_eq!(config.limits.min_body_rate, 2048);
        for bad in ["http://a.example", "a.example:80", "a b"] {
            assert!(Cli::try_parse_from(["regserve", "--allowed-host", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_listen_where_flask_did() {
        let cli = Cli::try_parse_from(["regserve"]).unwrap();
        assert_eq!(cli.serve.addr.to_string(), "127.0.0.1:5000");
        let config = Config::from(cli.serve);
        assert_eq!(config.limits.max_upload_bytes, 1536 << 20);
        assert_eq!(config.limits.body_idle_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.request_timeout, Duration::from_secs(30));
        assert_eq!(config.limits.max_concurrent, 512);
        assert!(config.access.admin_token.is_none() && config.access.read_token.is_none());
        assert!(config.admin_addr.is_none() && config.cors_origins.is_empty());
    }

    #[test]
    fn security_flags_parse_and_tokens_stay_hidden() {
        let cli = Cli::try_parse_from([
            "regserve",
            "--admin-token",
            "s3cret-admin",
            "--read-token",
            "s3cret-read",
            "--admin-addr",
            "127.0.0.1:5001",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "http://b.example:8080,https://c.example",
            "--max-concurrent",
            "8",
            "--request-timeout",
            "2s",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.serve.log_format, LogFormat::Json);
        let config = Config::from(cli.serve);
        assert_eq!(config.access.admin_token.as_ref().unwrap().as_str(), "s3cret-admin");
        assert_eq!(config.admin_addr.unwrap().port(), 5001);
        assert_eq!(config.cors_origins, ["https://a.example", "http://b.example:8080", "https://c.example"]);
        assert_eq!(
            (config.limits.max_concurrent, config.limits.request_timeout),
            (8, Duration::from_secs(2))
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        for bad in [
            &["--admin-token", ""][..],
            &["--read-token", "two words"],
            &["--cors-origin", "https://a.example/"],
            &["--cors-origin", "a.example"],
            &["--max-concurrent", "0"],
            &["--log-format", "xml"],
        ] {
            assert!(Cli::try_parse_from(["regserve"].iter().chain(bad)).is_err(), "{bad:?}");
        }
        assert!(config.data_dir.ends_with("regserve") || config.data_dir.ends_with("regserve-data"));
    }

    #[test]
    fn command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn subcommands_parse_and_no_subcommand_serves() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(["regserve"].iter().chain(args)).map(Cli::into_command);
        match parse(&["--addr", "127.0.0.1:0"]).unwrap() {
            Command::Serve(serve) => assert_eq!(serve.addr.to_string(), "127.0.0.1:0"),
            other => panic!("expected serve, got {other:?}"),
        }
        match parse(&["serve", "--addr", "127.0.0.1:7", "--keep-models", "3"]).unwrap() {
            Command::Serve(serve) => assert_eq!((serve.addr.port(), serve.keep_models), (7, 3)),
            other => panic!("expected serve, got {other:?}"),
        }
        let train = ["train", "d.csv", "--features", "a,b", "--features", "c", "--solver", "least-squares"];
        match parse(&train).unwrap() {
            Command::Train(train) => {
                assert_eq!(train.file, PathBuf::from("d.csv"));
                assert_eq!(train.features.unwrap(), ["a", "b", "c"]);
                assert_eq!(train.solver, Some(crate::train::Solver::LeastSquares));
                assert_eq!((train.epochs, train.no_shuffle, train.json), (None, false, false));
            }
            other => panic!("expected train, got {other:?}"),
        }
        match parse(&["predict", "--model", "m.json", "10", "-2.5", "12,50", "--json"]).unwrap() {
            Command::Predict(predict) => {
                assert_eq!(predict.model, PathBuf::from("m.json"));
                assert_eq!(predict.rows, ["10", "-2.5", "12,50"]);
                assert!(predict.json);
            }
            other => panic!("expected predict, got {other:?}"),
        }
        assert!(parse(&["train", "d.csv", "--solver", "sgd"]).is_err());
        assert!(parse(&["predict", "--model", "m.json"]).is_err(), "at least one row");
        assert!(parse(&["--addr", "127.0.0.1:0", "train", "d.csv"]).is_err(), "server flags need serve");
    }
}
