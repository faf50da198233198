use crate::helpers::{raw_get, TestApp};

#[tokio::test]
async fn the_served_application_answers_healthz_over_a_socket() {
    let app = TestApp::spawn().await;

    let response = raw_get(app.address, "/healthz").await;

    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
    app.stop().await;
}

#[tokio::test]
async fn building_the_application_creates_and_migrates_the_data_file() {
    let app = TestApp::spawn().await;

    assert!(app.directory.path().join("billow.db").exists());
    let response = raw_get(app.address, "/readyz").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    app.stop().await;
}
