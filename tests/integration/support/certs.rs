//! Certificates made with the openssl CLI, for the TLS tests.

use std::path::Path;
use std::process::Command;

#[track_caller]
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// NAME.pem and NAME.key in `dir`: a self-signed RSA certificate for
/// `/CN=cn`, valid for `days` days (what a service without a CA serves).
pub fn self_signed(dir: &Path, name: &str, cn: &str, days: u32) {
    let (key, pem, subj, days) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={cn}"),
        days.to_string(),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", &days, "-subj", &subj,
        ],
    );
}

/// A self-signed CA in `dir`: NAME.pem and NAME.key.
pub fn ca(dir: &Path, name: &str) {
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={name}"),
    );
    let mut a = vec!["req", "-x509"];
    a.extend(EC);
    a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
    openssl(dir, &a);
}

/// NAME.pem and NAME.key in `dir`: a certificate for localhost and
/// 127.0.0.1, signed by the CA `ca` made by [`ca`].
pub fn server(dir: &Path, ca: &str, name: &str) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let mut a = vec!["req"];
    a.extend(EC);
    a.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &a);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write ext");
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}
