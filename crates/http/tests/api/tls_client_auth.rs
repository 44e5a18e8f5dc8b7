//! registry:3's `http.tls.clientauth` modes on the real server: for each, a client with no certificate,
//! one with a certificate no listed CA signed, and one with a certificate a listed CA signed, each served
//! or refused as Go's `tls.ClientAuthType` of that name would.

use berth_http::tls::{ClientAuth, TlsSettings};

use crate::tls::{BOTH, Ca, Files, client, connect, get_base, serve_tls};

/// Whether a connection with `connector` is answered `GET /v2/`. (With TLS 1.3 the client may finish its
/// side of the handshake before the server's refusal arrives, so look at the request.)
async fn served(running: &crate::limits::Running, connector: &tokio_rustls::TlsConnector) -> bool {
    match connect(running, connector).await {
        Err(_) => false,
        Ok(tls) => get_base(tls)
            .await
            .map(|answer| answer.starts_with("HTTP/1.1 200"))
            .unwrap_or(false),
    }
}

#[tokio::test]
async fn each_mode_serves_whom_registry3_serves() {
    let server_ca = Ca::new("server CA");
    let clients_ca = Ca::new("clients CA");
    let stranger_ca = Ca::new("another CA");
    let files = Files::new(&server_ca.server());
    let ca_file = files.dir.path().join("clients.pem");
    std::fs::write(&ca_file, clients_ca.pem()).unwrap();
    let no_cert = client(&server_ca, BOTH, None, &[]);
    let stranger = client(&server_ca, BOTH, Some(&stranger_ca.client("mallory")), &[]);
    let listed = client(&server_ca, BOTH, Some(&clients_ca.client("alice")), &[]);

    // (mode, served without a certificate, served with a stranger's, served with a listed CA's)
    let cases = [
        (ClientAuth::RequestClientCert, true, true, true),
        (ClientAuth::RequireAnyClientCert, false, true, true),
        (ClientAuth::VerifyClientCertIfGiven, true, false, true),
        (ClientAuth::RequireAndVerifyClientCert, false, false, true),
    ];
    for (mode, without, strange, good) in cases {
        let settings = TlsSettings {
            client_cas: vec![ca_file.clone()],
            client_auth: mode,
            ..files.settings()
        };
        let (_h, running) = serve_tls(&settings).await;
        assert_eq!(
            served(&running, &no_cert).await,
            without,
            "{mode}: no certificate"
        );
        assert_eq!(
            served(&running, &stranger).await,
            strange,
            "{mode}: stranger's certificate"
        );
        assert_eq!(
            served(&running, &listed).await,
            good,
            "{mode}: listed CA's certificate"
        );
        running.stop().await;
    }
}

/// As in registry:3, a mode without `clientcas` asks for no certificate: everyone is served.
#[tokio::test]
async fn a_mode_without_client_cas_asks_for_nothing() {
    let server_ca = Ca::new("server CA");
    let files = Files::new(&server_ca.server());
    let settings = TlsSettings {
        client_auth: ClientAuth::RequireAnyClientCert,
        ..files.settings()
    };
    let (_h, running) = serve_tls(&settings).await;
    assert!(served(&running, &client(&server_ca, BOTH, None, &[])).await);
    running.stop().await;
}
