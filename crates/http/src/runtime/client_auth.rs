//! Client certificates (registry:3's `http.tls.clientauth`, with `http.tls.clientcas`): the four modes of
//! Go's `tls.ClientAuthType` that registry:3 offers, as rustls client verifiers.
//!
//! | mode | a client without a certificate | a certificate no listed CA signed |
//! | --- | --- | --- |
//! | `request-client-cert` | served | served (not verified) |
//! | `require-any-client-cert` | refused | served (not verified) |
//! | `verify-client-cert-if-given` | served | refused |
//! | `require-and-verify-client-cert` (the default) | refused | refused |
//!
//! The two modes that verify are webpki's verifier over the listed CAs. The two that do not are
//! [`Unverified`]: it accepts any chain, but still checks the handshake's signature with the
//! certificate's key, as Go does, so a client must hold the key of the certificate it shows. berth
//! authenticates no one by an unverified certificate; these modes exist so that a registry:3 file loads
//! and behaves as it did (a TLS terminator in front that only wants a certificate presented).
//! As in registry:3, the mode means nothing without `clientcas`: no certificate is asked for then.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{self, DigitallySignedStruct, DistinguishedName, RootCertStore};

/// How client certificates are asked for and checked, when client CAs are configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asked for, neither required nor verified.
    RequestClientCert,
    /// Required, not verified.
    RequireAnyClientCert,
    /// Not required; verified when given.
    VerifyClientCertIfGiven,
    /// Required and verified: registry:2's only behaviour, and registry:3's default.
    #[default]
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Every mode, as registry:3 spells it.
    pub const ALL: [ClientAuth; 4] = [
        ClientAuth::RequestClientCert,
        ClientAuth::RequireAnyClientCert,
        ClientAuth::VerifyClientCertIfGiven,
        ClientAuth::RequireAndVerifyClientCert,
    ];

    fn name(self) -> &'static str {
        match self {
            ClientAuth::RequestClientCert => "request-client-cert",
            ClientAuth::RequireAnyClientCert => "require-any-client-cert",
            ClientAuth::VerifyClientCertIfGiven => "verify-client-cert-if-given",
            ClientAuth::RequireAndVerifyClientCert => "require-and-verify-client-cert",
        }
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    fn mandatory(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

impl FromStr for ClientAuth {
    type Err = String;

    /// registry:3's spellings (it compares them exactly; so does berth, but without case).
    fn from_str(s: &str) -> Result<ClientAuth, String> {
        let lower = s.trim().to_ascii_lowercase();
        ClientAuth::ALL
            .into_iter()
            .find(|m| m.name() == lower)
            .ok_or_else(|| {
                let names: Vec<_> = ClientAuth::ALL.iter().map(|m| m.name()).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verifier for `mode` over `roots` (not empty).
pub(crate) fn verifier(
    mode: ClientAuth,
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
    if mode.verifies() {
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if mode.mandatory() {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        return builder
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()));
    }
    Ok(Arc::new(Unverified {
        mandatory: mode.mandatory(),
        algorithms: provider.signature_verification_algorithms,
    }))
}

/// Accepts any certificate chain; checks only that the client holds the certificate's key.
#[derive(Debug)]
struct Unverified {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for Unverified {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No hints: the client may offer any certificate it has.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry3s_spellings_round_trip() {
        for mode in ClientAuth::ALL {
            assert_eq!(mode.to_string().parse::<ClientAuth>(), Ok(mode));
        }
        assert_eq!(
            "Require-Any-Client-Cert".parse::<ClientAuth>(),
            Ok(ClientAuth::RequireAnyClientCert)
        );
        assert!(
            "verify"
                .parse::<ClientAuth>()
                .unwrap_err()
                .contains("require-and-verify-client-cert")
        );
    }
}
