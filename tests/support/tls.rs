//! Certificates for TLS tests, made with the `openssl` command line tool.
//!
//! Why the CLI and not a crate such as rcgen: Debian's `postgresql` package,
//! which these tests need anyway, depends on `ssl-cert` and so on `openssl`,
//! so the tool is always there where a cluster can start, and it costs the
//! build nothing. Each `TestCa` is a fresh CA, so a test can also make a
//! second, untrusted one.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use super::run::Folder;
use super::{Cluster, Setup};

/// OpenSSL settings of our own, so the system's openssl.cnf cannot change
/// what the certificates look like.
const CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
";

/// A certificate authority in a temporary directory.
pub struct TestCa {
    dir: Folder,
    name: String,
}

/// A server certificate and its private key, PEM.
pub struct ServerCert {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl TestCa {
    /// A new self-signed CA called `name` (its certificate's common name).
    pub fn new(name: &str) -> TestCa {
        let ca = TestCa {
            dir: Folder::new(),
            name: name.to_string(),
        };
        fs::write(ca.dir.path().join("openssl.cnf"), CONFIG).expect("write openssl.cnf");
        ca.new_key_and_request(
            "ca",
            &format!("/CN={name}"),
            &["-x509", "-extensions", "ca", "-days", "2"],
        );
        ca
    }

    /// The CA certificate: what `sslrootcert` points at.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn cert_path_str(&self) -> String {
        self.cert_path().display().to_string()
    }

    /// A server certificate signed by this CA, valid for exactly `san`
    /// (`IP:127.0.0.1` or `DNS:db.example`).
    pub fn server_cert(&self, san: &str) -> ServerCert {
        let extensions = format!(
            "basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = {san}\n"
        );
        fs::write(self.dir.path().join("server.ext"), extensions).expect("write server.ext");
        self.new_key_and_request("server", &format!("/CN={} server", self.name), &[]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        let read = |name: &str| {
            fs::read(self.dir.path().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
        };
        ServerCert {
            cert: read("server.crt"),
            key: read("server.key"),
        }
    }

    /// A new P-256 key `<stem>.key` and, for `subject`, a certificate request
    /// `<stem>.csr` (or a self-signed certificate `<stem>.crt` with `-x509`).
    fn new_key_and_request(&self, stem: &str, subject: &str, extra: &[&str]) {
        let key = format!("{stem}.key");
        let out = if extra.contains(&"-x509") {
            format!("{stem}.crt")
        } else {
            format!("{stem}.csr")
        };
        let mut args = vec![
            "req",
            "-config",
            "openssl.cnf",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &out,
            "-subj",
            subject,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `openssl` ({e}); the TLS tests need it: \
                     `apt-get install openssl` (Debian's postgresql package pulls it in)"
                )
            });
        assert!(
            out.status.success(),
            "openssl {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Cluster {
    /// A cluster of your own with `ssl = on` and `cert`, and `hba` as its
    /// pg_hba.conf (`hostssl` / `hostnossl` lines decide who must encrypt).
    pub fn start_with_tls(cert: &ServerCert, hba: &str) -> Cluster {
        Cluster::start_custom(Setup {
            hba: Some(hba.to_string()),
            files: vec![
                ("server.crt".to_string(), cert.cert.clone()),
                ("server.key".to_string(), cert.key.clone()),
            ],
            settings: vec![
                "ssl=on".to_string(),
                "ssl_cert_file=server.crt".to_string(),
                "ssl_key_file=server.key".to_string(),
            ],
        })
    }
}
