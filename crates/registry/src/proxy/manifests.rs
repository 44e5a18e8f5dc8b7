//! Manifests of cached repositories: served from the metadata store, fetched from the upstream on a
//! miss, tags revalidated with a HEAD at most once per interval.
//!
//! - By digest: a cached copy is served forever (its bytes cannot change).
//! - By tag, within the interval since the upstream last confirmed it: the cached copy, no request.
//! - By tag, after it: a HEAD. The same digest refreshes the interval; another one is fetched (by that
//!   digest, so the tag cannot move again in between) and stored under the tag. A 404 removes the tag.
//! - Whenever the upstream fails and a cached copy exists, the copy is served marked stale (the HTTP
//!   layer adds a `Warning`); without one, the failure is mapped to a spec error.
//!
//! A fetched manifest is stored without the reference check of a push: its blobs are fetched when a
//! client asks for them (most clients skip the layers they already have), not up front.

use metadata::{NewManifest, ProxyEntryKind, StoredManifest};
use oci::manifest::Manifest;
use oci::{Digest, Reference, Tag};

use super::{
    CacheEvent, CacheKind, Route, UpstreamCall, UpstreamError, UpstreamManifest, UpstreamOutcome,
    client_error, outcome,
};
use crate::{Error, ManifestContent, Registry, Result};

impl Registry {
    /// GET/HEAD of a manifest in a cached repository.
    pub(crate) async fn cached_manifest(
        &self,
        route: &Route,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        match reference {
            Reference::Digest(digest) => {
                if let Some(m) = self.meta.catalog.manifest(&route.local, digest).await? {
                    return Ok(self.hit(route, m));
                }
                let m = self.fetch_manifest(route, reference, None).await?;
                self.store_manifest(route, m, None).await
            }
            Reference::Tag(tag) => self.cached_tag(route, tag).await,
        }
    }

    async fn cached_tag(&self, route: &Route, tag: &Tag) -> Result<ManifestContent> {
        let fresh = match &self.proxy {
            Some(p) => &p.fresh,
            None => return Err(Error::internal("cached_tag without a proxy")),
        };
        let Some(cached) = self.meta.catalog.tagged_manifest(&route.local, tag).await? else {
            let m = self
                .fetch_manifest(route, &Reference::Tag(tag.clone()), None)
                .await?;
            let served = self.store_manifest(route, m, Some(tag)).await?;
            fresh.confirm(&route.local, tag);
            return Ok(served);
        };
        if fresh.is_fresh(&route.local, tag) {
            return Ok(self.hit(route, cached));
        }
        let reference = Reference::Tag(tag.clone());
        let head = route
            .upstream
            .manifest_head(&route.remote, &reference)
            .await;
        self.observe(CacheEvent::Upstream(
            UpstreamCall::ManifestHead,
            match &head {
                Ok(Some(_)) => UpstreamOutcome::Ok,
                Ok(None) => UpstreamOutcome::NotFound,
                Err(e) => outcome(e),
            },
        ));
        match head {
            Ok(Some(h)) if h.digest == cached.digest => {
                fresh.confirm(&route.local, tag);
                Ok(self.hit(route, cached))
            }
            Ok(Some(h)) => {
                let by_digest = Reference::Digest(h.digest.clone());
                match self
                    .fetch_manifest(route, &by_digest, Some(&h.digest))
                    .await
                {
                    Ok(m) => {
                        let served = self.store_manifest(route, m, Some(tag)).await?;
                        fresh.confirm(&route.local, tag);
                        Ok(served)
                    }
                    Err(e) if stale_allowed(&e) => Ok(self.stale(cached, tag, &e)),
                    Err(e) => Err(e),
                }
            }
            Ok(None) => {
                // The upstream no longer has the tag: neither does the mirror.
                fresh.forget(&route.local, tag);
                self.meta.catalog.delete_tag(&route.local, tag).await?;
                Err(Error::ManifestUnknown(tag.to_string()))
            }
            Err(e) => {
                let e = client_error(&e);
                Ok(self.stale(cached, tag, &e))
            }
        }
    }

    /// GET of a manifest from the upstream, its digest checked (against `expect` too, when given).
    async fn fetch_manifest(
        &self,
        route: &Route,
        reference: &Reference,
        expect: Option<&Digest>,
    ) -> Result<UpstreamManifest> {
        let limit = self.settings.max_manifest_bytes;
        let got = route
            .upstream
            .manifest_get(&route.remote, reference, limit)
            .await;
        let m = match got {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.observe(CacheEvent::Upstream(
                    UpstreamCall::ManifestGet,
                    UpstreamOutcome::NotFound,
                ));
                return Err(Error::ManifestUnknown(reference.to_string()));
            }
            Err(e) => {
                tracing::warn!(upstream = route.upstream.name(), repo = %route.remote, %reference, error = %e, "upstream manifest fetch failed");
                self.observe(CacheEvent::Upstream(UpstreamCall::ManifestGet, outcome(&e)));
                return Err(client_error(&e));
            }
        };
        let actual = Digest::of(m.digest.algorithm(), &m.payload);
        let wanted = match reference {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => expect,
        };
        if actual != m.digest || wanted.is_some_and(|w| *w != actual) {
            tracing::warn!(upstream = route.upstream.name(), repo = %route.remote, %reference, %actual, "upstream manifest does not match its digest");
            self.observe(CacheEvent::Upstream(
                UpstreamCall::ManifestGet,
                UpstreamOutcome::Invalid,
            ));
            return Err(client_error(&UpstreamError::Protocol(String::new())));
        }
        self.observe(CacheEvent::Upstream(
            UpstreamCall::ManifestGet,
            UpstreamOutcome::Ok,
        ));
        self.observe(CacheEvent::Miss(CacheKind::Manifest));
        Ok(m)
    }

    /// Stores a fetched manifest (and moves `tag` to it) like a pushed one, minus the reference check,
    /// and returns it as it will be served from now on.
    async fn store_manifest(
        &self,
        route: &Route,
        m: UpstreamManifest,
        tag: Option<&Tag>,
    ) -> Result<ManifestContent> {
        let parsed = Manifest::parse(&m.payload, Some(&m.media_type)).map_err(|e| {
            Error::ManifestInvalid(format!("the upstream's manifest cannot be served: {e}"))
        })?;
        let manifest = NewManifest {
            digest: m.digest.clone(),
            media_type: parsed.media_type.clone(),
            payload: m.payload.clone(),
            artifact_type: parsed.artifact_type.clone(),
            subject: parsed.subject_digest().cloned(),
            annotations: parsed.annotations.clone(),
            // Fetched when asked for: nothing to check now.
            blobs: Vec::new(),
            children: Vec::new(),
            optional_children: Vec::new(),
            tag_immutable: false,
        };
        self.meta
            .catalog
            .put_manifest(&route.local, &manifest, tag)
            .await?;
        let size = manifest.payload.len() as u64;
        self.record_cached(
            &route.local,
            &manifest.digest,
            ProxyEntryKind::Manifest,
            size,
        )
        .await;
        Ok(ManifestContent {
            digest: manifest.digest,
            media_type: manifest.media_type,
            payload: manifest.payload,
            stale: false,
        })
    }

    fn hit(&self, route: &Route, m: StoredManifest) -> ManifestContent {
        self.observe(CacheEvent::Hit(CacheKind::Manifest));
        let size = m.payload.len() as u64;
        self.record_pull(&route.local, &m.digest, ProxyEntryKind::Manifest, size);
        ManifestContent {
            digest: m.digest,
            media_type: m.media_type,
            payload: m.payload,
            stale: false,
        }
    }

    fn stale(&self, m: StoredManifest, tag: &Tag, cause: &Error) -> ManifestContent {
        tracing::warn!(%tag, digest = %m.digest, %cause, "serving a cached manifest the upstream could not confirm");
        self.observe(CacheEvent::Stale(CacheKind::Manifest));
        ManifestContent {
            digest: m.digest,
            media_type: m.media_type,
            payload: m.payload,
            stale: true,
        }
    }
}

/// Whether a failed refresh may fall back on the cached copy: an upstream that is down, slow, limiting
/// or answering wrongly; not one that says the content is gone.
fn stale_allowed(e: &Error) -> bool {
    !matches!(e, Error::ManifestUnknown(_))
}
