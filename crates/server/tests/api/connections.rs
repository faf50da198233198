//! `billow serve`'s connection limits over real sockets: idle connections, slow heads and slow
//! bodies are closed, and connections past the limit wait until one closes. The timeouts are
//! short here; nothing asserts how fast anything is (each wait is only bounded, so that a broken
//! server fails the test instead of hanging it).

use std::net::SocketAddr;
use std::time::Duration;

use billow_server::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// Longest a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(20);
/// Long enough never to be reached during a test.
const NEVER: Duration = Duration::from_secs(3_600);
const SHORT: Duration = Duration::from_millis(300);

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        idle_timeout: NEVER,
        header_read_timeout: NEVER,
        body_read_timeout: NEVER,
        connections_max: 512,
    }
}

/// Reads until the server closes the connection; everything it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .expect("a clean close");
    String::from_utf8(received).unwrap()
}

/// Sends one kept-alive `GET /healthz` and reads its whole answer.
async fn healthz(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: billow\r\n\r\n")
        .await
        .unwrap();
    let expected = "HTTP/1.1 200 OK\r\n";
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).ends_with("\r\n\r\nok") {
        let mut buffer = [0; 1024];
        let read = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        assert_ne!(
            read,
            0,
            "closed early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
    assert!(String::from_utf8_lossy(&received).starts_with(expected));
}

async fn connect(address: SocketAddr) -> TcpStream {
    TcpStream::connect(address).await.unwrap()
}

#[tokio::test]
async fn an_idle_connection_is_closed_before_and_between_requests() {
    let app = TestApp::spawn_with_limits(ConnectionLimits {
        idle_timeout: SHORT,
        ..limits()
    })
    .await;

    let mut silent = connect(app.address).await;
    let mut kept_alive = connect(app.address).await;
    healthz(&mut kept_alive).await;

    assert_eq!(read_until_closed(&mut silent).await, "");
    assert_eq!(read_until_closed(&mut kept_alive).await, "");
    app.stop().await;
}

#[tokio::test]
async fn a_head_that_trickles_in_is_closed_at_the_header_timeout_though_bytes_keep_coming() {
    let app = TestApp::spawn_with_limits(ConnectionLimits {
        header_read_timeout: SHORT,
        ..limits()
    })
    .await;
    let mut stream = connect(app.address).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: billow\r\n")
        .await
        .unwrap();

    // A header byte every 50 ms: never idle, never done. Writing fails once the server closed.
    let trickle = async {
        for _ in 0..(BOUND.as_millis() / 50) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if stream.write_all(b"X").await.is_err() {
                return true;
            }
            let mut buffer = [0; 64];
            match tokio::time::timeout(Duration::ZERO, stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                _ => {}
            }
        }
        false
    };

    assert!(trickle.await, "the server kept the slow head open");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_a_408_problem_and_the_connection_closes() {
    let app = TestApp::spawn_with_limits(ConnectionLimits {
        body_read_timeout: SHORT,
        ..limits()
    })
    .await;
    let key = app.api_key().await;
    let mut stream = connect(app.address).await;
    let head = format!(
        "POST /api/v1/customers HTTP/1.1\r\nHost: billow\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": "
    );

    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;

    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.contains(r#""type":"urn:billow:problem:request-timeout""#),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_connection_past_the_limit_waits_until_one_closes() {
    let app = TestApp::spawn_with_limits(ConnectionLimits {
        connections_max: 1,
        ..limits()
    })
    .await;
    let mut first = connect(app.address).await;
    healthz(&mut first).await;

    let mut second = connect(app.address).await;
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: billow\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0; 64];
    let while_first_is_open = tokio::time::timeout(SHORT, second.read(&mut buffer)).await;
    drop(first);
    let after_first_closed = read_until_closed(&mut second).await;

    assert!(
        while_first_is_open.is_err(),
        "the second connection was served beside the first"
    );
    assert!(
        after_first_closed.starts_with("HTTP/1.1 200 OK\r\n"),
        "{after_first_closed}"
    );
    app.stop().await;
}
