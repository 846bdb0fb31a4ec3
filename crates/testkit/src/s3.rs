//! An S3-compatible server for tests: moto's server (from `tests/python/requirements.txt`) on a free loopback
//! port, with its objects in memory, stopped on drop. It supports S3's conditional writes
//! (`If-None-Match: *`), which the warehouse's Delta commits rely on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestkitError, free_ports, python_venv};

/// A running moto S3 server. Dropping it stops the server.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Result<S3Server, TestkitError> {
        let venv = python_venv()?;
        let [port] = free_ports()?;
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestkitError::Python { step: "starting moto_server".into(), message: e.to_string() })?;
        // Stopped on drop if it does not come up.
        let mut server = S3Server { child, port };
        crate::wait_until_serving(&mut server.child, port, || request(port, "GET", "/").is_ok())
            .map_err(|message| TestkitError::Python { step: "starting moto_server".into(), message })?;
        Ok(server)
    }

    /// The server's endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), TestkitError> {
        let status = self.request("PUT", &format!("/{bucket}"))?;
        if status != 200 {
            return Err(TestkitError::Python {
                step: format!("creating bucket {bucket}"),
                message: format!("HTTP status {status}"),
            });
        }
        Ok(())
    }

    /// The environment a client needs (the variables `object_store` and `deltalake` read): test credentials,
    /// the endpoint, plain HTTP.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "permitflow-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "permitflow-test-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }

    /// One HTTP/1.1 request without a body; returns the status code.
    fn request(&self, method: &str, path: &str) -> Result<u16, TestkitError> {
        request(self.port, method, path)
    }
}

/// One HTTP/1.1 request without a body to the server on `port`; returns the status code.
fn request(port: u16, method: &str, path: &str) -> Result<u16, TestkitError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| TestkitError::Python {
        step: format!("{method} {path} on moto_server"),
        message: format!("not an HTTP response: {response:.200}"),
    })
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
