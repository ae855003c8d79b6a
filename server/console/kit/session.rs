//! The guards of every console request: the session cookie (`Viewer`, a signed-in admin),
//! CSRF tokens and same-origin checks on every form (`Posted`), and pre-sign-in form cookies.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;

use super::PageError;
use crate::app::state::AppState;
use crate::entities::ChangeContext;
use crate::identity::admins::Identity;
use crate::identity::provenance::Provenance;
use crate::identity::secret::constant_time_eq;
use crate::identity::sessions::Session;
use crate::store::DbConnection;
use crate::web::error::ApiError;

/// The session cookie: HttpOnly, SameSite=Strict, and Secure over HTTPS (`cookie_secure`).
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// The sign-in form's CSRF cookie: there is no session yet to hold its token, so the form
/// and this cookie carry the same random value (a double submit).
pub const SIGN_IN_COOKIE: &str = "gatehouse_sign_in";
/// The form field, and the header for htmx requests, that carry a session's CSRF token.
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Whether cookies carry `Secure`: always when the listener itself is HTTPS (`[http]
/// tls_cert`), and behind a TLS proxy that says the console was reached over HTTPS
/// (`X-Forwarded-Proto`/`Forwarded`). The listener is asked first because actix's scheme
/// believes those headers over the connection, so a client sending `X-Forwarded-Proto:
/// http` would otherwise get its session cookie without `Secure` over native HTTPS.
/// Browsers drop Secure cookies set over plain HTTP, so plain-HTTP consoles get none and
/// docs/console.md says to serve the console over HTTPS on a LAN.
pub fn cookie_secure(req: &HttpRequest) -> bool {
    req.app_config().secure() || req.connection_info().scheme() == "https"
}

pub fn session_cookie(req: &HttpRequest, value: String) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .secure(cookie_secure(req))
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish()
}

/// Where a request that needs a session was going, for the sign-in page to return to.
fn wanted_path(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned())
    } else {
        "/".to_owned()
    }
}

fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("HX-Request")
}

/// The signed-in admin making a console request. Without a live session the request is
/// sent to the sign-in page (and told so, for htmx requests).
pub struct Viewer(pub Session);

impl Viewer {
    pub fn identity(&self) -> &Identity {
        &self.0.identity
    }

    /// The provenance of a change this viewer makes: their admin account, in the console.
    pub fn provenance(&self) -> Provenance {
        Provenance::console(&self.0.identity)
    }

    /// Ok when the viewer may change policy (admins and operators; auditors only read).
    pub fn may_change_policy(&self) -> Result<&Identity, PageError> {
        if self.0.identity.role.can_change_policy() {
            Ok(&self.0.identity)
        } else {
            Err(PageError::Forbidden(self.0.identity.role))
        }
    }

    pub fn may_manage_admins(&self) -> Result<&Identity, PageError> {
        if self.0.identity.role.can_manage_admins() {
            Ok(&self.0.identity)
        } else {
            Err(PageError::Forbidden(self.0.identity.role))
        }
    }
}

/// Adds the cookie of a form shown before anyone is signed in (sign-in, first-admin setup):
/// the form's `token` goes both in the page and in this cookie for the form's own `path`
/// (double submit), which a page on another site can neither read nor set.
pub fn with_form_cookie(
    req: &HttpRequest,
    path: &'static str,
    token: String,
    mut response: actix_web::HttpResponse,
) -> Result<actix_web::HttpResponse, PageError> {
    let cookie = actix_web::cookie::Cookie::build(SIGN_IN_COOKIE, token)
        .path(path)
        .http_only(true)
        .secure(cookie_secure(req))
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    response
        .add_cookie(&cookie)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(response)
}

/// Ok when a form posted before sign-in carries the token of its cookie, from this site.
pub fn check_form_cookie(req: &HttpRequest, token: &str) -> Result<(), PageError> {
    let cookie = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_owned());
    let matches = cookie.is_some_and(|c| !c.is_empty() && constant_time_eq(&c, token));
    if matches && same_origin(req) {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// The header the console's self-refreshing panels send (`hx-headers` in their templates).
pub const AUTO_REFRESH_HEADER: &str = "X-Gatehouse-Refresh";

fn session_from(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<Session, PageError>>>> {
    let secret = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // A panel refreshing itself is no sign that anyone is at the screen.
    let attended = !req.headers().contains_key(AUTO_REFRESH_HEADER);
    let sign_in = PageError::SignIn {
        next: wanted_path(req),
        htmx: is_htmx(req),
    };
    Box::pin(async move {
        let (Some(secret), Some(state)) = (secret, state) else {
            return Err(sign_in);
        };
        let now = state.clock.now();
        let store = state.clone();
        let found = web::block(move || -> Result<Option<Session>, PageError> {
            let mut conn = store.db.get()?;
            let found = if attended {
                store.sessions.find(&mut conn, &secret, now)?
            } else {
                store.sessions.find_unattended(&mut conn, &secret, now)?
            };
            Ok(found)
        })
        .await??;
        found.ok_or(sign_in)
    })
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = session_from(req);
        Box::pin(async move { Ok(Viewer(session.await?)) })
    }
}

/// The largest console form accepted.
const FORM_LIMIT: usize = 256 * 1024;

/// A state-changing console request: a signed-in viewer, a CSRF token that matches their
/// session (form field `csrf` or header `X-CSRF-Token`), a same-origin `Origin` when the
/// browser sends one, and the form `T`.
pub struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T> Posted<T> {
    /// Runs a policy change as this viewer: admins and operators only; audited under
    /// their name; the live policy is rebuilt so that it governs the very next swipe.
    pub async fn change_policy<R, F>(&self, state: &AppState, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&mut DbConnection, &ChangeContext<'_>) -> Result<R, ApiError> + Send + 'static,
    {
        let identity = self.viewer.identity();
        if !identity.role.can_change_policy() {
            return Err(ApiError::Forbidden(identity.role.as_str()));
        }
        let provenance = Provenance::console(identity);
        let now = state.clock.now();
        state
            .change(move |conn| {
                let ctx = ChangeContext {
                    provenance: &provenance,
                    now,
                };
                f(conn, &ctx)
            })
            .await
    }
}

/// True unless the browser says the request came from another site: `Sec-Fetch-Site`
/// must be `same-origin` where the browser sends it, and `Origin`, where sent, must name
/// this host: the request's own `Host` (the URI's authority over HTTP/2), never
/// `X-Forwarded-Host` or `Forwarded`, which any client may send. (The CSRF token is the
/// main defence; this is a second one.)
pub fn same_origin(req: &HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("Sec-Fetch-Site") {
        return site == "same-origin";
    }
    let Some(origin) = header("Origin") else {
        return true;
    };
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// The value of `field` in a urlencoded body.
pub fn form_field(body: &[u8], field: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
}

impl<T: DeserializeOwned + 'static> FromRequest for Posted<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = session_from(req);
        let body = web::Bytes::from_request(req, payload);
        let header_token = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let same_origin = same_origin(req);
        let too_big = req
            .headers()
            .get("Content-Length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > FORM_LIMIT);
        Box::pin(async move {
            let session = session.await?;
            if too_big {
                return Err(PageError::BadForm(
                    "the form is larger than 256 KiB".to_owned(),
                ));
            }
            let body = body
                .await
                .map_err(|e| PageError::BadForm(format!("the form could not be read: {e}")))?;
            if body.len() > FORM_LIMIT {
                return Err(PageError::BadForm(
                    "the form is larger than 256 KiB".to_owned(),
                ));
            }
            let token = header_token.or_else(|| form_field(&body, CSRF_FIELD));
            let token_ok = token.is_some_and(|t| constant_time_eq(&t, &session.csrf));
            if !token_ok || !same_origin {
                return Err(PageError::Csrf);
            }
            let form = serde_urlencoded::from_bytes::<T>(&body)
                .map_err(|e| PageError::BadForm(e.to_string()))?;
            Ok(Posted {
                viewer: Viewer(session),
                form,
            })
        })
    }
}
