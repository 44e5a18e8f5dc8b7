//! Which tags a replication copies beyond its glob patterns: zot's `semver` filter (tags that are
//! versions, optionally in a range) and its `regex` filter. Versions are read as image tags write them
//! (`v1.2`, `3.19`), then compared by the `semver` crate (Cargo's range syntax: `>=1.2, <2`, `^1.4`,
//! `~2.1`).

use semver::{Version, VersionReq};

/// zot's `semver` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionFilter {
    /// Every tag that is a version (`semver: true`), pre-releases included.
    Any,
    /// The versions in this range (`semver: ">=1.2, <2"`). As in Cargo, a pre-release is in a range only
    /// when the range names a pre-release of the same major.minor.patch.
    Range(VersionReq),
}

impl VersionFilter {
    /// `true`, `false` (no filter), or a range.
    pub fn parse(text: &str) -> Result<Option<VersionFilter>, String> {
        match text.trim() {
            "true" => Ok(Some(VersionFilter::Any)),
            "false" => Ok(None),
            range => VersionReq::parse(range)
                .map(|r| Some(VersionFilter::Range(r)))
                .map_err(|e| format!("true, false, or a version range such as \">=1.2, <2\": {e}")),
        }
    }

    /// Whether `tag` is a version this filter keeps.
    pub fn keeps(&self, tag: &str) -> bool {
        match (self, version_of(tag)) {
            (_, None) => false,
            (VersionFilter::Any, Some(_)) => true,
            (VersionFilter::Range(range), Some(v)) => range.matches(&v),
        }
    }

    /// As the configuration writes it.
    pub fn text(&self) -> String {
        match self {
            VersionFilter::Any => "true".to_string(),
            VersionFilter::Range(range) => range.to_string(),
        }
    }
}

/// `tag` as a version, read as image tags write them and as zot's filter (Masterminds' lenient parser)
/// reads them: an optional `v`, one to three numbers without leading zeros (the missing ones 0), then an
/// optional `-pre.release` and `+build` (`1.2.3`, `v1.2`, `3`, `3.19-rc.1`, `1.0.0+build.5`; not
/// `latest`, `1.2.3.4`, `01.2`). The rest of the grammar is the `semver` crate's.
pub fn version_of(tag: &str) -> Option<Version> {
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match tag.find(['-', '+']) {
        Some(i) => tag.split_at(i),
        None => (tag, ""),
    };
    let parts = core.split('.').count();
    if !(1..=3).contains(&parts) {
        return None;
    }
    let padding = ".0".repeat(3 - parts);
    Version::parse(&format!("{core}{padding}{rest}")).ok()
}

/// zot's `regex` filter: a tag is kept when the expression matches anywhere in it (anchor it with `^`
/// and `$` to match the whole tag).
#[derive(Clone, Debug)]
pub struct TagRegex(regex::Regex);

/// Compiled expressions this large are refused: a configuration's filter needs nothing near it.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl TagRegex {
    pub fn parse(text: &str) -> Result<TagRegex, String> {
        regex::RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(TagRegex)
            .map_err(|e| format!("not a regular expression berth can use: {e}"))
    }

    pub fn keeps(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Two filters are the same when they are written the same.
impl PartialEq for TagRegex {
    fn eq(&self, other: &TagRegex) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TagRegex {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_image_tags_write_them() {
        for yes in [
            "1.2.3",
            "v1.2.3",
            "1.2",
            "v3",
            "3.19",
            "0.0.1",
            "3.19-rc.1",
            "1.0.0-alpha-1",
            "1.0.0+build.5",
            "1.0.0-rc.1+build.5",
            "10.20.30",
        ] {
            assert!(version_of(yes).is_some(), "{yes}");
        }
        for no in [
            "latest",
            "v",
            "",
            "1.2.3.4",
            "01.2",
            "1.02",
            "1..2",
            "1.2.",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-rc..1",
            "nightly-2024",
            "vv1",
            "1.2.3_rc",
            "V1.2",
        ] {
            assert!(version_of(no).is_none(), "{no}");
        }
        assert_eq!(version_of("v3.19").unwrap(), Version::new(3, 19, 0));
    }

    #[test]
    fn ranges_keep_their_versions_and_pre_releases_only_when_named() {
        let range = VersionFilter::parse(">=1.2, <2").unwrap().unwrap();
        for (tag, kept) in [
            ("v1.2", true),
            ("1.9.9", true),
            ("1", false),
            ("2.0", false),
            ("1.5.0-rc.1", false),
            ("latest", false),
        ] {
            assert_eq!(range.keeps(tag), kept, "{tag}");
        }
        let any = VersionFilter::parse("true").unwrap().unwrap();
        assert!(any.keeps("1.5.0-rc.1") && any.keeps("v2") && !any.keeps("latest"));
        assert_eq!(VersionFilter::parse("false").unwrap(), None);
        assert!(VersionFilter::parse(">=one").is_err());
        assert_eq!(range.text(), ">=1.2, <2");
    }

    #[test]
    fn a_regex_matches_anywhere_unless_anchored() {
        let r = TagRegex::parse("^v[0-9]+\\.").unwrap();
        assert!(r.keeps("v1.2") && !r.keeps("1.2") && !r.keeps("xv1.2"));
        assert!(TagRegex::parse("alpine").unwrap().keeps("3.19-alpine"));
        // `\d` as zot's configurations write it.
        assert!(TagRegex::parse("^v\\d+$").unwrap().keeps("v12"));
        assert!(TagRegex::parse("(").is_err());
        assert_eq!(r, TagRegex::parse("^v[0-9]+\\.").unwrap());
    }
}
