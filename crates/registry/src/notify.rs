//! registry:2's notifications (`notifications` in its configuration), delivered from a durable outbox.
//!
//! registry:2 queues each endpoint's events in memory: a restart or a crash loses what was not sent.
//! Here an event about a change (a push, a mount, a delete) is written to the metadata store's
//! [`Outbox`](metadata::Outbox) in the same transaction as the change ([`Registry::noting`], over
//! `metadata::outbox::noting`): committed together or not at all, so every change a client saw succeed
//! has its event, whatever happens next. Pulls change nothing and have no transaction to join: their
//! events are kept in memory and written in batches (`pulls`), so a crash can lose up to a second of
//! pull events, never a change's.
//!
//! Delivery (`deliver`) is a background job on one replica at a time (the job lock `notifications`):
//! per endpoint it reads the queue in order, posts an envelope of up to [`BATCH`] events, removes them
//! once the endpoint answered 2xx, and retries the same batch otherwise (registry:2's `threshold` and
//! `backoff`): at least once, in order per endpoint (so per repository), never on a request's path.
//!
//! Who asked (request id, client address, user, user agent) is the HTTP layer's knowledge; it hands it
//! over as an [`Origin`] with [`within`], a task-local scope around the request's handling, read here
//! when an event is built. The registry's operations keep their signatures, and knows nothing of HTTP
//! but these few strings.

mod deliver;
pub mod event;
mod pulls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metadata::NewEvent;
use oci::{Digest, RepoName};

pub use deliver::{DeliveryObserver, NOTIFICATIONS_JOB, Sink};
use event::{Action, ActorRecord, Event, RequestRecord, SourceRecord, Target};

use crate::Registry;

/// Most events posted in one envelope.
pub const BATCH: usize = 32;

/// The media type registry:2 gives a blob in its events (it does not know a layer's).
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// What `notifications` configures, checked.
#[derive(Clone, Debug, Default)]
pub struct Notifications {
    /// The endpoints that receive events (disabled ones are left out by the configuration).
    pub endpoints: Vec<Endpoint>,
    /// `events.includereferences`: a manifest's events list its references.
    pub include_references: bool,
    /// This instance, as events name it (`instanceID`: a random id per start when empty, as
    /// registry:2's).
    pub source: SourceRecord,
}

/// One endpoint (registry:2's `notifications.endpoints[]`).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    /// Added to every request, in order (a header may repeat).
    pub headers: Vec<(String, String)>,
    /// How long a post may take before it counts as failed.
    pub timeout: Duration,
    /// Failures in a row before the worker waits `backoff` between tries (before, it retries at once).
    pub threshold: u32,
    pub backoff: Duration,
    /// Events whose target has one of these media types are not sent here.
    pub ignored_media_types: Vec<String>,
    /// Events with one of these actions (`push`, `pull`, `mount`, `delete`) are not sent here.
    pub ignored_actions: Vec<String>,
    /// registry:2's envelope, or CloudEvents (berth's `format`).
    pub format: event::Format,
}

impl Endpoint {
    fn wants(&self, event: &Event) -> bool {
        !self.ignored_actions.iter().any(|a| a == event.action)
            && !self.ignored_media_types.contains(&event.target.media_type)
    }
}

/// Who asked: what the HTTP layer knows of the request an event comes from.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub request: RequestRecord,
    /// The authenticated user's name, empty when anonymous.
    pub actor: String,
    /// Where the registry's `/v2/` is for this client (`scheme://host[/prefix]`), for the events' URLs.
    pub base_url: String,
}

tokio::task_local! {
    static ORIGIN: Arc<Origin>;
}

/// Runs `handling` (a request's) with `origin` as the origin of the events it causes.
pub async fn within<F: Future>(origin: Origin, handling: F) -> F::Output {
    ORIGIN.scope(Arc::new(origin), handling).await
}

/// Runs `handling` with the current origin's actor set to `user`: for a caller the HTTP layer only
/// authenticates inside the handler (the web interface's), after the origin was taken. Without a
/// current origin (notifications off), `handling` runs as it is.
pub async fn as_user<F: Future>(user: Option<&str>, handling: F) -> F::Output {
    match ORIGIN.try_with(Arc::clone) {
        Ok(origin) => {
            let origin = Origin {
                actor: user.unwrap_or_default().to_string(),
                ..Origin::clone(&origin)
            };
            within(origin, handling).await
        }
        Err(_) => handling.await,
    }
}

/// The notifications of one registry: the settings, the pull events not written yet, and a bell that
/// wakes this process's delivery worker after a write.
pub(crate) struct Notifier {
    settings: Notifications,
    pulls: pulls::PullEvents,
    written: tokio::sync::Notify,
}

impl Registry {
    /// The registry with events sent to `settings`' endpoints; without endpoints, nothing changes.
    pub fn with_notifications(mut self, mut settings: Notifications) -> Registry {
        if settings.source.instance_id.is_empty() {
            settings.source.instance_id = uuid::Uuid::new_v4().to_string();
        }
        self.notifier = (!settings.endpoints.is_empty()).then(|| {
            Arc::new(Notifier {
                settings,
                pulls: Default::default(),
                written: Default::default(),
            })
        });
        self
    }

    /// Whether any endpoint receives events (the HTTP layer builds an [`Origin`] only then).
    pub fn notifies(&self) -> bool {
        self.notifier.is_some()
    }

    /// The events of `action` on `target` for every endpoint that wants them (none when notifications
    /// are off).
    fn events(&self, action: Action, target: impl FnOnce(&str) -> Target) -> Vec<NewEvent> {
        let Some(n) = &self.notifier else {
            return Vec::new();
        };
        let origin = ORIGIN.try_with(Arc::clone).unwrap_or_default();
        let event = Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: event::rfc3339(SystemTime::now()),
            action: action.as_str(),
            target: target(&origin.base_url),
            request: origin.request.clone(),
            actor: ActorRecord {
                name: origin.actor.clone(),
            },
            source: n.settings.source.clone(),
        };
        let wanted: Vec<&Endpoint> = n
            .settings
            .endpoints
            .iter()
            .filter(|e| e.wants(&event))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let payload = match serde_json::to_string(&event) {
            Ok(payload) => payload,
            Err(e) => {
                // Plain strings and numbers: cannot fail; if it did, the change must not.
                tracing::error!(error = %e, "an event could not be serialised");
                return Vec::new();
            }
        };
        wanted
            .into_iter()
            .map(|e| NewEvent {
                endpoint: e.name.clone(),
                repo: event.target.repository.clone(),
                payload: payload.clone(),
            })
            .collect()
    }

    /// Runs `write` (one catalog write) with `events` queued in its transaction, and rings the
    /// delivery worker's bell after it.
    pub(crate) async fn noting<T>(
        &self,
        events: Vec<NewEvent>,
        write: impl Future<Output = T>,
    ) -> T {
        if events.is_empty() {
            return write.await;
        }
        let out = metadata::outbox::noting(events, write).await;
        if let Some(n) = &self.notifier {
            n.written.notify_waiters();
        }
        out
    }

    /// A manifest's push or pull event.
    pub(crate) fn manifest_events(
        &self,
        action: Action,
        repo: &RepoName,
        manifest: &ManifestFacts<'_>,
    ) -> Vec<NewEvent> {
        let include_references = self
            .notifier
            .as_ref()
            .is_some_and(|n| n.settings.include_references);
        self.events(action, |base| Target {
            media_type: manifest.media_type.to_string(),
            size: manifest.size,
            digest: manifest.digest.to_string(),
            length: manifest.size,
            repository: repo.to_string(),
            url: format!("{base}/v2/{repo}/manifests/{}", manifest.digest),
            tag: manifest.tag.unwrap_or_default().to_string(),
            references: if include_references {
                manifest.references()
            } else {
                Vec::new()
            },
            ..Target::default()
        })
    }

    /// A blob's push, pull or mount event (`from`: a mount's source, when named).
    pub(crate) fn blob_events(
        &self,
        action: Action,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        from: Option<&RepoName>,
    ) -> Vec<NewEvent> {
        self.events(action, |base| Target {
            media_type: BLOB_MEDIA_TYPE.to_string(),
            size,
            digest: digest.to_string(),
            length: size,
            repository: repo.to_string(),
            from_repository: from.map(ToString::to_string).unwrap_or_default(),
            url: format!("{base}/v2/{repo}/blobs/{digest}"),
            ..Target::default()
        })
    }

    /// A delete's event: of a manifest or blob by digest, or of a tag.
    pub(crate) fn delete_events(
        &self,
        repo: &RepoName,
        digest: Option<&Digest>,
        tag: Option<&oci::Tag>,
    ) -> Vec<NewEvent> {
        self.events(Action::Delete, |_| Target {
            repository: repo.to_string(),
            digest: digest.map(ToString::to_string).unwrap_or_default(),
            tag: tag.map(ToString::to_string).unwrap_or_default(),
            ..Target::default()
        })
    }
}

/// What a manifest event says of the manifest.
pub(crate) struct ManifestFacts<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub size: u64,
    pub tag: Option<&'a str>,
    /// The payload, parsed for `includereferences` only when asked.
    pub payload: &'a [u8],
}

impl ManifestFacts<'_> {
    /// The manifest's config, layers and children, as registry:2's `References()`.
    fn references(&self) -> Vec<event::Reference> {
        let Ok(parsed) = oci::manifest::Manifest::parse(self.payload, Some(self.media_type)) else {
            return Vec::new();
        };
        parsed
            .config
            .iter()
            .chain(&parsed.layers)
            .chain(&parsed.manifests)
            .map(|d| event::Reference {
                media_type: d.media_type.clone(),
                size: d.size,
                digest: d.digest.to_string(),
            })
            .collect()
    }
}
