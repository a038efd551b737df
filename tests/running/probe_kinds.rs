//! The readiness probes beyond lines and ports: `wait_for_stderr_line`,
//! `wait_for_path`, `wait_for_http` and `wait_for_socket`, each on its
//! success, deadline and child-exit paths. A child that exits before it is
//! ready fails the probe at once, with the reason, not at the deadline.
#![cfg(unix)]

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use crate::probe_support::{PATIENT, SHORT, assert_survived, prompt, reason, start};
use common::{TempDir, sh};
use processkit::{Command, Error, NotReadyReason, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// --- wait_for_stderr_line ---

#[tokio::test]
async fn wait_for_stderr_line_returns_the_match_and_leaves_the_rest() {
    let (mut run, _guard) = start(sh(
        "echo booting >&2; echo 'ready on 1234' >&2; echo after >&2; echo more >&2",
    ))
    .await;
    let line = run
        .wait_for_stderr_line(|l| l.starts_with("ready"), PATIENT)
        .await
        .unwrap();
    assert_eq!(line, "ready on 1234");
    let rest: Vec<String> = run.stderr_lines().collect().await;
    assert_eq!(rest, ["after", "more"]);
}

#[tokio::test]
async fn lines_after_a_stderr_match_reach_the_finisher() {
    let (mut run, _guard) = start(sh("echo ready >&2; echo tail >&2")).await;
    run.wait_for_stderr_line(|l| l == "ready", PATIENT)
        .await
        .unwrap();
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!((code, stderr.as_str()), (Some(0), "tail\n"));
}

#[tokio::test]
async fn wait_for_stderr_line_deadline_is_not_ready_and_the_child_survives() {
    let (mut run, _guard) = start(sh("echo nope >&2; exec sleep 30")).await;
    let err = run
        .wait_for_stderr_line(|l| l == "ready", SHORT)
        .await
        .unwrap_err();
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_stderr_line_fails_fast_when_the_child_exits() {
    let (mut run, _guard) = start(sh("echo nope >&2; exit 3")).await;
    let err = run
        .wait_for_stderr_line(|l| l == "ready", PATIENT)
        .await
        .unwrap_err();
    prompt(&err);
    assert_eq!(reason(err), NotReadyReason::StderrClosed);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(3));
}

#[tokio::test]
async fn wait_for_stderr_line_on_uncaptured_stderr_fails_at_once() {
    let cmd = sh("echo ready >&2; exec sleep 30").stderr_to_stdout();
    let (mut run, _guard) = start(cmd).await;
    let err = run
        .wait_for_stderr_line(|l| l == "ready", PATIENT)
        .await
        .unwrap_err();
    prompt(&err);
    assert_eq!(reason(err), NotReadyReason::StderrClosed);
    assert_survived(&run);
}

// --- wait_for_path ---

#[tokio::test]
async fn wait_for_path_passes_once_the_child_creates_it() {
    let scratch = TempDir::new("probe-path");
    let marker = scratch.file("ready");
    let (mut run, _guard) = start(sh(&format!("sleep 0.2; touch '{marker}'; exec sleep 30"))).await;
    run.wait_for_path(&marker, PATIENT).await.unwrap();
    assert!(std::path::Path::new(&marker).exists());
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_path_deadline_is_not_ready_and_the_child_survives() {
    let scratch = TempDir::new("probe-path-deadline");
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let err = run
        .wait_for_path(scratch.join("never"), SHORT)
        .await
        .unwrap_err();
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_path_fails_fast_when_the_child_exits() {
    let scratch = TempDir::new("probe-path-exit");
    let (mut run, _guard) = start(sh("exit 4")).await;
    let err = run
        .wait_for_path(scratch.join("never"), PATIENT)
        .await
        .unwrap_err();
    prompt(&err);
    assert_eq!(reason(err), NotReadyReason::Exited(Some(4)));
}

// --- wait_for_http ---

/// A local HTTP server answering each request with the next of `statuses`
/// (the last one repeats); it counts the requests it answered.
async fn http_server(
    statuses: Vec<u16>,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&served);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).await;
            let answer = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n");
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    (addr, served)
}

#[tokio::test]
async fn wait_for_http_retries_until_a_2xx() {
    let (addr, served) = http_server(vec![503, 404, 204]).await;
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    run.wait_for_http(&format!("http://{addr}/healthz"), PATIENT)
        .await
        .unwrap();
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_http_passes_once_the_child_serves() {
    let port = common::free_port();
    let script = format!(
        "import http.server, time\n\
         time.sleep(0.3)\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       self.send_response(200 if self.path == '/ready' else 404)\n\
         \x20       self.end_headers()\n\
         \x20   def log_message(self, *a):\n\
         \x20       pass\n\
         http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    );
    let (mut run, _guard) = start(Command::new("python3").arg("-c").arg(script)).await;
    run.wait_for_http(&format!("http://127.0.0.1:{port}/ready"), PATIENT)
        .await
        .unwrap();
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_http_deadline_on_a_server_that_never_says_yes() {
    let (addr, served) = http_server(vec![500]).await;
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let err = run
        .wait_for_http(&format!("http://{addr}/"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert!(served.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_survived(&run);
}

#[tokio::test]
async fn a_silent_attempt_times_out_and_the_next_one_passes() {
    // The first connection is accepted and never answered.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (_silent, _) = listener.accept().await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request).await;
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        std::future::pending::<()>().await;
    });
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    run.wait_for_http(&format!("http://{addr}/"), PATIENT)
        .await
        .unwrap();
}

#[tokio::test]
async fn wait_for_http_fails_fast_when_the_child_exits() {
    let port = common::free_port();
    let (mut run, _guard) = start(sh("exit 6")).await;
    let err = run
        .wait_for_http(&format!("http://127.0.0.1:{port}/"), PATIENT)
        .await
        .unwrap_err();
    prompt(&err);
    assert_eq!(reason(err), NotReadyReason::Exited(Some(6)));
}

#[tokio::test]
async fn wait_for_http_refuses_https_and_bad_urls_at_once() {
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let err = run
        .wait_for_http("https://127.0.0.1/", PATIENT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { operation, .. } if *operation == "wait_for_http"),
        "{err:?}"
    );
    let err = run
        .wait_for_http("127.0.0.1:80", PATIENT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert_survived(&run);
}

// --- wait_for_socket ---

#[tokio::test]
async fn wait_for_socket_passes_once_the_child_listens() {
    let scratch = TempDir::new("probe-socket");
    let socket = scratch.file("agent.sock");
    let script = format!(
        "import socket, time\n\
         time.sleep(0.3)\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.bind('{socket}')\n\
         s.listen()\n\
         time.sleep(30)\n"
    );
    let (mut run, _guard) = start(Command::new("python3").arg("-c").arg(script)).await;
    run.wait_for_socket(&socket, PATIENT).await.unwrap();
    assert_survived(&run);
}

#[tokio::test]
async fn a_socket_file_nobody_listens_on_is_not_ready() {
    let scratch = TempDir::new("probe-socket-stale");
    let socket = scratch.join("stale.sock");
    // Bound, then closed: the file stays, connections are refused.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let err = run.wait_for_socket(&socket, SHORT).await.unwrap_err();
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_socket_fails_fast_when_the_child_exits() {
    let scratch = TempDir::new("probe-socket-exit");
    let (mut run, _guard) = start(sh("exit 5")).await;
    let err = run
        .wait_for_socket(scratch.join("never.sock"), PATIENT)
        .await
        .unwrap_err();
    prompt(&err);
    assert_eq!(reason(err), NotReadyReason::Exited(Some(5)));
}
