//! berth's access policy (the `access:` section): which caller may pull, push or delete in which
//! repositories.
//!
//! The model:
//! - Without rules (no `access` section, or one without `rules`), every authenticated user may do
//!   everything and anonymous callers nothing: registry:2's behaviour with htpasswd.
//! - With rules, a caller may do exactly what some rule grants it, nothing else (deny by default). A rule
//!   names repository patterns, actions, and who it applies to: `users` (by name; `*` for every
//!   authenticated user), `groups` (from `access.groups`), and/or `anonymous: true` (callers without
//!   credentials, and therefore everyone).
//! - Rights add up: a caller's rights on a repository are the union of every rule that applies to it.
//!
//! Everything is checked at load: unknown actions, groups that are not defined, patterns that could never
//! match, a rule that applies to nobody. Errors name the key (`access.rules[2].actions[0]`).

use std::collections::{BTreeMap, HashSet};

use crate::settings::AccessSettings;
use crate::{Action, Error};

pub use oci::Pattern;

/// The loaded policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `None`: no rules, authenticated users may do everything.
    rules: Option<Vec<Rule>>,
    openbase: bool,
}

#[derive(Clone, Debug)]
struct Rule {
    patterns: Vec<Pattern>,
    actions: Vec<Action>,
    /// Named users, with the members of the rule's groups folded in.
    users: HashSet<String>,
    every_user: bool,
    anonymous: bool,
}

impl Rule {
    fn applies_to(&self, user: Option<&str>) -> bool {
        self.anonymous
            || match user {
                Some(u) => self.every_user || self.users.contains(u),
                None => false,
            }
    }

    fn covers(&self, repo: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(repo))
    }
}

impl Policy {
    /// The policy of an `access` section (`None`: the section is absent).
    pub fn load(access: Option<&AccessSettings>) -> Result<Policy, Error> {
        let Some(access) = access else {
            return Ok(Policy {
                rules: None,
                openbase: false,
            });
        };
        let groups = load_groups(&access.groups)?;
        let rules = if access.rules.is_empty() {
            None
        } else {
            let mut rules = Vec::with_capacity(access.rules.len());
            for (i, raw) in access.rules.iter().enumerate() {
                rules.push(load_rule(i, raw, &groups)?);
            }
            Some(rules)
        };
        Ok(Policy {
            rules,
            openbase: access.openbase,
        })
    }

    /// Whether `user` (`None`: anonymous) may do `action` on `repo`.
    pub fn allows(&self, user: Option<&str>, repo: &str, action: Action) -> bool {
        match &self.rules {
            None => user.is_some(),
            Some(rules) => rules
                .iter()
                .any(|r| r.applies_to(user) && r.actions.contains(&action) && r.covers(repo)),
        }
    }

    /// Whether `user` (`None`: anonymous) may pull every repository there is or will be: a rule that
    /// applies to them grants pull on `**`, or there are no rules and they are authenticated. Such a
    /// caller sees the registry's own figures (the web interface's registry page), which add up what
    /// every repository stores.
    pub fn pulls_everything(&self, user: Option<&str>) -> bool {
        match &self.rules {
            None => user.is_some(),
            Some(rules) => rules.iter().any(|r| {
                r.applies_to(user)
                    && r.actions.contains(&Action::Pull)
                    && r.patterns.iter().any(Pattern::matches_everything)
            }),
        }
    }

    /// Whether callers without credentials have any right at all (then they may list the catalog,
    /// filtered to what they may pull).
    pub fn anonymous_has_rights(&self) -> bool {
        self.rules
            .as_ref()
            .is_some_and(|rules| rules.iter().any(|r| r.anonymous))
    }

    /// `access.openbase`: `GET /v2/` answers 200 without credentials.
    pub fn openbase(&self) -> bool {
        self.openbase
    }
}

fn load_groups(
    raw: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, HashSet<String>>, Error> {
    let mut groups = BTreeMap::new();
    for (name, members) in raw {
        if name.is_empty() {
            return Err(Error::config(
                "access.groups",
                "a group name cannot be empty",
            ));
        }
        for (j, member) in members.iter().enumerate() {
            check_user(&format!("access.groups.{name}[{j}]"), member)?;
        }
        groups.insert(name.clone(), members.iter().cloned().collect());
    }
    Ok(groups)
}

fn load_rule(
    i: usize,
    raw: &crate::settings::RuleSettings,
    groups: &BTreeMap<String, HashSet<String>>,
) -> Result<Rule, Error> {
    let key = format!("access.rules[{i}]");
    if raw.repositories.is_empty() {
        return Err(Error::config(
            format!("{key}.repositories"),
            "list at least one repository pattern (\"**\" for all)",
        ));
    }
    let patterns = raw
        .repositories
        .iter()
        .enumerate()
        .map(|(j, p)| {
            Pattern::repository(p).map_err(|e| Error::config(format!("{key}.repositories[{j}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if raw.actions.is_empty() {
        return Err(Error::config(
            format!("{key}.actions"),
            "list at least one of pull, push, delete",
        ));
    }
    let actions = raw
        .actions
        .iter()
        .enumerate()
        .map(|(j, a)| {
            a.parse::<Action>()
                .map_err(|e| Error::config(format!("{key}.actions[{j}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut users = HashSet::new();
    let mut every_user = false;
    for (j, user) in raw.users.iter().enumerate() {
        if user == "*" {
            every_user = true;
        } else {
            check_user(&format!("{key}.users[{j}]"), user)?;
            users.insert(user.clone());
        }
    }
    for (j, group) in raw.groups.iter().enumerate() {
        let members = groups.get(group).ok_or_else(|| {
            Error::config(
                format!("{key}.groups[{j}]"),
                format!("{group:?} is not defined under access.groups"),
            )
        })?;
        users.extend(members.iter().cloned());
    }
    if !raw.anonymous && !every_user && raw.users.is_empty() && raw.groups.is_empty() {
        return Err(Error::config(
            key,
            "the rule applies to nobody: give users, groups or anonymous: true",
        ));
    }
    Ok(Rule {
        patterns,
        actions,
        users,
        every_user,
        anonymous: raw.anonymous,
    })
}

fn check_user(key: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains(':') {
        return Err(Error::config(
            key,
            format!("{name:?} is not a user name (non-empty, without ':')"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RuleSettings;
    use Action::{Delete, Pull, Push};

    fn rule(repos: &[&str], actions: &[&str]) -> RuleSettings {
        RuleSettings {
            repositories: repos.iter().map(|s| s.to_string()).collect(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            ..RuleSettings::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A team set-up: anonymous pull of public/**, every user pulls everything, team-a pushes its own,
    /// admins do everything.
    fn team_policy() -> Policy {
        let access = AccessSettings {
            openbase: false,
            groups: BTreeMap::from([
                ("team-a".to_string(), strings(&["bob", "carol"])),
                ("admins".to_string(), strings(&["alice"])),
            ]),
            rules: vec![
                RuleSettings {
                    anonymous: true,
                    ..rule(&["public/**"], &["pull"])
                },
                RuleSettings {
                    users: strings(&["*"]),
                    ..rule(&["**"], &["pull"])
                },
                RuleSettings {
                    groups: strings(&["team-a"]),
                    ..rule(&["team-a/*"], &["pull", "push"])
                },
                RuleSettings {
                    users: strings(&["dave"]),
                    ..rule(&["team-a/cache", "scratch/**"], &["push", "delete"])
                },
                RuleSettings {
                    groups: strings(&["admins"]),
                    ..rule(&["**"], &["pull", "push", "delete"])
                },
            ],
        };
        Policy::load(Some(&access)).unwrap()
    }

    #[test]
    fn who_pulls_everything_sees_the_registry() {
        // Every user pulls `**` in the team set-up; anonymous callers only `public/**`.
        let p = team_policy();
        assert!(p.pulls_everything(Some("eve")));
        assert!(!p.pulls_everything(None));
        // Only admins pull `**`: dave's wide patterns and team-a's are not everything.
        let access = AccessSettings {
            openbase: false,
            groups: BTreeMap::from([("admins".to_string(), strings(&["alice"]))]),
            rules: vec![
                RuleSettings {
                    users: strings(&["dave"]),
                    ..rule(&["*/**", "team-a/*"], &["pull"])
                },
                RuleSettings {
                    users: strings(&["erin"]),
                    ..rule(&["**"], &["push", "delete"])
                },
                RuleSettings {
                    groups: strings(&["admins"]),
                    ..rule(&["**"], &["pull"])
                },
            ],
        };
        let p = Policy::load(Some(&access)).unwrap();
        assert!(p.pulls_everything(Some("alice")));
        assert!(!p.pulls_everything(Some("dave")));
        assert!(!p.pulls_everything(Some("erin")), "push on ** is not pull");
        assert!(!p.pulls_everything(None));
        // No rules: every authenticated user may do everything.
        let open = Policy::load(None).unwrap();
        assert!(open.pulls_everything(Some("anyone")));
        assert!(!open.pulls_everything(None));
    }

    #[test]
    fn decision_table() {
        let p = team_policy();
        let table: &[(Option<&str>, &str, Action, bool)] = &[
            // Anonymous: public pull only.
            (None, "public/alpine", Pull, true),
            (None, "public/x/y", Pull, true),
            (None, "public/alpine", Push, false),
            (None, "team-a/app", Pull, false),
            (None, "publicity", Pull, false),
            // Any authenticated user pulls everything (and the anonymous rights too).
            (Some("eve"), "team-a/app", Pull, true),
            (Some("eve"), "public/alpine", Pull, true),
            (Some("eve"), "team-a/app", Push, false),
            (Some("eve"), "team-a/app", Delete, false),
            // team-a members push to team-a/* only, one level deep.
            (Some("bob"), "team-a/app", Push, true),
            (Some("carol"), "team-a/app", Push, true),
            (Some("bob"), "team-a/app/sub", Push, false),
            (Some("bob"), "team-b/app", Push, false),
            (Some("bob"), "team-a/app", Delete, false),
            // dave: listed patterns, listed actions.
            (Some("dave"), "team-a/cache", Push, true),
            (Some("dave"), "scratch/a/b", Delete, true),
            (Some("dave"), "team-a/app", Push, false),
            // admins: everything.
            (Some("alice"), "anything/at/all", Delete, true),
            (Some("alice"), "team-a/app", Push, true),
        ];
        for (user, repo, action, want) in table {
            assert_eq!(
                p.allows(*user, repo, *action),
                *want,
                "{user:?} {action} {repo}"
            );
        }
        assert!(p.anonymous_has_rights());
    }

    #[test]
    fn without_rules_users_may_do_everything_and_anonymous_nothing() {
        for p in [
            Policy::load(None).unwrap(),
            Policy::load(Some(&AccessSettings::default())).unwrap(),
        ] {
            for action in Action::ALL {
                assert!(p.allows(Some("anyone"), "any/repo", action));
                assert!(!p.allows(None, "any/repo", action));
            }
            assert!(!p.anonymous_has_rights());
        }
    }

    #[test]
    fn anonymous_pull_authenticated_push() {
        let access = AccessSettings {
            rules: vec![
                RuleSettings {
                    anonymous: true,
                    ..rule(&["**"], &["pull"])
                },
                RuleSettings {
                    users: strings(&["*"]),
                    ..rule(&["**"], &["pull", "push", "delete"])
                },
            ],
            ..AccessSettings::default()
        };
        let p = Policy::load(Some(&access)).unwrap();
        assert!(p.allows(None, "mirror/alpine", Pull));
        assert!(!p.allows(None, "mirror/alpine", Push));
        assert!(p.allows(Some("ci"), "mirror/alpine", Push));
    }

    #[test]
    fn load_errors_name_the_key() {
        let cases: Vec<(AccessSettings, &str)> = vec![
            (
                AccessSettings {
                    rules: vec![RuleSettings {
                        users: strings(&["bob"]),
                        ..rule(&["**"], &["pull", "write"])
                    }],
                    ..AccessSettings::default()
                },
                "access.rules[0].actions[1]",
            ),
            (
                AccessSettings {
                    rules: vec![RuleSettings {
                        groups: strings(&["ghosts"]),
                        ..rule(&["**"], &["pull"])
                    }],
                    ..AccessSettings::default()
                },
                "access.rules[0].groups[0]",
            ),
            (
                AccessSettings {
                    rules: vec![
                        RuleSettings {
                            anonymous: true,
                            ..rule(&["**"], &["pull"])
                        },
                        RuleSettings {
                            users: strings(&["bob"]),
                            ..rule(&["ok/*", "Bad/*"], &["pull"])
                        },
                    ],
                    ..AccessSettings::default()
                },
                "access.rules[1].repositories[1]",
            ),
            (
                AccessSettings {
                    rules: vec![rule(&["**"], &["pull"])],
                    ..AccessSettings::default()
                },
                "applies to nobody",
            ),
            (
                AccessSettings {
                    rules: vec![RuleSettings {
                        users: strings(&["bob"]),
                        ..rule(&[], &["pull"])
                    }],
                    ..AccessSettings::default()
                },
                "access.rules[0].repositories",
            ),
            (
                AccessSettings {
                    rules: vec![RuleSettings {
                        users: strings(&["bob"]),
                        ..rule(&["**"], &[])
                    }],
                    ..AccessSettings::default()
                },
                "access.rules[0].actions",
            ),
            (
                AccessSettings {
                    groups: BTreeMap::from([("g".to_string(), strings(&["ok", ""]))]),
                    ..AccessSettings::default()
                },
                "access.groups.g[1]",
            ),
        ];
        for (access, key) in cases {
            let err = Policy::load(Some(&access)).err().unwrap().to_string();
            assert!(err.contains(key), "want {key}: {err}");
        }
    }
}
