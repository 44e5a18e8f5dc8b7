//! Signing in to the interface through the token service, in headless Chromium: berth with
//! `auth.token` behind the suite's token service (`auth/token.rs`, here granting alice everything and
//! bob pull on `team-b/**` only). A wrong password is refused on the form; alice signs in with the form,
//! sees both teams' repositories and deletes a tag; bob, signed in after she signs out, sees only his
//! team's repository, in the list and by its address.

use super::Browser;
use crate::auth::token::TokenService;
use crate::harness::{Options, Server};

fn grants(user: Option<&str>, repo: &str, action: &str) -> bool {
    match user {
        Some("alice") => true,
        Some("bob") => repo.starts_with("team-b/") && action == "pull",
        _ => false,
    }
}

/// Fills the form and sends it.
fn sign_in(browser: &Browser, user: &str, password: &str) {
    browser.type_into("#username", user);
    browser.type_into("#password", password);
    browser.click("#sign-in");
}

#[test]
fn a_user_signs_in_through_the_token_service_and_sees_what_it_grants() {
    let Some(browser) = Browser::start(
        "ui::token::a_user_signs_in_through_the_token_service_and_sees_what_it_grants",
    ) else {
        return;
    };
    let service = TokenService::start_with(grants);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(&config, "version: 0.1\n").unwrap_or_else(|e| panic!("config: {e}"));
    let mut server = Server::start_with(Options {
        config: Some(config.clone()),
        delete_enabled: true,
        ..Options::default()
    });
    let api = server.api();
    super::push(&api, "team-a/app", "v1", "a", "a");
    super::push(&api, "team-a/app", "v2", "a", "a");
    super::push(&api, "team-b/lib", "v1", "b", "b");
    let yaml = format!(
        "{}http:\n  secret: e2e-session-secret\n",
        service.config_yaml()
    );
    std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("config: {e}"));
    server.restart();
    let base = server.base_url();
    assert_eq!(server.api().get("/ui/", &[]).unwrap().status, 401);

    // A wrong password: refused on the form.
    browser.open(&format!("{base}/ui/login"));
    sign_in(&browser, "alice", "wrong");
    browser.wait_for(|b| !b.find_all("#signin-error").is_empty());
    assert_eq!(
        browser.text("#signin-error"),
        "Wrong user name or password."
    );
    assert!(browser.url().ends_with("/ui/login"), "{}", browser.url());

    // Alice: every repository, and she deletes a tag.
    browser.open(&format!("{base}/ui/login"));
    sign_in(&browser, "alice", "secret");
    browser.wait_for(|b| b.url().ends_with("/ui/"));
    let list = browser.text("#repositories");
    assert!(
        list.contains("team-a/app") && list.contains("team-b/lib"),
        "{list}"
    );
    browser.open(&format!("{base}/ui/repo/team-a/app"));
    assert!(browser.text("#tags").contains("v1"));
    browser.open(&format!("{base}/ui/delete/team-a/app:v1"));
    browser.click("#confirm-delete");
    browser.wait_for(|b| b.url().contains("/ui/repo/team-a/app?deleted=v1"));
    assert_eq!(browser.text("#deleted"), "Deleted v1.");
    let tags = browser.text("#tags");
    assert!(tags.contains("v2") && !tags.contains("v1"), "{tags}");

    // Signing out ends the session: the list asks to sign in again.
    browser.click("a.logout");
    browser.wait_for(|b| b.url().ends_with("/ui/"));
    assert!(browser.find_all("#repositories").is_empty());
    assert!(browser.text("main").contains("Sign in"));

    // Bob: his team's repository only.
    browser.open(&format!("{base}/ui/login"));
    sign_in(&browser, "bob", "builder");
    browser.wait_for(|b| b.url().ends_with("/ui/"));
    let list = browser.text("#repositories");
    assert!(list.contains("team-b/lib"), "{list}");
    assert!(!list.contains("team-a"), "{list}");
    browser.open(&format!("{base}/ui/repo/team-a/app"));
    assert!(browser.text("main").contains("nothing you may see"));
    // He may pull his team's repository, not delete in it: no delete link.
    browser.open(&format!("{base}/ui/repo/team-b/lib"));
    assert!(browser.find_all("#tags a.delete").is_empty());
    drop(server);
    drop(service);
}
