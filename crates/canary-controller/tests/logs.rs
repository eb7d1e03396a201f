//! The controller's logs for operators (no cluster needed): written to a file in the text
//! format they carry no colour codes, and with the default filter an API server answering
//! 500 does not produce kube-client's own ERROR line per answer.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An API server stand-in answering 500 to every request, on loopback; returns its URL.
fn failing_api_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buffer = [0u8; 8192];
                let _ = stream.read(&mut buffer);
                let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"broken","code":500}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

#[test]
fn text_logs_in_a_file_have_no_colour_and_no_kube_client_line_per_500() {
    let dir = std::env::temp_dir().join(format!("kc-controller-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let server = failing_api_server();
    std::fs::write(
        &kubeconfig,
        format!(
            r#"{{"apiVersion":"v1","kind":"Config",
"clusters":[{{"name":"c","cluster":{{"server":"{server}"}}}}],
"users":[{{"name":"u","user":{{"token":"t"}}}}],
"contexts":[{{"name":"x","context":{{"cluster":"c","user":"u"}}}}],
"current-context":"x"}}"#
        ),
    )
    .unwrap();
    let log = dir.join("controller.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-canary-controller"))
        .args(["--log-format", "text", "--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .unwrap();
    // The startup check's reads are retried within the request budget, then it stops.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the controller did not stop on a failing API server");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        status.code(),
        Some(i32::from(canary_controller::exit_code::STARTUP_REFUSED)),
        "{text}"
    );
    assert!(text.contains("stopped"), "the reason is logged: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a file: {text:?}"
    );
    assert!(
        !text.contains("kube_client::client::builder"),
        "no kube-client line per 500: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
