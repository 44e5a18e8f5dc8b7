//! The upstream of the pull-through cache tests: a real registry over its own temporary stores behind
//! the `Upstream` trait, counting every call and injecting the faults the cache must survive (down,
//! rate limited, wrong bytes, a body that breaks off, a body held back until the test releases it).

#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_registry as registry;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use oci::{Digest, Reference, RepoName};
use registry::proxy::{
    CacheEvent, CacheObserver, Eviction, ManifestHead, Namespace, ProxySettings, Upstream,
    UpstreamBlob, UpstreamError, UpstreamManifest,
};
use registry::{ByteStream, Registry};
use tokio::sync::Semaphore;

use crate::common::Env;

/// What the upstream does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every call fails as unreachable.
    Down,
    /// Every call answers 429.
    RateLimited,
    /// Blob bodies carry one flipped byte.
    WrongBytes,
    /// Blob bodies break off after this many bytes.
    DropAfter(usize),
    /// Blob bodies panic half way (a bug in the transfer: the fetch task dies).
    Panic,
}

/// Calls made, by kind.
#[derive(Default)]
pub struct Calls {
    pub head: AtomicUsize,
    pub get: AtomicUsize,
    pub blob: AtomicUsize,
}

impl Calls {
    pub fn snapshot(&self) -> (usize, usize, usize) {
        (
            self.head.load(Ordering::SeqCst),
            self.get.load(Ordering::SeqCst),
            self.blob.load(Ordering::SeqCst),
        )
    }
}

pub struct FakeUpstream {
    pub env: Env,
    pub calls: Calls,
    fault: Mutex<Fault>,
    /// When set, blob bodies (of the one repository named, or of all) send their first half, then wait
    /// for a permit before the rest.
    gate: Mutex<Option<(Option<RepoName>, Arc<Semaphore>)>>,
    /// Blob body bytes handed to the cache so far.
    pub sent: Arc<std::sync::atomic::AtomicU64>,
    /// Answer the catalog as a registry without one (Docker Hub's).
    pub no_catalog: std::sync::atomic::AtomicBool,
}

impl FakeUpstream {
    pub fn new() -> Arc<FakeUpstream> {
        Arc::new(FakeUpstream {
            env: Env::new(),
            calls: Calls::default(),
            fault: Mutex::new(Fault::None),
            gate: Mutex::new(None),
            sent: Default::default(),
            no_catalog: Default::default(),
        })
    }

    pub fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }

    /// Holds every blob body after its first half until the returned semaphore gets a permit.
    pub fn hold_blobs(&self) -> Arc<Semaphore> {
        self.hold(None)
    }

    /// Holds the blob bodies of `repo` only, as [`FakeUpstream::hold_blobs`] holds all.
    pub fn hold_blobs_of(&self, repo: &RepoName) -> Arc<Semaphore> {
        self.hold(Some(repo.clone()))
    }

    fn hold(&self, only: Option<RepoName>) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.gate.lock().unwrap() = Some((only, gate.clone()));
        gate
    }

    pub fn reg(&self) -> &Registry {
        &self.env.reg
    }

    fn fail_call(&self) -> Result<(), UpstreamError> {
        match self.fault() {
            Fault::Down => Err(UpstreamError::Unavailable("connection refused".into())),
            Fault::RateLimited => Err(UpstreamError::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Upstream for FakeUpstream {
    fn name(&self) -> &str {
        "fake"
    }

    async fn tags_list(
        &self,
        repo: &RepoName,
        n: usize,
        last: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
        self.fail_call()?;
        let page = page(n, last);
        match self.reg().list_tags(repo, &page).await {
            Ok(listed) => Ok(Some(listed)),
            Err(registry::Error::NameUnknown(_)) => Ok(None),
            Err(e) => Err(UpstreamError::Unavailable(e.to_string())),
        }
    }

    async fn manifest_head(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<ManifestHead>, UpstreamError> {
        self.calls.head.fetch_add(1, Ordering::SeqCst);
        self.fail_call()?;
        match self.reg().get_manifest(repo, reference).await {
            Ok(m) => Ok(Some(ManifestHead {
                digest: m.digest,
                media_type: m.media_type,
                size: m.payload.len() as u64,
            })),
            Err(registry::Error::ManifestUnknown(_)) => Ok(None),
            Err(e) => Err(UpstreamError::Unavailable(e.to_string())),
        }
    }

    async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
        _max_bytes: usize,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        self.calls.get.fetch_add(1, Ordering::SeqCst);
        self.fail_call()?;
        match self.reg().get_manifest(repo, reference).await {
            Ok(m) => Ok(Some(UpstreamManifest {
                digest: m.digest,
                media_type: m.media_type,
                payload: m.payload,
            })),
            Err(registry::Error::ManifestUnknown(_)) => Ok(None),
            Err(e) => Err(UpstreamError::Unavailable(e.to_string())),
        }
    }

    async fn blob_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, UpstreamError> {
        self.calls.blob.fetch_add(1, Ordering::SeqCst);
        self.fail_call()?;
        let content = match self.reg().get_blob(repo, digest, None).await {
            Ok(c) => c,
            Err(registry::Error::BlobUnknown(_)) => return Ok(None),
            Err(e) => return Err(UpstreamError::Unavailable(e.to_string())),
        };
        let size = content.size;
        let bytes = crate::common::read_all(content.body).await;
        let mut bytes = bytes;
        let fault = self.fault();
        if fault == Fault::WrongBytes
            && let Some(b) = bytes.last_mut()
        {
            *b ^= 0xff;
        }
        let gate = match &*self.gate.lock().unwrap() {
            Some((only, gate)) if only.as_ref().is_none_or(|r| r == repo) => Some(gate.clone()),
            _ => None,
        };
        Ok(Some(UpstreamBlob {
            size: Some(size),
            body: delivered(Bytes::from(bytes), fault, gate, self.sent.clone()),
        }))
    }

    async fn catalog(
        &self,
        n: usize,
        last: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
        self.fail_call()?;
        let page = page(n, last);
        if self.no_catalog.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.reg()
            .catalog(&page)
            .await
            .map(Some)
            .map_err(|e| UpstreamError::Unavailable(e.to_string()))
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<Digest>, UpstreamError> {
        self.fail_call()?;
        match self.reg().referrers(repo, digest, None).await {
            Ok(found) => Ok(found.manifests.into_iter().map(|r| r.digest).collect()),
            Err(registry::Error::NameUnknown(_)) => Ok(Vec::new()),
            Err(e) => Err(UpstreamError::Unavailable(e.to_string())),
        }
    }
}

/// The page of `n` after `last`, as a registry is asked for it.
fn page(n: usize, last: Option<&str>) -> registry::Page {
    registry::Page {
        n: Some(n),
        last: last.map(str::to_string),
    }
}

/// The body of a blob as the fake delivers it: 64 KiB pieces, the fault applied, held at half way when a
/// gate is set.
fn delivered(
    data: Bytes,
    fault: Fault,
    gate: Option<Arc<Semaphore>>,
    sent: Arc<std::sync::atomic::AtomicU64>,
) -> ByteStream {
    let half = data.len() / 2;
    let cut = match fault {
        Fault::DropAfter(n) => Some(n.min(data.len())),
        _ => None,
    };
    let pieces: Vec<(usize, Bytes)> = (0..data.len())
        .step_by(64 * 1024)
        .map(|at| (at, data.slice(at..(at + 64 * 1024).min(data.len()))))
        .collect();
    let s = stream::iter(pieces).then(move |(at, piece)| {
        let (gate, sent) = (gate.clone(), sent.clone());
        async move {
            if let Some(cut) = cut
                && at + piece.len() > cut
            {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "upstream went away",
                ));
            }
            if fault == Fault::Panic && at + piece.len() > half {
                panic!("the body's producer broke");
            }
            if let Some(gate) = gate
                && at <= half
                && half < at + piece.len()
            {
                let permit = gate.acquire().await.map_err(io::Error::other)?;
                permit.forget();
            }
            sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
            Ok(piece)
        }
    });
    // Stop at the first error, as a network body does.
    let mut failed = false;
    Box::pin(s.take_while(move |item| {
        let go = !failed;
        failed |= item.is_err();
        futures_util::future::ready(go)
    }))
}

/// Counts the cache's events.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<CacheEvent>>);

impl CacheObserver for Events {
    fn event(&self, event: CacheEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    pub fn count(&self, f: impl Fn(&CacheEvent) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| f(e)).count()
    }
}

/// A cache (over its own temporary stores) mirroring `upstream` under `prefix`, with Docker Hub's
/// `library/` rule when `official_library`.
pub fn cache(
    upstream: &Arc<FakeUpstream>,
    prefix: &str,
    official_library: bool,
    revalidate_after: Duration,
) -> (Env, Arc<Events>) {
    cache_with(upstream, prefix, official_library, revalidate_after, None)
}

/// [`cache`] with eviction settings (which make it record pulls).
pub fn cache_with(
    upstream: &Arc<FakeUpstream>,
    prefix: &str,
    official_library: bool,
    revalidate_after: Duration,
    eviction: Option<Eviction>,
) -> (Env, Arc<Events>) {
    let mut env = Env::new();
    let events = Arc::new(Events::default());
    let config = ProxySettings {
        namespaces: vec![Namespace {
            prefix: prefix.into(),
            upstream: upstream.clone(),
            official_library,
        }],
        revalidate_after,
        eviction,
    };
    env.reg = env
        .reg
        .clone()
        .with_proxy(config, Some(events.clone() as Arc<dyn CacheObserver>));
    (env, events)
}

/// A cache mirroring `upstream` for every name, over `env`'s metadata and `disk` (usually a
/// `common::faulty::FaultyBlobs` over `env.blobs`, to hold and count what the fetch does).
pub fn cache_over(
    upstream: &Arc<FakeUpstream>,
    env: &Env,
    disk: Arc<dyn blobs::BlobStore>,
) -> Registry {
    Registry::new(disk, env.meta.clone(), registry::Settings::default()).with_proxy(
        ProxySettings {
            namespaces: vec![Namespace {
                prefix: String::new(),
                upstream: upstream.clone(),
                official_library: false,
            }],
            ..Default::default()
        },
        None,
    )
}

/// The size `digest` is linked with in `name`, once it is: a fetch lets its readers finish as soon as
/// the bytes are verified, and commits, records and links the blob in its own time just after.
pub async fn linked(env: &Env, name: &RepoName, digest: &Digest) -> u64 {
    use metadata::Catalog;
    let wait = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(size) = env.meta.linked_blob(name, digest).await.unwrap() {
                return size;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    wait.await.expect("the fetch never linked the blob")
}
