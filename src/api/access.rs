//! Who may call: bearer tokens (compared in constant time), the host names the server answers to
//! (a page on another name that a DNS-rebinding attack pointed at this address gets nothing), and
//! whether a state-changing request comes from a browser page of another origin (refused, so that
//! no web page can train, upload or activate through a visitor's browser).

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::{Access, Token};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the page, its assets, the health probes and the metrics.
    Open,
    /// The read token, when one is set: predictions and the `/v1` reads.
    Read,
    /// The admin token, when one is set: the routes that change the state.
    Admin,
}

/// The tokens, kept as SHA-256 digests so every comparison takes the same time whatever the
/// length or content of what a client sends.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
}

impl Tokens {
    pub fn new(access: &Access) -> Self {
        Self { admin: access.admin_token.as_ref().map(digest), read: access.read_token.as_ref().map(digest) }
    }

    /// Whether `headers` carry what `need` asks for. The state-changing routes take the admin
    /// token, or the read token when it is the only one set; reads take either token.
    pub fn allows(&self, need: Need, headers: &HeaderMap) -> Result<(), &'static str> {
        let accepted: [Option<&[u8; 32]>; 2] = match need {
            Need::Open => return Ok(()),
            Need::Read if self.read.is_none() => return Ok(()),
            Need::Read => [self.read.as_ref(), self.admin.as_ref()],
            Need::Admin => match (&self.admin, &self.read) {
                (Some(admin), _) => [Some(admin), None],
                (None, Some(read)) => [Some(read), None],
                (None, None) => return Ok(()),
            },
        };
        // A refusal names the admin token when only it will do, so that a client holding the
        // read token (the web page) knows which one to ask for.
        let admin_only = need == Need::Admin && self.admin.is_some();
        let Some(presented) = bearer(headers) else {
            return Err(match admin_only {
                true => "this route needs the admin token: send `Authorization: Bearer <token>`",
                false => "this route needs a token: send `Authorization: Bearer <token>`",
            });
        };
        let presented = Sha256::digest(presented);
        let mut matched = subtle::Choice::from(0);
        for expected in accepted.into_iter().flatten() {
            matched |= presented.as_slice().ct_eq(expected);
        }
        match (bool::from(matched), admin_only) {
            (true, _) => Ok(()),
            (false, true) => Err("the bearer token is not valid for this route: it needs the admin token"),
            (false, false) => Err("the bearer token is not valid for this route"),
        }
    }
}

fn digest(token: &Token) -> [u8; 32] {
    Sha256::digest(token.as_str().as_bytes()).into()
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii()).filter(|token| !token.is_empty())
}

/// The host names (in `Host` headers) the server answers to.
///
/// By default: the addresses it listens on, `localhost`, and the loopback addresses when it
/// listens on one; a server listening on all interfaces answers to any name. `--allowed-host`
/// adds names, and on all interfaces narrows "any name" to them (and to any IP address, which a
/// DNS-rebinding page cannot use: its origin is a name). A request without a `Host` header (not
/// a browser's) is let through.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    any_name: bool,
    any_address: bool,
    names: Vec<String>,
}

impl Hosts {
    pub fn new(listening: &[SocketAddr], allowed: &[String]) -> Self {
        let on_all_interfaces = listening.iter().any(|addr| addr.ip().is_unspecified());
        let mut names: Vec<String> = allowed.iter().map(|name| name.to_ascii_lowercase()).collect();
        names.push("localhost".into());
        for addr in listening.iter().filter(|addr| !addr.ip().is_unspecified()) {
            names.push(address_name(addr.ip()));
            if addr.ip().is_loopback() {
                names.extend(["127.0.0.1".to_owned(), "[::1]".to_owned()]);
            }
        }
        Self { any_name: on_all_interfaces && allowed.is_empty(), any_address: on_all_interfaces, names }
    }

    /// Any host at all (for the in-process router of tests and benchmarks).
    pub fn any() -> Self {
        Self { any_name: true, any_address: true, names: Vec::new() }
    }

    /// `Ok` if the request's `Host` names this server, else the name it carries.
    pub fn allows(&self, headers: &HeaderMap) -> Result<(), String> {
        if self.any_name {
            return Ok(());
        }
        let Some(host) = headers.get(header::HOST) else { return Ok(()) };
        let host = String::from_utf8_lossy(host.as_bytes());
        let name = strip_port(&host).trim_end_matches('.').to_ascii_lowercase();
        let is_address = name.parse::<IpAddr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<IpAddr>().is_ok());
        if self.names.contains(&name) || (self.any_address && is_address) {
            return Ok(());
        }
        Err(crate::data::excerpt(&host))
    }
}

/// How a `Host` header writes an address: `127.0.0.1`, `[::1]`.
fn address_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

/// `example.com:5000` -> `example.com`, `[::1]:5000` -> `[::1]`.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

/// Whether a state-changing request comes from a browser page of another origin, which is
/// refused: its `Origin` is neither the server's own (the `Host` it asked for) nor one of
/// `cors_origins`, or without an `Origin`, `Sec-Fetch-Site` says it is cross-site. Returns the
/// origin (or site) to name in the refusal. Clients that are not browsers send neither header.
pub fn cross_origin(headers: &HeaderMap, cors_origins: &[String]) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        let own = headers
            .get(header::HOST)
            .is_some_and(|host| same_authority(&origin, &String::from_utf8_lossy(host.as_bytes())));
        if own || cors_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(&origin)) {
            return None;
        }
        return Some(format!("origin {}", crate::data::excerpt(&origin)));
    }
    match headers.get("sec-fetch-site").map(|site| site.as_bytes()) {
        Some(b"cross-site") => Some("a cross-site page".into()),
        Some(b"same-site") => Some("a page of another origin on the same site".into()),
        _ => None,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`
/// (`host[:port]`), default ports included.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let normalise = |authority: &str| {
        let name = strip_port(authority).to_ascii_lowercase();
        let port =
            authority[strip_port(authority).len()..].strip_prefix(':').unwrap_or(default_port).to_owned();
        (name, port)
    };
    normalise(authority) == normalise(host)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn tokens(admin: Option<&str>, read: Option<&str>) -> Tokens {
        Tokens::new(&Access {
            admin_token: admin.map(|t| Token::parse(t).unwrap()),
            read_token: read.map(|t| Token::parse(t).unwrap()),
        })
    }

    #[test]
    fn tokens_are_checked_per_need() {
        let bearer = |token: &str| headers(&[("authorization", token)]);
        let both = tokens(Some("admin-secret"), Some("read-secret"));
        assert!(both.allows(Need::Admin, &bearer("Bearer admin-secret")).is_ok());
        assert!(both.allows(Need::Admin, &bearer("bearer  admin-secret ")).is_ok());
        assert_eq!(
            both.allows(Need::Admin, &bearer("Bearer read-secret")),
            Err("the bearer token is not valid for this route: it needs the admin token")
        );
        assert!(both.allows(Need::Admin, &bearer("Basic admin-secret")).is_err());
        assert!(both.allows(Need::Admin, &HeaderMap::new()).is_err());
        assert!(both.allows(Need::Read, &bearer("Bearer read-secret")).is_ok());
        assert!(both.allows(Need::Read, &bearer("Bearer admin-secret")).is_ok());
        assert_eq!(
            both.allows(Need::Read, &bearer("Bearer admin-secre")),
            Err("the bearer token is not valid for this route")
        );
        assert!(both.allows(Need::Open, &HeaderMap::new()).is_ok());

        let admin_only = tokens(Some("admin-secret"), None);
        assert!(admin_only.allows(Need::Read, &HeaderMap::new()).is_ok());
        assert!(admin_only.allows(Need::Admin, &bearer("Bearer nope")).is_err());

        let read_only = tokens(None, Some("read-secret"));
        assert!(read_only.allows(Need::Admin, &HeaderMap::new()).is_err(), "writes are never less guarded");
        assert!(read_only.allows(Need::Admin, &bearer("Bearer read-secret")).is_ok());
    }

    #[test]
    fn a_loopback_server_answers_to_its_own_names_only() {
        let hosts = Hosts::new(&["127.0.0.1:5000".parse().unwrap()], &[]);
        for host in ["127.0.0.1:5000", "localhost:5000", "LOCALHOST", "[::1]:5000", "localhost."] {
            assert!(hosts.allows(&headers(&[("host", host)])).is_ok(), "{host}");
        }
        for host in ["evil.example", "evil.example:5000", "10.0.0.5:5000", "127.0.0.1.evil.example"] {
            assert!(hosts.allows(&headers(&[("host", host)])).is_err(), "{host}");
        }
        assert!(hosts.allows(&HeaderMap::new()).is_ok(), "no Host header: not a browser");
        let named = Hosts::new(&["127.0.0.1:5000".parse().unwrap()], &["api.example".into()]);
        assert!(named.allows(&headers(&[("host", "api.example:5000")])).is_ok());
    }

    #[test]
    fn a_server_on_all_interfaces_answers_to_any_name_unless_narrowed() {
        let any = Hosts::new(&["0.0.0.0:5000".parse().unwrap()], &[]);
        assert!(any.allows(&headers(&[("host", "whatever.example")])).is_ok());
        let narrowed = Hosts::new(&["0.0.0.0:5000".parse().unwrap()], &["api.example".into()]);
        assert!(narrowed.allows(&headers(&[("host", "api.example")])).is_ok());
        assert!(
            narrowed.allows(&headers(&[("host", "10.1.2.3:5000")])).is_ok(),
            "addresses cannot be rebound"
        );
        assert!(narrowed.allows(&headers(&[("host", "evil.example")])).is_err());
    }

    #[test]
    fn pages_of_other_origins_cannot_change_the_state() {
        let refused =
            |pairs: &[(&'static str, &str)]| cross_origin(&headers(pairs), &["https://app.example".into()]);
        assert_eq!(refused(&[]), None, "curl and scripts send no Origin");
        assert_eq!(refused(&[("origin", "http://127.0.0.1:5000"), ("host", "127.0.0.1:5000")]), None);
        assert_eq!(refused(&[("origin", "http://localhost"), ("host", "localhost:80")]), None);
        assert_eq!(refused(&[("origin", "https://app.example"), ("host", "127.0.0.1:5000")]), None);
        assert!(refused(&[("origin", "http://evil.example"), ("host", "127.0.0.1:5000")]).is_some());
        assert!(refused(&[("origin", "http://127.0.0.1:5001"), ("host", "127.0.0.1:5000")]).is_some());
        assert!(refused(&[("origin", "null"), ("host", "127.0.0.1:5000")]).is_some());
        assert!(refused(&[("sec-fetch-site", "cross-site")]).is_some());
        assert!(refused(&[("sec-fetch-site", "same-site")]).is_some());
        assert_eq!(refused(&[("sec-fetch-site", "same-origin")]), None);
        assert_eq!(refused(&[("sec-fetch-site", "none")]), None, "typed into the address bar");
    }
}
