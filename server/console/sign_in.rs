//! Signing in and out of the console: the sign-in form (double-submit CSRF, per-address
//! throttling, per-account lockout with messages a person can act on) and sign-out.

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::kit::session::{self, Posted, SESSION_COOKIE, Viewer, session_cookie};
use super::kit::{PageError, page_with_status, see_other};
use crate::app::state::AppState;
use crate::identity::admins::{self, SignIn};
use crate::identity::provenance::Provenance;
use crate::identity::secret::{Lane, SecretError};
use crate::identity::sessions::Sessions;
use crate::identity::throttle::Throttle;
use crate::store::audit::{self, AuditEntry};
use crate::web::client_addr::client_addr;
use crate::web::error::ApiError;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    next: String,
    username: String,
    /// Why the last attempt failed, shown as an alert.
    problem: Option<String>,
    /// No admin exists yet: point to the first-admin setup.
    setup: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only paths on this appliance: a sign-in link must not be able to send people elsewhere.
/// Backslashes and control characters are refused too: browsers read `/\evil` and
/// `/<tab>/evil` as `//evil`, another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

async fn sign_in_form(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    next: String,
    username: String,
    problem: Option<String>,
) -> Result<HttpResponse, PageError> {
    let csrf = Sessions::sign_in_token();
    let response = page_with_status(
        status,
        &SignInPage {
            csrf: csrf.clone(),
            next,
            username,
            problem,
            setup: super::setup::needed(state).await,
        },
    )?;
    session::with_form_cookie(req, "/login", csrf, response)
}

/// GET /login
pub async fn form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
    viewer: Option<Viewer>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref());
    if viewer.is_some() {
        return Ok(see_other(&next));
    }
    sign_in_form(&req, &state, StatusCode::OK, next, String::new(), None).await
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// POST /login
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: SignInForm =
        serde_urlencoded::from_bytes(&body).map_err(|e| PageError::BadForm(e.to_string()))?;
    session::check_form_cookie(&req, &form.csrf)?;
    let next = safe_next(Some(&form.next));
    let username = form.username.trim().to_owned();
    let client = client_addr(&req);
    if username.is_empty() || form.password.is_empty() {
        return sign_in_form(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            next,
            username,
            Some("Enter your username and password.".to_owned()),
        )
        .await;
    }
    // Reserved before the password is checked, so that attempts sent at once count at
    // once: 60 wrong passwords in one burst get the limit's worth of checks, not 60.
    let reservation = match client
        .map(|ip| state.sessions.throttle.reserve(ip))
        .transpose()
    {
        Ok(reservation) => reservation,
        Err(wait) => {
            return sign_in_form(
                &req,
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                username,
                Some(format!(
                    "Too many failed sign-ins from this computer. {}",
                    Throttle::wait_words(wait)
                )),
            )
            .await;
        }
    };
    let now = state.clock.now();
    let remote = client.map(|ip| ip.to_string()).unwrap_or_default();
    let subject = {
        let username = username.clone();
        state
            .read(move |conn| Ok(admins::sign_in_subject(conn, &username, now)?))
            .await?
    };
    // argon2id on its own pool, outside the write lock: a burst of sign-ins never holds
    // up other writes. Unknown usernames and locked accounts are checked against a dummy
    // hash: the same work and, below, the same answer as a wrong password.
    let check = {
        let subject = subject.clone();
        let password = form.password.clone();
        crate::identity::secret::pool()
            .run(Lane::General, move || {
                crate::identity::secret::verify_secret(subject.hash_to_check(), &password)
            })
            .await
    };
    let password_matches = match check {
        Ok(matches) => matches,
        Err(SecretError::Busy) => {
            drop(reservation);
            return sign_in_form(
                &req,
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                next,
                username,
                Some("The appliance is busy. Try again in a moment.".to_owned()),
            )
            .await;
        }
        Err(e) => return Err(PageError::Internal(e.to_string())),
    };
    state.password_checks.fetch_add(1, Ordering::Relaxed);
    let app = state.clone();
    // An unknown username or a locked account has nothing to record: never waits for
    // the writer.
    let (outcome, secret) = match subject.settled_without_writing().map(|o| (o, None)) {
        Some(settled) => settled,
        None => {
            state
                .write(move |conn| {
                    let outcome = admins::settle_sign_in(conn, &subject, password_matches, now)?;
                    let SignIn::Accepted(identity) = &outcome else {
                        return Ok((outcome, None));
                    };
                    let (secret, _) = app.sessions.open(conn, identity.clone(), now, &remote)?;
                    audit::append(
                        conn,
                        &AuditEntry {
                            provenance: &Provenance::console(identity),
                            action: "sign_in",
                            entity: "session",
                            entity_id: None,
                            summary: format!(
                                "{} signed in to the console from {remote}",
                                identity.username
                            ),
                            before: None,
                            after: None,
                        },
                        now,
                    )
                    .map_err(ApiError::from)?;
                    Ok((outcome, Some(secret)))
                })
                .await?
        }
    };
    let problem = match outcome {
        SignIn::Accepted(_) => {
            if let Some(reservation) = reservation {
                reservation.succeeded();
            }
            let mut response = see_other(&next);
            if let Some(secret) = secret {
                response
                    .add_cookie(&session_cookie(&req, secret))
                    .map_err(|e| PageError::Internal(e.to_string()))?;
            }
            return Ok(response);
        }
        // One answer for an unknown username, a wrong password and a locked account, so
        // that none of them tells whether the account exists; it says what to do if it
        // is locked.
        SignIn::Refused | SignIn::Locked { .. } => {
            if let SignIn::Locked { .. } = outcome {
                tracing::warn!(remote = ?client, "a console sign-in was refused: the account is locked after repeated wrong passwords");
            }
            format!(
                "Wrong username or password. After {} wrong passwords in a row an account is \
                 locked for {} minutes; another admin can unlock it by setting a new password.",
                admins::MAX_FAILED_SIGN_INS,
                admins::LOCKOUT.num_minutes()
            )
        }
        SignIn::Disabled => "This account is disabled. Ask an admin to enable it.".to_owned(),
    };
    if let Some(reservation) = reservation {
        reservation.failed();
    }
    // Neither the username nor the password typed: either may be someone's password.
    tracing::info!(remote = ?client, "a console sign-in failed");
    sign_in_form(
        &req,
        &state,
        StatusCode::UNAUTHORIZED,
        next,
        form_username(&body),
        Some(problem),
    )
    .await
}

fn form_username(body: &[u8]) -> String {
    session::form_field(body, "username")
        .map(|u| u.trim().to_owned())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct SignOutForm {}

/// POST /logout
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    posted: Posted<SignOutForm>,
) -> Result<HttpResponse, PageError> {
    let secret = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let username = posted.viewer.identity().username.clone();
    let provenance = posted.viewer.provenance();
    let now = state.clock.now();
    let app = state.clone();
    state
        .write(move |conn| {
            if let Some(secret) = secret {
                app.sessions.close(conn, &secret)?;
            }
            audit::append(
                conn,
                &AuditEntry {
                    provenance: &provenance,
                    action: "sign_out",
                    entity: "session",
                    entity_id: None,
                    summary: format!("{username} signed out of the console"),
                    before: None,
                    after: None,
                },
                now,
            )?;
            Ok(())
        })
        .await?;
    let mut response = see_other("/login");
    let mut gone = session_cookie(&req, String::new());
    gone.make_removal();
    response
        .add_cookie(&gone)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_only_returns_to_this_appliance() {
        assert_eq!(safe_next(Some("/people?q=ada")), "/people?q=ada");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "people",
            "",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/", "{elsewhere:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
