//! What a failed connection really hit, from the cause the OS or resolver
//! gave: a host name that does not resolve is not a service that is down,
//! and a refused connection is not a dropped one. Each module's connect
//! error asks here first and keeps its own wording for anything else.

use crate::dispatch::{ErrorKind, OpError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The host name did not resolve.
    Dns,
    /// Something answered: nothing listens on that port.
    Refused,
    /// No route: the network path is down or blocked.
    Unreachable,
    /// No answer at all before the connect timeout (packets dropped).
    ConnectTimeout,
}

/// The kind of failure a cause's text names, if it names one.
pub fn classify(cause: &str) -> Option<Net> {
    let c = cause.to_ascii_lowercase();
    if [
        "failed to lookup address",
        "name or service not known",
        "nodename nor servname",
        "no address associated",
        "temporary failure in name resolution",
        "dns error",
        "no such host",
    ]
    .iter()
    .any(|k| c.contains(k))
    {
        Some(Net::Dns)
    } else if c.contains("connection refused") {
        Some(Net::Refused)
    } else if c.contains("no route to host") || c.contains("network is unreachable") {
        Some(Net::Unreachable)
    } else if c.contains("connection timed out") || c.contains("connect timed out") {
        Some(Net::ConnectTimeout)
    } else {
        None
    }
}

/// The error for a connection to `host_port` (of `target`, a service
/// called `service`) that failed with `cause`, when the cause names what
/// happened; `None` leaves the caller's own error.
pub fn connect_error(cause: &str, service: &str, target: &str, host_port: &str) -> Option<OpError> {
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(h, _)| h)
        .trim_matches(['[', ']']);
    let e = match classify(cause)? {
        Net::Dns => OpError::failed(format!(
            "cannot resolve the host name `{host}` of {target}"
        ))
        .with_hint(format!(
            "check the host in the URL (a typo? a name only a VPN or an internal DNS knows?); `getent hosts {host}` shows what this machine resolves"
        )),
        Net::Refused => OpError::failed(format!(
            "{host_port} refused the connection to {target}"
        ))
        .with_hint(format!(
            "the host is up but nothing listens on that port: is {service} running, and on this port?"
        )),
        Net::Unreachable => OpError::failed(format!(
            "no route to {host_port} for {target}"
        ))
        .with_hint("the network path is down or blocked (VPN, routing, firewall)".to_string()),
        Net::ConnectTimeout => OpError::new(
            ErrorKind::Timeout,
            format!("connecting to {host_port} ({target}) timed out"),
        )
        .with_hint(
            "no answer at all: a firewall or security group drops the packets, or the host is down (a closed port would refuse at once)"
                .to_string(),
        ),
    };
    Some(e.with_cause(cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_told_apart() {
        let dns = "failed to lookup address information: Name or service not known";
        assert_eq!(classify(dns), Some(Net::Dns));
        assert_eq!(
            classify("Connection refused (os error 111)"),
            Some(Net::Refused)
        );
        assert_eq!(
            classify("No route to host (os error 113)"),
            Some(Net::Unreachable)
        );
        assert_eq!(
            classify("Connection timed out (os error 110)"),
            Some(Net::ConnectTimeout)
        );
        assert_eq!(classify("invalid peer certificate: UnknownIssuer"), None);
        let e = connect_error(
            dns,
            "Prometheus",
            "prom target `main`",
            "prom.internal:9090",
        );
        let e = e.unwrap();
        assert!(e.message.contains("`prom.internal`"), "{}", e.message);
        assert!(!e.hint.unwrap_or_default().contains("listening"));
    }
}
