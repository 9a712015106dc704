//! TLS certificates: what a server presents and when it expires. The
//! handshake accepts any certificate on purpose (an expired or self-signed
//! one is exactly what an expiry check must still read); nothing is sent
//! over the connection.

use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, req, ModuleDecl, Primitive, Ty};
use crate::value::map_of;
use rhai::Dynamic;
use std::sync::Arc;
use tokio_rustls::rustls;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "tls",
    doc: "TLS certificates a server presents: subject, issuer, validity, days to expiry.",
    target: None,
    primitives: &[CERT],
};

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn split_address(address: &str) -> Result<(String, u16), OpError> {
    let rest = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("tls://"))
        .unwrap_or(address);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let bad = || {
        OpError::bad_input(format!("{address:?} is not host:port"))
            .with_hint("e.g. tls.cert(\"example.com:443\") or tls.cert(\"https://example.com\")")
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, rest) = v6.split_once(']').ok_or_else(bad)?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if rest.is_empty() => 443,
            None => return Err(bad()),
        };
        return Ok((h.to_string(), port));
    }
    match hostport.split_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h.to_string(), p.parse::<u16>().map_err(|_| bad())?)),
        None if !hostport.is_empty() => Ok((hostport.to_string(), 443)),
        _ => Err(bad()),
    }
}

pub const CERT: Primitive = Primitive::read("cert", cert)
    .params(&[
        req("address", Ty::Str),
        opt("opts", Ty::Record(&[
            field("server_name", Ty::Str).doc("the name sent as SNI; default the host"),
        ])),
    ])
    .returns(Ty::Record(&[
        field("host", Ty::Str),
        field("port", Ty::Int),
        field("subject", Ty::Str).doc("the subject's CN (all its name values when it has none)"),
        field("issuer", Ty::Str).doc("the issuer's CN, likewise"),
        field("not_before", Ty::Str).doc("RFC 3339, UTC"),
        field("not_after", Ty::Str).doc("RFC 3339, UTC"),
        field("days_left", Ty::Float).doc("days until not_after, rounded down to 0.1; negative once expired"),
        field("expired", Ty::Bool),
    ]))
    .doc("The leaf certificate a server presents.\n\
          address: \"host:port\" (port 443 when omitted) or an https:// URL. The certificate is read even when it is expired or untrusted, so an expiry check still works.")
    .example(r#"let c = tls.cert("example.com:443"); if c.days_left < 14 { print(`renew ${c.subject}`) }"#);

fn cert(call: &mut Call) -> Result<Dynamic, OpError> {
    let address = call.str("address")?;
    let opts = call.opts("opts")?;
    let (host, port) = split_address(&address)?;
    let sni = opts.str("server_name")?.unwrap_or_else(|| host.clone());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| OpError::failed("cannot set up TLS").with_cause(e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.clone())
        .map_err(|e| OpError::bad_input(format!("{sni:?} is not a server name")).with_cause(e))?;
    let shown = format!("{host}:{port}");
    let der = call.block_on(async move {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| {
                OpError::failed(format!("cannot connect to {shown}"))
                    .with_cause(e)
                    .with_hint("is the host name right, and is the port open from here?")
            })?;
        let conn = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                OpError::failed(format!("TLS handshake with {shown} failed"))
                    .with_cause(e)
                    .with_hint("does this port speak TLS directly (not STARTTLS)?")
            })?;
        let (_, session) = conn.get_ref();
        session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| OpError::failed(format!("{shown} presented no certificate")))
    })?;
    let info = crate::modules::x509::parse(&der).map_err(|e| {
        OpError::failed(format!("cannot read the certificate of {address}")).with_cause(e)
    })?;
    let (host, port) = split_address(&address)?;
    let days_left = (info.not_after - crate::modules::sys::unix_now() as i64) as f64 / 86400.0;
    Ok(Dynamic::from_map(map_of([
        ("host", host.into()),
        ("port", Dynamic::from_int(i64::from(port))),
        ("subject", info.subject.into()),
        ("issuer", info.issuer.into()),
        (
            "not_before",
            crate::modules::x509::rfc3339(info.not_before).into(),
        ),
        (
            "not_after",
            crate::modules::x509::rfc3339(info.not_after).into(),
        ),
        (
            "days_left",
            Dynamic::from_float((days_left * 10.0).floor() / 10.0),
        ),
        ("expired", Dynamic::from_bool(days_left < 0.0)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::split_address;

    #[test]
    fn addresses() {
        assert_eq!(split_address("a.b:8443").unwrap(), ("a.b".into(), 8443));
        assert_eq!(split_address("a.b").unwrap(), ("a.b".into(), 443));
        assert_eq!(split_address("https://a.b/x").unwrap(), ("a.b".into(), 443));
        assert_eq!(split_address("[::1]:443").unwrap(), ("::1".into(), 443));
        assert!(split_address("").is_err());
    }
}
