//! The `cdf-emulator` binary: one ready line on stdout, clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn prints_one_line_serves_and_exits_cleanly_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdf-emulator"))
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--project",
            "demo",
            "--client-id",
            "id",
            "--client-secret",
            "s3cret",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim_end(),
        format!(
            "cdf-emulator listening base_url=http://127.0.0.1:{port} token_url=http://127.0.0.1:{port}/oauth2/token project=demo"
        )
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "id"),
                ("client_secret", "s3cret"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn help_shows_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_cdf-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "127.0.0.1:8181",
        "emulated-project",
        "emulator-client",
        "--token-ttl-secs",
        "--cursor-expiry-secs",
        "--explicit-nulls",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}
