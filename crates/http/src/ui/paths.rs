//! The interface's URLs, parsed and built in one place.
//!
//! ```text
//! <prefix>/ui/                              the repositories (?q= search, ?last= the page after)
//! <prefix>/ui/repo/<name>                   a repository's tags (?last= the page after)
//! <prefix>/ui/image/<name>@<digest>         a manifest or index
//! <prefix>/ui/delete/<name>:<tag>           asks to delete a tag (GET), deletes it (POST)
//! <prefix>/ui/delete/<name>@<digest>        asks to delete a manifest and its tags, deletes them
//! <prefix>/ui/login                         asks the browser for credentials (htpasswd), or shows
//!                                           the sign-in form and takes its POST (token)
//! <prefix>/ui/logout                        ends a session of the sign-in form
//! <prefix>/ui/registry                      the registry as a whole
//! <prefix>/ui/style.css                     the stylesheet
//! ```
//!
//! Repository names contain slashes but never `@` or `:`, and tags neither, so an image's digest is
//! what follows the last `@`, and a tag what follows the last `:`.
//! Paths are read raw: a percent escape is not a character any name may hold, so such a path names
//! nothing, never another repository.

use oci::{Digest, Reference, RepoName};

/// A page below `/ui/` other than the list.
#[derive(Debug, PartialEq, Eq)]
pub enum UiPath {
    Repo(RepoName),
    Image(RepoName, Digest),
    Delete(RepoName, Reference),
    Login,
    Logout,
    Registry,
}

impl UiPath {
    /// `rest` is the path after `/ui/`.
    pub fn parse(rest: &str) -> Option<UiPath> {
        match rest {
            "login" => return Some(UiPath::Login),
            "logout" => return Some(UiPath::Logout),
            "registry" => return Some(UiPath::Registry),
            _ => {}
        }
        if let Some(name) = rest.strip_prefix("repo/") {
            return name.parse().ok().map(UiPath::Repo);
        }
        if let Some(target) = rest.strip_prefix("delete/") {
            let (name, reference) = match target.rsplit_once('@') {
                Some((name, digest)) => (name, Reference::Digest(digest.parse().ok()?)),
                None => {
                    let (name, tag) = target.rsplit_once(':')?;
                    (name, Reference::Tag(tag.parse().ok()?))
                }
            };
            return Some(UiPath::Delete(name.parse().ok()?, reference));
        }
        let (name, digest) = rest.strip_prefix("image/")?.rsplit_once('@')?;
        Some(UiPath::Image(name.parse().ok()?, digest.parse().ok()?))
    }
}

/// An endpoint of `/api/v1/` (`ui/api.rs`).
#[derive(Debug, PartialEq, Eq)]
pub enum ApiPath {
    Repositories,
    Tags(RepoName),
    Manifest(RepoName, Digest),
    Registry,
}

impl ApiPath {
    /// `rest` is the path after `/api/v1/`, read raw like the pages'.
    pub fn parse(rest: &str) -> Option<ApiPath> {
        match rest {
            "repositories" => return Some(ApiPath::Repositories),
            "registry" => return Some(ApiPath::Registry),
            _ => {}
        }
        let rest = rest.strip_prefix("repositories/")?;
        if let Some(name) = rest.strip_suffix("/tags") {
            return name.parse().ok().map(ApiPath::Tags);
        }
        let (name, digest) = rest.rsplit_once("/manifests/")?;
        Some(ApiPath::Manifest(name.parse().ok()?, digest.parse().ok()?))
    }
}

/// Builds the interface's URLs under the prefix (`""` or `/a/b`).
#[derive(Clone, Debug)]
pub struct Links {
    prefix: String,
    /// Whether people sign in with the form (`ui/signin.rs`), so the pages offer to sign out.
    sessions: bool,
}

impl Links {
    pub fn new(prefix: &str) -> Links {
        Links {
            prefix: prefix.to_string(),
            sessions: false,
        }
    }

    /// These links, with the sign-out link the form's sessions need.
    pub fn with_sessions(self) -> Links {
        Links {
            sessions: true,
            ..self
        }
    }

    /// `/ui/logout`, where sessions exist.
    pub fn logout(&self) -> Option<String> {
        self.sessions.then(|| format!("{}/ui/logout", self.prefix))
    }

    pub fn home(&self) -> String {
        format!("{}/ui/", self.prefix)
    }

    pub fn style(&self) -> String {
        format!("{}/ui/style.css", self.prefix)
    }

    pub fn login(&self) -> String {
        format!("{}/ui/login", self.prefix)
    }

    pub fn registry(&self) -> String {
        format!("{}/ui/registry", self.prefix)
    }

    /// `/api/v1/repositories`, searching `q`, after `last`.
    pub fn api_repositories(&self, q: &str, last: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            query.append_pair("q", q);
        }
        if let Some(last) = last {
            query.append_pair("last", last);
        }
        with_query(
            format!("{}/api/v1/repositories", self.prefix),
            query.finish(),
        )
    }

    /// `/api/v1/repositories/<name>/tags`, after `last`.
    pub fn api_tags(&self, name: &RepoName, last: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(last) = last {
            query.append_pair("last", last);
        }
        with_query(
            format!("{}/api/v1/repositories/{}/tags", self.prefix, name.as_str()),
            query.finish(),
        )
    }

    /// The list, searching `q`, after `last`.
    pub fn list(&self, q: &str, last: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            query.append_pair("q", q);
        }
        if let Some(last) = last {
            query.append_pair("last", last);
        }
        with_query(self.home(), query.finish())
    }

    /// A repository's page; its tags after `last`.
    pub fn repo(&self, name: &RepoName, last: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(last) = last {
            query.append_pair("last", last);
        }
        with_query(
            format!("{}/ui/repo/{}", self.prefix, name.as_str()),
            query.finish(),
        )
    }

    /// A repository's page after `target` was deleted from it, saying so.
    pub fn repo_after_delete(&self, name: &RepoName, target: &Reference) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("deleted", &target.to_string());
        with_query(self.repo(name, None), query.finish())
    }

    pub fn image(&self, name: &RepoName, digest: &Digest) -> String {
        format!("{}/ui/image/{}@{}", self.prefix, name.as_str(), digest)
    }

    /// The confirmation page of deleting `reference` (a tag, or a manifest by digest), and its form's
    /// target.
    pub fn delete(&self, name: &RepoName, reference: &Reference) -> String {
        let sep = match reference {
            Reference::Tag(_) => ':',
            Reference::Digest(_) => '@',
        };
        format!(
            "{}/ui/delete/{}{sep}{reference}",
            self.prefix,
            name.as_str()
        )
    }
}

fn with_query(path: String, query: String) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The value of `key` in a query string, decoded.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn paths_parse_from_the_right_and_raw() {
        let name = |s: &str| s.parse::<RepoName>().unwrap();
        assert_eq!(
            UiPath::parse("repo/a/b/c"),
            Some(UiPath::Repo(name("a/b/c")))
        );
        assert_eq!(
            UiPath::parse(&format!("image/a/b@{D}")),
            Some(UiPath::Image(name("a/b"), D.parse().unwrap()))
        );
        assert_eq!(UiPath::parse("login"), Some(UiPath::Login));
        assert_eq!(UiPath::parse("logout"), Some(UiPath::Logout));
        assert_eq!(UiPath::parse("registry"), Some(UiPath::Registry));
        assert_eq!(
            UiPath::parse("delete/a/b:v1.0"),
            Some(UiPath::Delete(
                name("a/b"),
                Reference::Tag("v1.0".parse().unwrap())
            ))
        );
        assert_eq!(
            UiPath::parse(&format!("delete/a/b@{D}")),
            Some(UiPath::Delete(
                name("a/b"),
                Reference::Digest(D.parse().unwrap())
            ))
        );
        for bad in [
            "",
            "repo/",
            "repo/A",
            "repo/a%2Fb",
            "repo/a/../b",
            "image/a",
            "image/a@sha256:00",
            "image/@sha256:e3b0",
            "other/a",
            "delete/a",
            "delete/a:",
            "delete/:v1",
            "delete/a:b:c",
            "delete/a@sha256:00",
            "delete/a%3Av1",
        ] {
            assert_eq!(UiPath::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn links_carry_the_prefix_and_encode_the_query() {
        let links = Links::new("/mirror");
        assert_eq!(links.home(), "/mirror/ui/");
        assert_eq!(
            links.list("a&b <c>", Some("x/y")),
            "/mirror/ui/?q=a%26b+%3Cc%3E&last=x%2Fy"
        );
        let name: RepoName = "a/b".parse().unwrap();
        assert_eq!(links.repo(&name, None), "/mirror/ui/repo/a/b");
        assert_eq!(
            links.image(&name, &D.parse().unwrap()),
            format!("/mirror/ui/image/a/b@{D}")
        );
        assert_eq!(
            links.delete(&name, &Reference::Tag("v1".parse().unwrap())),
            "/mirror/ui/delete/a/b:v1"
        );
        assert_eq!(
            links.delete(&name, &Reference::Digest(D.parse().unwrap())),
            format!("/mirror/ui/delete/a/b@{D}")
        );
        for r in [
            Reference::Tag("v1".parse().unwrap()),
            Reference::Digest(D.parse().unwrap()),
        ] {
            let link = links.delete(&name, &r);
            let rest = link.strip_prefix("/mirror/ui/").unwrap();
            assert_eq!(UiPath::parse(rest), Some(UiPath::Delete(name.clone(), r)));
        }
        assert_eq!(Links::new("").home(), "/ui/");
        assert_eq!(
            query_value("q=a%26b+c&last=z", "q").as_deref(),
            Some("a&b c")
        );
    }
}
