//! `/ui/login` with `auth.token`: a sign-in form, and `/ui/logout`.
//!
//! The form posts the user name and password to berth (a real form: no script, the browser's own
//! password handling), and berth signs in with them at the token service as `docker login` does
//! (`auth::token_service`): the token that comes back must verify with the API's `Authority` and name a
//! user, and the service must give a refresh token, which becomes the session (`ui/session.rs`); the
//! password is used for that one request and kept nowhere. Each sign-in, and each refused one, is a
//! line of the audit log, as a sign-in with htpasswd credentials is.
//!
//! The POST is taken only from berth's own page, by the rule of the delete form (`ui/delete.rs`'s
//! `sent_from_own_page`), so no other site can sign a browser in to an account of its choosing.

use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::delete::sent_from_own_page;
use super::layout::respond;
use super::session::{Session, Sessions};
use super::{Ui, to_home};
use crate::audit;

/// The longest user name or password read from the form (a token service takes nothing longer).
const MAX_FIELD: usize = 1024;

/// The form.
pub fn form(ui: &Ui) -> Response {
    page(ui, StatusCode::OK, None)
}

/// The form's POST.
pub async fn submit(ui: &Ui, sessions: &Sessions, headers: &HeaderMap, body: &[u8]) -> Response {
    if !sent_from_own_page(headers, ui.0.host.as_deref()) {
        return page(
            ui,
            StatusCode::FORBIDDEN,
            Some("A sign-in is accepted only from the form of berth's own page."),
        );
    }
    let (mut user, mut password) = (String::new(), String::new());
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "username" => user = value.chars().take(MAX_FIELD).collect(),
            "password" => password = value.chars().take(MAX_FIELD).collect(),
            _ => {}
        }
    }
    let user = user.trim().to_string();
    let Some(authority) = &ui.0.authority else {
        return to_home().await;
    };
    let line = |outcome, status: StatusCode, who: Option<String>, why: Option<&str>| {
        audit::note(|| audit::Entry {
            action: audit::Action::Login,
            outcome,
            status: status.as_u16(),
            user: who,
            why: why.map(str::to_string),
            ..audit::Entry::default()
        });
    };
    let refused = |why: &str| {
        line(
            audit::Outcome::Unauthorized,
            StatusCode::UNAUTHORIZED,
            Some(user.clone()),
            Some(why),
        );
        page(
            ui,
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
        )
    };
    if user.is_empty() || password.is_empty() {
        return refused("no user name or password");
    }
    let issued = match sessions.service.sign_in(&user, &password).await {
        Ok(issued) => issued,
        Err(::auth::IssueError::Refused) => {
            return refused("the token service refused the credentials");
        }
        Err(::auth::IssueError::Unavailable(why)) => {
            tracing::warn!(reason = %why, "signing in at the token service failed");
            line(
                audit::Outcome::Failed,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(user.clone()),
                Some("the token service did not answer"),
            );
            return page(
                ui,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The token service did not answer; try again."),
            );
        }
    };
    // The token proves who signed in, as it would to the API.
    let named = match authority.verify_token(&issued.token) {
        Ok(caller) => caller.identity.user().map(str::to_string),
        Err(why) => return refused(&why),
    };
    let Some(named) = named.filter(|n| !n.is_empty()) else {
        return refused("the token service's token names no user");
    };
    let Some(refresh) = issued.refresh_token else {
        tracing::warn!(
            "the token service issued no refresh token: the web interface cannot keep a session"
        );
        line(
            audit::Outcome::Failed,
            StatusCode::BAD_GATEWAY,
            Some(named),
            Some("the token service issued no refresh token"),
        );
        return page(
            ui,
            StatusCode::BAD_GATEWAY,
            Some(
                "The token service issued no refresh token, which berth's pages need to ask for \
                 the repositories you may see. Use the API with your client's credentials.",
            ),
        );
    };
    let session = Session {
        sid: uuid::Uuid::new_v4().to_string(),
        user: named.clone(),
        refresh,
    };
    let Some(cookie) = sessions.set_cookie(&session) else {
        return page(
            ui,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("The session could not be made."),
        );
    };
    line(audit::Outcome::Ok, StatusCode::SEE_OTHER, Some(named), None);
    // Root-relative like every `Location`: `site::mount` puts it under the prefix.
    let mut resp = (StatusCode::SEE_OTHER, [(LOCATION, "/ui/")]).into_response();
    resp.headers_mut().insert(SET_COOKIE, cookie);
    resp
}

/// `/ui/logout`: the session's remembered rights forgotten and the cookie cleared, then home.
pub fn sign_out(sessions: &Sessions, headers: &HeaderMap) -> Response {
    if let Some(session) = sessions.read(headers) {
        sessions.forget(&session.sid);
    }
    let mut resp = (StatusCode::SEE_OTHER, [(LOCATION, "/ui/")]).into_response();
    if let Some(clear) = sessions.clear_cookie() {
        resp.headers_mut().insert(SET_COOKIE, clear);
    }
    resp
}

fn page(ui: &Ui, status: StatusCode, error: Option<&str>) -> Response {
    let links = ui.links();
    let main: Markup = html! {
        h1 { "Sign in" }
        @if let Some(error) = error {
            p.notice #signin-error role="alert" { (error) }
        }
        form.signin method="post" action=(links.login()) {
            p {
                label for="username" { "User name" }
                input #username type="text" name="username" autocomplete="username" required;
            }
            p {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            button #sign-in type="submit" { "Sign in" }
        }
    };
    let mut resp = respond(links, "Sign in", html! {}, main);
    *resp.status_mut() = status;
    resp
}
