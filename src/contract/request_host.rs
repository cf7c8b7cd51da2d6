//! The rule for `Host` values: which names an operator may allow (`--allowed-host NAME[:PORT]`)
//! and whether a `Host` names this server. Pure: the gate applies it to every request.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

/// A name (and optionally a port) the operator allows in `Host`, for a reverse proxy or a DNS
/// name of this machine: `--allowed-host NAME[:PORT]`. Without a port, any port matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    name: String,
    port: Option<u16>,
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, port) = split_authority(text)
            .ok_or_else(|| format!("{text:?} is not a host name or HOST:PORT"))?;
        Ok(Self { name, port })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Splits `host[:port]` (`[v6]:port` for IPv6) into a lower-cased host and its port. `None` for
/// anything that is not a plain authority (user info, paths, spaces, empty parts).
pub fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() || text.len() > 255 {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&text[..inside.len() + 2], port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let name_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !name_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn host_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// Whether `authority` (a `Host` value) names this server: bound to `bound`, with the
/// operator's extra names.
pub fn host_allowed(authority: &str, bound: SocketAddr, extra: &[AllowedHost]) -> bool {
    let Some((host, port)) = split_authority(authority) else {
        return false;
    };
    // Without a port the client used its scheme's default one.
    let port_matches = |wanted: u16| match port {
        Some(port) => port == wanted,
        None => wanted == 80 || wanted == 443,
    };
    if extra
        .iter()
        .any(|allowed| allowed.name == host && allowed.port.is_none_or(port_matches))
    {
        return true;
    }
    if !port_matches(bound.port()) {
        return false;
    }
    if host == "localhost" {
        return true;
    }
    // An address literal cannot be rebound by DNS: a page served from another machine at that
    // address is another origin. A name is only accepted when the operator allowed it.
    match host_ip(&host) {
        Some(ip) if ip.is_loopback() || ip == bound.ip() => true,
        // Listening on every interface: any of this machine's addresses may be used.
        Some(_) => bound.ip().is_unspecified(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn only_this_servers_names_are_accepted_as_host() {
        let bound = addr("127.0.0.1:3000");
        for good in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "[::1]:3000",
        ] {
            assert!(host_allowed(good, bound, &[]), "{good}");
        }
        for bad in [
            "evil.example:3000",
            "evil.example:1234",
            "127.0.0.1:3001",
            "localhost",
            "10.0.0.1:3000",
            "user@127.0.0.1:3000",
            "127.0.0.1:3000/x",
            "127.0.0.1:",
            "",
            "[::1",
        ] {
            assert!(!host_allowed(bad, bound, &[]), "{bad}");
        }
        let any = addr("0.0.0.0:3000");
        assert!(host_allowed("192.168.1.5:3000", any, &[]));
        assert!(!host_allowed("dash.example:3000", any, &[]));
        assert!(host_allowed("localhost", addr("127.0.0.1:80"), &[]));

        let extra: Vec<AllowedHost> = ["dash.example", "other.example:8443"]
            .iter()
            .map(|s| s.parse().expect("allowed host"))
            .collect();
        assert!(host_allowed("dash.example", bound, &extra));
        assert!(host_allowed("Dash.Example:443", bound, &extra));
        assert!(host_allowed("other.example:8443", bound, &extra));
        assert!(!host_allowed("other.example:3000", bound, &extra));
        assert!(!host_allowed("evil.example:3000", bound, &extra));
        for bad in ["", "a b", "x/y", "h:port", "u@h", "[zz]:1"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
    }
}
