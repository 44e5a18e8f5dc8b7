//! The pull-through cache over HTTP: a stale manifest carries the `Warning` header, containerd's `?ns=`
//! picks the cached namespace and is answered with `OCI-Namespace`, upstream failures without a cached
//! copy are spec errors, and cached namespaces refuse pushes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::http::Method;
use bytes::Bytes;
use futures_util::stream;
use oci::{Digest, Reference, RepoName};
use registry::proxy::{
    CacheObserver, ManifestHead, Namespace, ProxySettings, Upstream, UpstreamBlob, UpstreamError,
    UpstreamManifest,
};

use crate::harness::{Harness, OCI_MANIFEST, image_manifest};

const OK: u8 = 0;
const DOWN: u8 = 1;
const LIMITED: u8 = 2;
/// The image's config.
const CONFIG: &[u8] = b"{}";

/// An upstream holding one image, `library/alpine:3` (a manifest, its config `{}` and one layer).
pub(crate) struct OneImage {
    manifest: Bytes,
    pub(crate) layer: Bytes,
    state: AtomicU8,
}

impl OneImage {
    pub(crate) fn new() -> Arc<OneImage> {
        let layer = Bytes::from_static(b"layer bytes of the upstream");
        let config = Digest::sha256_of(CONFIG);
        let manifest = image_manifest(
            (&config, 2),
            (&Digest::sha256_of(&layer), layer.len()),
            None,
        );
        Arc::new(OneImage {
            manifest: Bytes::from(manifest),
            layer,
            state: AtomicU8::new(OK),
        })
    }

    /// Every request fails from now on, as with an upstream that went away.
    pub(crate) fn go_down(&self) {
        self.state.store(DOWN, Ordering::SeqCst);
    }

    fn check(&self, repo: &RepoName) -> Result<bool, UpstreamError> {
        match self.state.load(Ordering::SeqCst) {
            DOWN => Err(UpstreamError::Unavailable("refused".into())),
            LIMITED => Err(UpstreamError::RateLimited { retry_after: None }),
            _ => Ok(repo.as_str() == "library/alpine"),
        }
    }

    fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }
}

#[async_trait::async_trait]
impl Upstream for OneImage {
    fn name(&self) -> &str {
        "one"
    }

    async fn manifest_head(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<ManifestHead>, UpstreamError> {
        let m = self.manifest_get(repo, reference, usize::MAX).await?;
        Ok(m.map(|m| ManifestHead {
            digest: m.digest,
            media_type: m.media_type,
            size: m.payload.len() as u64,
        }))
    }

    async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
        _: usize,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        let known = match reference {
            Reference::Tag(t) => t.as_str() == "3",
            Reference::Digest(d) => *d == self.digest(),
        };
        Ok((self.check(repo)? && known).then(|| UpstreamManifest {
            digest: self.digest(),
            media_type: OCI_MANIFEST.into(),
            payload: self.manifest.clone(),
        }))
    }

    async fn tags_list(
        &self,
        repo: &RepoName,
        _: usize,
        _: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
        Ok(self.check(repo)?.then(|| (vec!["3".to_string()], false)))
    }

    async fn blob_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, UpstreamError> {
        let bytes = if *digest == Digest::sha256_of(&self.layer) {
            Some(self.layer.clone())
        } else if *digest == Digest::sha256_of(CONFIG) {
            Some(Bytes::from_static(CONFIG))
        } else {
            None
        };
        let here = self.check(repo)?;
        Ok(bytes.filter(|_| here).map(|b| UpstreamBlob {
            size: Some(b.len() as u64),
            body: Box::pin(stream::once(async move { Ok(b) })),
        }))
    }
}

/// `upstream` cached under `docker.io` (Docker Hub's `library/` rule), tags revalidated on every pull.
fn docker_io(upstream: &Arc<OneImage>) -> ProxySettings {
    ProxySettings {
        namespaces: vec![Namespace {
            prefix: "docker.io".into(),
            upstream: upstream.clone(),
            official_library: true,
        }],
        revalidate_after: Duration::ZERO,
        eviction: None,
    }
}

/// A registry mirroring `upstream` under `docker.io` (Docker Hub's `library/` rule) that revalidates
/// tags on every pull.
async fn mirror(upstream: &Arc<OneImage>) -> Harness {
    observed_mirror(upstream, None).await
}

/// [`mirror`], reporting the cache's events to `observer`.
pub(crate) async fn observed_mirror(
    upstream: &Arc<OneImage>,
    observer: Option<Arc<dyn CacheObserver>>,
) -> Harness {
    let config = docker_io(upstream);
    Harness::with_app(registry::Settings::default(), |reg, _| async move {
        berth_http::router(reg.with_proxy(config, observer))
    })
    .await
}

#[tokio::test]
async fn a_stale_manifest_carries_a_warning() {
    let up = OneImage::new();
    let h = mirror(&up).await;
    let fresh = h.get("/v2/docker.io/alpine/manifests/3").await;
    fresh.assert_status(200);
    assert_eq!(fresh.body, up.manifest);
    assert!(!fresh.has_header("warning"));

    for state in [DOWN, LIMITED] {
        up.state.store(state, Ordering::SeqCst);
        for method in [Method::GET, Method::HEAD] {
            let stale = h
                .call(
                    method.clone(),
                    "/v2/docker.io/alpine/manifests/3",
                    &[],
                    None,
                )
                .await;
            stale.assert_status(200);
            assert_eq!(
                stale.header("warning"),
                "110 - \"Response is stale\"",
                "{method}"
            );
            assert_eq!(
                stale.header("docker-content-digest"),
                up.digest().to_string()
            );
        }
    }
    up.state.store(OK, Ordering::SeqCst);
    assert!(
        !h.get("/v2/docker.io/alpine/manifests/3")
            .await
            .has_header("warning")
    );
}

#[tokio::test]
async fn containerd_namespaces_pick_the_cache_and_are_answered() {
    let up = OneImage::new();
    let h = mirror(&up).await;
    let m = h.get("/v2/library/alpine/manifests/3?ns=docker.io").await;
    m.assert_status(200);
    assert_eq!(m.header("oci-namespace"), "docker.io");
    assert_eq!(m.body, up.manifest);
    let layer = Digest::sha256_of(&up.layer);
    let b = h
        .get(&format!("/v2/library/alpine/blobs/{layer}?ns=docker.io"))
        .await;
    b.assert_status(200);
    assert_eq!(b.header("oci-namespace"), "docker.io");
    assert_eq!(b.body, up.layer);
    let head = h
        .head(&format!("/v2/library/alpine/blobs/{layer}?ns=docker.io"))
        .await;
    assert_eq!(head.header("oci-namespace"), "docker.io");
    // The same repository under its prefixed name: already cached.
    h.get(&format!("/v2/docker.io/library/alpine/blobs/{layer}"))
        .await
        .assert_status(200);
    // A namespace nobody mirrors is ignored: the local repository of that name does not exist.
    let other = h.get("/v2/library/alpine/manifests/3?ns=quay.io").await;
    other.assert_error(404, "MANIFEST_UNKNOWN");
    assert!(!other.has_header("oci-namespace"));
}

#[tokio::test]
async fn upstream_failures_without_a_cached_copy_are_spec_errors() {
    let up = OneImage::new();
    let h = mirror(&up).await;
    h.get("/v2/docker.io/alpine/manifests/nope")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    let unknown = Digest::sha256_of(b"nothing");
    h.get(&format!("/v2/docker.io/alpine/blobs/{unknown}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    up.state.store(LIMITED, Ordering::SeqCst);
    h.get("/v2/docker.io/alpine/manifests/3")
        .await
        .assert_error(429, "TOOMANYREQUESTS");
    up.go_down();
    let r = h.get("/v2/docker.io/alpine/manifests/3").await;
    r.assert_error(503, "UNAVAILABLE");
    assert!(
        !String::from_utf8_lossy(&r.body).contains("refused"),
        "no upstream detail leaks"
    );
}

#[tokio::test]
async fn cached_namespaces_refuse_pushes_and_local_repositories_accept_them() {
    let up = OneImage::new();
    let h = mirror(&up).await;
    let r = h
        .call(
            Method::POST,
            "/v2/docker.io/alpine/blobs/uploads/",
            &[],
            None,
        )
        .await;
    r.assert_error(405, "UNSUPPORTED");
    let r = h
        .call(
            Method::PUT,
            "/v2/docker.io/alpine/manifests/x",
            &[],
            Some(b"{}"),
        )
        .await;
    r.assert_error(405, "UNSUPPORTED");
    h.call(Method::POST, "/v2/team/app/blobs/uploads/", &[], None)
        .await
        .assert_status(202);
}

/// containerd's `?ns=` reads another repository than the one in the path, which is the one the auth
/// middleware authorised: a caller who may pull `library/**` but not `docker.io/**` must not reach the
/// cache through it, and one who may pull both gets the cached copy.
#[tokio::test]
async fn a_namespace_lookup_needs_pull_access_to_the_cached_repository() {
    use auth::{AccessSettings, Authority, HtpasswdSettings, RuleSettings, Settings};

    use crate::auth::{HTPASSWD, REALM, basic, rule, strings};

    let up = OneImage::new();
    let config = docker_io(&up);
    let h = Harness::with_app(registry::Settings::default(), |reg, dir| async move {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, HTPASSWD).unwrap();
        let settings = Settings {
            htpasswd: Some(HtpasswdSettings {
                realm: REALM.to_string(),
                path: htpasswd,
            }),
            token: None,
            access: Some(AccessSettings {
                openbase: false,
                groups: Default::default(),
                rules: vec![
                    // bob pulls local `library/**` only; alice pulls the cache too.
                    RuleSettings {
                        users: strings(&["bob", "alice"]),
                        ..rule(&["library/**"], &["pull"])
                    },
                    RuleSettings {
                        users: strings(&["alice"]),
                        ..rule(&["docker.io/**"], &["pull"])
                    },
                ],
            }),
        };
        let authority = Authority::new(&settings).unwrap().unwrap();
        berth_http::router_with_auth(reg.with_proxy(config, None), Some(Arc::new(authority)))
    })
    .await;
    let uri = "/v2/library/alpine/manifests/3?ns=docker.io";
    let as_user = |user: &str, pw: &str| {
        let auth = basic(user, pw);
        let h = &h;
        async move {
            h.call(Method::GET, uri, &[("authorization", auth.as_str())], None)
                .await
        }
    };
    let alice = as_user("alice", "secret").await;
    alice.assert_status(200);
    assert_eq!(alice.body, up.manifest);
    assert_eq!(alice.header("oci-namespace"), "docker.io");
    // bob is answered for the local `library/alpine`, which does not exist: never the cached copy.
    let bob = as_user("bob", "builder").await;
    bob.assert_error(404, "MANIFEST_UNKNOWN");
    assert!(!bob.has_header("oci-namespace"));
    // Directly by the cached name he is refused by the middleware, as before.
    let auth = basic("bob", "builder");
    h.call(
        Method::GET,
        "/v2/docker.io/library/alpine/manifests/3",
        &[("authorization", auth.as_str())],
        None,
    )
    .await
    .assert_error(403, "DENIED");
}

/// A token granting `registry:catalog:*` shows every name in the catalog, but content only where it
/// grants pull: containerd's `?ns=` must not turn the catalog grant into a read of the cache, however
/// the parameter is spelled.
#[tokio::test]
async fn a_catalog_grant_does_not_read_the_cache_through_a_namespace() {
    use auth::Authority;
    use serde_json::json;

    use crate::auth::{key_file, token_settings};

    let up = OneImage::new();
    let config = docker_io(&up);
    let h = Harness::with_app(registry::Settings::default(), |reg, dir| async move {
        let authority = Authority::new(&token_settings(&dir)).unwrap().unwrap();
        berth_http::router_with_auth(reg.with_proxy(config, None), Some(Arc::new(authority)))
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |access: serde_json::Value| {
        let claims = json!({
            "iss": "test-issuer", "sub": "dave", "aud": "berth.test",
            "exp": now + 300, "nbf": now - 5, "iat": now - 5, "access": access,
        });
        let pem = std::fs::read(key_file("rsa-key.pem")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        )
    };
    let local = json!({"type": "repository", "name": "library/alpine", "actions": ["pull"]});
    let catalog = json!({"type": "registry", "name": "catalog", "actions": ["*"]});
    let cached =
        json!({"type": "repository", "name": "docker.io/library/alpine", "actions": ["pull"]});
    let lister = token(json!([local, catalog]));
    let layer = Digest::sha256_of(&up.layer);
    for uri in [
        "/v2/library/alpine/manifests/3?ns=docker.io".to_string(),
        "/v2/library/alpine/manifests/3?%6Es=docker%2Eio".to_string(),
        "/v2/library/alpine/manifests/3?ns=docker.io&ns=docker.io".to_string(),
        format!("/v2/library/alpine/blobs/{layer}?ns=docker.io"),
    ] {
        for method in [Method::GET, Method::HEAD] {
            let r = h
                .call(
                    method.clone(),
                    &uri,
                    &[("authorization", lister.as_str())],
                    None,
                )
                .await;
            assert_eq!(r.status.as_u16(), 404, "{method} {uri}");
            assert!(!r.has_header("oci-namespace"), "{method} {uri}");
        }
    }
    // With pull on the cached repository, the same request reads the cache.
    let reader = token(json!([local, cached]));
    let r = h
        .call(
            Method::GET,
            "/v2/library/alpine/manifests/3?%6Es=docker%2Eio",
            &[("authorization", reader.as_str())],
            None,
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body, up.manifest);
}

/// The registry page's cache figures (`/api/v1/registry`) count what the cache did: served from it,
/// fetched, served stale, and the upstream's last failure.
#[tokio::test]
async fn the_registry_figures_count_what_the_cache_did() {
    let up = OneImage::new();
    let config = docker_io(&up);
    let h = Harness::with_app(registry::Settings::default(), |reg, _| async move {
        let reg = reg.with_proxy(config, None);
        let site = berth_http::site::Site::default();
        let health = berth_http::health::Health::unchecked();
        berth_http::router(reg.clone())
            .merge(berth_http::ui::router(reg, None, &site, health, None))
    })
    .await;
    let blob = format!(
        "/v2/docker.io/alpine/blobs/{}",
        Digest::sha256_of(&up.layer)
    );
    h.get("/v2/docker.io/alpine/manifests/3")
        .await
        .assert_status(200);
    h.get(&blob).await.assert_status(200);
    // The fetched blob is committed to the cache just after its last byte went out: read it again
    // until a read is served from the cache.
    let hits = || async { h.get("/api/v1/registry").await.json()["cache"]["hits"].clone() };
    for _ in 0..100 {
        if hits().await != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.get(&blob).await.assert_status(200);
    }
    up.go_down();
    h.get("/v2/docker.io/alpine/manifests/3")
        .await
        .assert_status(200);

    let r = h.get("/api/v1/registry").await;
    r.assert_status(200);
    let c = &r.json()["cache"];
    assert_eq!(
        c["namespaces"],
        serde_json::json!([{ "prefix": "docker.io", "upstream": "one" }])
    );
    // One blob read served from the cache (the manifest was revalidated each time: a miss, then stale).
    assert_eq!(c["hits"], 1, "{c}");
    assert_eq!(c["served_bytes"], up.layer.len(), "{c}");
    assert_eq!(c["stale"], 1, "{c}");
    assert!(c["misses"].as_u64().unwrap() >= 2, "{c}");
    assert_eq!(c["upstream_failures"], 1, "{c}");
    assert_eq!(c["last_failure"]["outcome"], "unavailable", "{c}");
}
