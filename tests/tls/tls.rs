//! `wss://`: a server behind tokio-rustls with a certificate made in the
//! test (rcgen), served through `Server::serve_stream_from` by a server
//! built without a listener; a client trusting that certificate through
//! `ClientBuilder::tls_config` (feature `rustls`, which this package
//! enables: a package of its own, outside the default members, so that the
//! feature and its crypto provider are not built into every example).
//!
//! `cargo test -p ws-messaging-tls-tests`

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use ws_messaging::{AttemptError, Client, ConnectError, Server};
use ws_messaging_json::Json;

/// A TLS server on 127.0.0.1 with a fresh certificate for `127.0.0.1`;
/// returns its `wss://` URL and the certificate (DER).
async fn tls_server() -> (String, Vec<u8>, Server<Json>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = certified.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone().into()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let server = Server::<Json>::builder()
        .on_connection(|endpoint, _: Value| async move {
            let request = endpoint.request().unwrap();
            assert!(request.peer_addr().is_some_and(|a| a.ip().is_loopback()));
            Ok(json!({ "secure": true }))
        })
        .build();
    ws_messaging_conformance::register::<Json, Value>(&server, false).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let server = serving.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    server.serve_stream_from(tls, peer).await;
                }
            });
        }
    });
    (format!("wss://{addr}"), cert, server)
}

#[tokio::test]
async fn a_client_speaks_wss_with_its_own_rustls_config() {
    let (url, cert, server) = tls_server().await;
    assert_eq!(server.local_addr(), None);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.into()).unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = Client::<Json>::builder(url)
        .tls_config(Arc::new(tls))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.auth_reply::<Value>(), Some(json!({ "secure": true })));
    let echoed: Value = client.invoke("echo", (json!({ "over": "tls" }),)).await.unwrap();
    assert_eq!(echoed, json!({ "over": "tls" }));
}

#[tokio::test]
async fn a_certificate_the_client_does_not_trust_fails_the_attempt() {
    let (url, _cert, _server) = tls_server().await;
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let result = Client::<Json>::builder(url)
        .tls_config(Arc::new(tls))
        .fail_fast(true)
        .connect()
        .await;
    let Err(ConnectError::GaveUp {
        last: AttemptError::Open(error),
    }) = &result
    else {
        panic!("{result:?}");
    };
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
}
