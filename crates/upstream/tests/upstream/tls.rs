//! An https upstream (berth serving TLS with a certificate from a CA made here): trusted through the
//! extra CA setting, refused without it.

use std::sync::Arc;

use berth_http::ServeSettings;
use berth_http::tls::{TlsAcceptor, TlsSettings, TlsVersion};
use berth_upstream::{HttpUpstream, SettingsError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use registry::proxy::{Upstream, UpstreamError};

use crate::harness::*;

/// A CA's PEM, and a server certificate for 127.0.0.1 written to `dir` as TLS settings.
fn certificates(dir: &std::path::Path) -> (String, TlsSettings) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "berth upstream test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let settings = TlsSettings {
        certificate: cert_path,
        key: key_path,
        client_cas: Vec::new(),
        client_auth: Default::default(),
        minimum_version: TlsVersion::Tls12,
        http2: true,
    };
    (issuer.pem(), settings)
}

#[tokio::test]
async fn an_https_upstream_is_trusted_through_the_extra_ca() {
    let mut origin = Origin::start().await;
    let image = origin.seed_image("lib/app", "v1", b"layer over tls").await;
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, tls) = certificates(dir.path());
    let options = ServeSettings {
        tls: Some(TlsAcceptor::new(&tls).unwrap()),
        ..ServeSettings::default()
    };
    let url = origin
        .serve(berth_http::router(origin.registry.clone()), options)
        .await;
    assert!(url.starts_with("https://"));
    let repo = name("lib/app");

    let mut s = settings(&url);
    s.extra_root_certificates = vec![ca_pem.into_bytes()];
    let trusting = Arc::new(HttpUpstream::new(&s).unwrap());
    let got = trusting
        .manifest_get(&repo, &tag("v1"), 4 << 20)
        .await
        .unwrap();
    assert_eq!(got.unwrap().digest, image.digest);
    let blob = trusting
        .blob_get(&repo, &image.layer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(drain(blob.body).await.unwrap().0, b"layer over tls");

    match client(&url).manifest_head(&repo, &tag("v1")).await {
        Err(UpstreamError::Unavailable(msg)) => assert!(msg.contains("certificate"), "{msg}"),
        other => panic!("an unknown CA must be refused: {other:?}"),
    }
}

#[test]
fn unusable_settings_are_refused_up_front() {
    let mut s = settings("https://127.0.0.1:1");
    s.extra_root_certificates = vec![b"not a certificate".to_vec()];
    assert!(matches!(
        HttpUpstream::new(&s),
        Err(SettingsError::Certificates(_))
    ));
    let s = settings("https://alice:secret@registry.example");
    assert!(matches!(
        HttpUpstream::new(&s),
        Err(SettingsError::Url { .. })
    ));
    let mut s = settings("https://registry.example");
    s.user_agent = "bad\nagent".into();
    assert!(matches!(
        HttpUpstream::new(&s),
        Err(SettingsError::UserAgent)
    ));
}
