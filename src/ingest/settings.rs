//! What the broker subscribers are told: where to connect, what to read, where rejects go. Plain
//! values, and the checks of the values the flags give, which also refuse a source this build
//! was compiled without.

/// The broker subscribers a node runs, each when configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSettings {
    pub mqtt: Option<MqttSettings>,
    pub kafka: Option<KafkaSettings>,
}

/// An MQTT broker, the filters to subscribe to (QoS 1, persistent session) and where bad
/// payloads go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Topic filters; `+` and `#` wildcards are allowed.
    pub topics: Vec<String>,
    /// Topic that receives, QoS 1, the original payload of every rejected message.
    pub dead_letter: Option<String>,
    /// Fixed client id: the broker keeps the session (and unacknowledged messages) under it.
    pub client_id: String,
}

/// The Kafka brokers to bootstrap from and the topic to read (every partition, no consumer
/// group: the offsets are stored with the rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port` of one or more brokers.
    pub brokers: Vec<String>,
    pub topic: String,
}

const MQTT_DEFAULT_PORT: u16 = 1883;

/// Splits `mqtt://HOST[:PORT]` (port 1883 when omitted; `[::1]` style for IPv6) into host and
/// port; refused in a build without the `mqtt` feature.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    if !cfg!(feature = "mqtt") {
        return Err(format!(
            "{url}: this build has no MQTT support (it was built without the `mqtt` feature)"
        ));
    }
    let fail = |why: &str| format!("{url:?} is not an MQTT broker address like mqtt://HOST:PORT: {why}");
    let rest = url.strip_prefix("mqtt://").ok_or_else(|| fail("it must start with mqtt://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(fail("no user, path or query"));
    }
    let (host, port) = split_host_port(rest);
    if host.trim_matches(['[', ']']).is_empty() {
        return Err(fail("it names no host"));
    }
    let port = match port {
        None => MQTT_DEFAULT_PORT,
        Some(port) => port.parse().ok().filter(|p| *p != 0).ok_or_else(|| fail("no valid port (1-65535)"))?,
    };
    Ok((host.to_owned(), port))
}

/// `host:port`, `host`, `[v6]:port` or `[v6]`; IPv6 hosts keep their brackets.
fn split_host_port(rest: &str) -> (&str, Option<&str>) {
    let host_end = match rest.find(']') {
        Some(end) if rest.starts_with('[') => end + 1,
        _ => rest.find(':').unwrap_or(rest.len()),
    };
    let (host, tail) = rest.split_at(host_end);
    (host, tail.strip_prefix(':').or((!tail.is_empty()).then_some(tail)))
}

/// A Kafka bootstrap broker `HOST:PORT`; refused in a build without the `kafka` feature.
pub fn parse_kafka_broker(text: &str) -> Result<String, String> {
    if !cfg!(feature = "kafka") {
        return Err(format!(
            "{text}: this build has no Kafka support (it was built without the `kafka` feature)"
        ));
    }
    let (host, port) = split_host_port(text.trim());
    let port_ok = port.and_then(|port| port.parse::<u16>().ok()).is_some_and(|port| port != 0);
    match !host.trim_matches(['[', ']']).is_empty() && port_ok {
        true => Ok(text.trim().to_owned()),
        false => Err(format!("{text:?} is not a Kafka broker address like HOST:PORT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mqtt")]
    #[test]
    fn parses_mqtt_urls() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1884"), Ok(("127.0.0.1".into(), 1884)));
        assert_eq!(parse_mqtt_url("mqtt://broker/"), Ok(("broker".into(), 1883)));
        assert_eq!(parse_mqtt_url("mqtt://[::1]:9"), Ok(("[::1]".into(), 9)));
        assert_eq!(parse_mqtt_url("mqtt://[::1]"), Ok(("[::1]".into(), 1883)));
        for bad in [
            "tcp://h:1",
            "mqtt://:1",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://h:1:2",
            "mqtt://u@h:1",
            "mqtt://h/x",
        ] {
            assert!(parse_mqtt_url(bad).is_err(), "{bad}");
        }
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn parses_kafka_brokers() {
        assert_eq!(parse_kafka_broker("localhost:9092"), Ok("localhost:9092".into()));
        for bad in ["localhost", ":9092", "h:0", "h:x"] {
            assert!(parse_kafka_broker(bad).is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "mqtt"))]
    #[test]
    fn refuses_mqtt_without_the_feature() {
        assert!(parse_mqtt_url("mqtt://h:1").unwrap_err().contains("`mqtt` feature"));
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn refuses_kafka_without_the_feature() {
        assert!(parse_kafka_broker("h:1").unwrap_err().contains("`kafka` feature"));
    }
}
