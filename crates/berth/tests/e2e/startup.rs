//! What an operator sees when starting berth: one line on stdout with the address and the data directory.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::Server;
use crate::harness::server::parse_address_line;

#[test]
fn prints_one_line_with_address_and_data_directory() {
    let mut server = Server::start();
    let line = server.address_line().to_owned();
    assert_eq!(
        line,
        format!(
            "berth listening on http://{} (data: {})",
            server.addr(),
            server.root().display()
        )
    );
    // The printed address is the one that answers, as a registry.
    let r = server.api().get("/v2/", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    server.stop();
    assert_eq!(
        server.stdout_lines(),
        [line],
        "stdout holds more than the address line"
    );
}

#[test]
fn relative_data_directory_is_printed_absolute() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cwd = std::fs::canonicalize(dir.path()).unwrap_or_else(|e| panic!("canonicalize: {e}"));
    std::fs::create_dir(cwd.join("data")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .current_dir(&cwd)
        .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "data")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start berth: {e}"));
    let stdout = child.stdout.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|_| panic!("no address line within 30 s"));
    let (addr, data) = parse_address_line(line.trim_end())
        .unwrap_or_else(|| panic!("unexpected address line {line:?}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
    assert_eq!(data, cwd.join("data"));
}
