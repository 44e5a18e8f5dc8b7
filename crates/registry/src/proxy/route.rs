//! Which repositories are cached, from which upstream, under which upstream name.
//!
//! A namespace maps a name prefix to an upstream: with prefix `docker.io`, the local repository
//! `docker.io/library/alpine` mirrors Docker Hub's `library/alpine`. The empty prefix (registry:2's
//! `proxy.remoteurl`) mirrors one upstream under every name that no other prefix claims, which is how
//! docker's `registry-mirrors` addresses a mirror (`/v2/library/alpine/...`).
//!
//! Docker Hub files its official images under `library/`, and clients let users leave it out. For a
//! namespace with that rule, a one-component name gets `library/` in front, both upstream and locally, so
//! `docker.io/alpine` and `docker.io/library/alpine` are one cached repository, not two.

use std::sync::Arc;

use oci::RepoName;

use super::Upstream;

/// One cached namespace, as the registry is configured with it.
#[derive(Clone)]
pub struct Namespace {
    /// The name prefix, without a trailing `/` (`docker.io`, `ghcr.io`, `cache/quay`); empty: every
    /// repository no other namespace claims.
    pub prefix: String,
    pub upstream: Arc<dyn Upstream>,
    /// Docker Hub's rule: one-component names live under `library/`.
    pub official_library: bool,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("prefix", &self.prefix)
            .field("upstream", &self.upstream.name())
            .field("official_library", &self.official_library)
            .finish()
    }
}

/// Where one request goes: the repository the cache keeps locally and the upstream's name for it.
#[derive(Clone)]
pub(crate) struct Route {
    /// The canonical local repository (with `library/` added where the namespace says so).
    pub local: RepoName,
    /// The upstream's name of the repository.
    pub remote: RepoName,
    pub upstream: Arc<dyn Upstream>,
}

/// The configured namespaces, longest prefix first so that `docker.io/mirror` can be carved out of
/// `docker.io`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Routes {
    namespaces: Vec<Namespace>,
}

impl Routes {
    pub fn new(mut namespaces: Vec<Namespace>) -> Routes {
        for ns in &mut namespaces {
            ns.prefix = ns.prefix.trim_matches('/').to_ascii_lowercase();
        }
        namespaces.sort_by_key(|ns| std::cmp::Reverse(ns.prefix.len()));
        Routes { namespaces }
    }

    /// The route of `name`, or `None` for a local repository.
    pub fn route(&self, name: &RepoName) -> Option<Route> {
        let full = name.as_str();
        self.namespaces.iter().find_map(|ns| {
            let rest = if ns.prefix.is_empty() {
                full
            } else {
                full.strip_prefix(ns.prefix.as_str())?.strip_prefix('/')?
            };
            if rest.is_empty() {
                return None;
            }
            let remote = if ns.official_library && !rest.contains('/') {
                format!("library/{rest}")
            } else {
                rest.to_string()
            };
            let local = if ns.prefix.is_empty() {
                remote.clone()
            } else {
                format!("{}/{remote}", ns.prefix)
            };
            // Both are a valid name with a valid prefix or `library/` in front, which is a valid name
            // unless it grew past the length limit: such a name is simply not cached.
            Some(Route {
                local: local.parse().ok()?,
                remote: remote.parse().ok()?,
                upstream: Arc::clone(&ns.upstream),
            })
        })
    }

    /// containerd's mirror requests name the upstream in `?ns=` and the repository without it: the local
    /// name of such a request, when a namespace has exactly that prefix.
    pub fn with_namespace(&self, ns: &str, name: &RepoName) -> Option<RepoName> {
        let ns = ns.trim_matches('/').to_ascii_lowercase();
        if ns.is_empty() || !self.namespaces.iter().any(|n| n.prefix == ns) {
            return None;
        }
        format!("{ns}/{name}").parse().ok()
    }

    /// Each namespace's prefix and upstream name, longest prefix first.
    pub fn names(&self) -> Vec<(String, String)> {
        self.namespaces
            .iter()
            .map(|ns| (ns.prefix.clone(), ns.upstream.name().to_string()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{ManifestHead, UpstreamBlob, UpstreamError, UpstreamManifest};
    use oci::{Digest, Reference};

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Upstream for Named {
        fn name(&self) -> &str {
            self.0
        }
        async fn manifest_head(
            &self,
            _: &RepoName,
            _: &Reference,
        ) -> Result<Option<ManifestHead>, UpstreamError> {
            Ok(None)
        }
        async fn manifest_get(
            &self,
            _: &RepoName,
            _: &Reference,
            _: usize,
        ) -> Result<Option<UpstreamManifest>, UpstreamError> {
            Ok(None)
        }
        async fn tags_list(
            &self,
            _: &RepoName,
            _: usize,
            _: Option<&str>,
        ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
            Ok(None)
        }
        async fn blob_get(
            &self,
            _: &RepoName,
            _: &Digest,
        ) -> Result<Option<UpstreamBlob>, UpstreamError> {
            Ok(None)
        }
    }

    fn ns(prefix: &str, upstream: &'static str, official_library: bool) -> Namespace {
        Namespace {
            prefix: prefix.into(),
            upstream: Arc::new(Named(upstream)),
            official_library,
        }
    }

    fn name(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn names_map_to_their_namespace() {
        let routes = Routes::new(vec![
            ns("docker.io", "hub", true),
            ns("ghcr.io/", "ghcr", false),
            ns("ghcr.io/special", "special", false),
        ]);
        // (requested, Some((local, remote, upstream))) or None for a local repository.
        type Want = Option<(&'static str, &'static str, &'static str)>;
        let cases: &[(&str, Want)] = &[
            (
                "docker.io/alpine",
                Some(("docker.io/library/alpine", "library/alpine", "hub")),
            ),
            (
                "docker.io/library/alpine",
                Some(("docker.io/library/alpine", "library/alpine", "hub")),
            ),
            (
                "docker.io/bitnami/redis",
                Some(("docker.io/bitnami/redis", "bitnami/redis", "hub")),
            ),
            (
                "ghcr.io/org/app",
                Some(("ghcr.io/org/app", "org/app", "ghcr")),
            ),
            ("ghcr.io/app", Some(("ghcr.io/app", "app", "ghcr"))),
            (
                "ghcr.io/special/x",
                Some(("ghcr.io/special/x", "x", "special")),
            ),
            ("ghcr.io", None),
            ("docker.iox/alpine", None),
            ("myteam/app", None),
            ("alpine", None),
        ];
        for (requested, want) in cases {
            let got = routes.route(&name(requested)).map(|r| {
                (
                    r.local.to_string(),
                    r.remote.to_string(),
                    r.upstream.name().to_string(),
                )
            });
            let want = want.map(|(l, r, u)| (l.to_string(), r.to_string(), u.to_string()));
            assert_eq!(got, want, "{requested}");
        }
    }

    #[test]
    fn the_empty_prefix_mirrors_every_other_name() {
        let routes = Routes::new(vec![ns("", "hub", true), ns("ghcr.io", "ghcr", false)]);
        let r = routes.route(&name("alpine")).unwrap();
        assert_eq!(
            (r.local.as_str(), r.remote.as_str()),
            ("library/alpine", "library/alpine")
        );
        let r = routes.route(&name("library/alpine")).unwrap();
        assert_eq!(r.local.as_str(), "library/alpine");
        let r = routes.route(&name("ghcr.io/org/app")).unwrap();
        assert_eq!((r.remote.as_str(), r.upstream.name()), ("org/app", "ghcr"));
        let plain = Routes::new(vec![ns("", "other", false)]);
        assert_eq!(
            plain.route(&name("alpine")).unwrap().remote.as_str(),
            "alpine"
        );
    }

    #[test]
    fn containerd_namespaces_pick_a_prefix() {
        let routes = Routes::new(vec![ns("docker.io", "hub", true)]);
        let got = routes.with_namespace("docker.io", &name("library/alpine"));
        assert_eq!(got.unwrap().as_str(), "docker.io/library/alpine");
        assert!(routes.with_namespace("quay.io", &name("x")).is_none());
        assert!(routes.with_namespace("", &name("x")).is_none());
    }
}
