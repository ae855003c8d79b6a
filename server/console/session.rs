//! Console sign-in sessions and the guards of every console request: the session cookie
//! (its secret's SHA-256 stored, idle and absolute timeouts), CSRF tokens, sign-in throttling.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rand::Rng;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::PageError;
use crate::admins::{Identity, Role};
use crate::entities::{ChangeContext, utc};
use crate::provenance::Provenance;
use crate::secret::constant_time_eq;
use crate::store::DbConnection;
use crate::store::schema::{admin_sessions, admin_users};
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::throttle::Throttle;

/// The session cookie: HttpOnly, SameSite=Strict, and Secure over HTTPS (`cookie_secure`).
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// The sign-in form's CSRF cookie: there is no session yet to hold its token, so the form
/// and this cookie carry the same random value (a double submit).
pub const SIGN_IN_COOKIE: &str = "gatehouse_sign_in";
/// The form field, and the header for htmx requests, that carry a session's CSRF token.
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// A session is checked against the database again after this long, so that a disabled
/// admin or a session ended elsewhere (another appliance on the same PostgreSQL, the CLI)
/// stops working within a minute, without a database read on every page.
const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// Failed sign-ins from one address within [`THROTTLE_WINDOW`] before that address must wait.
pub const THROTTLE_FAILURES: usize = 10;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Whether a session is still live, as far as the cache knows (`Sessions::standing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Live,
    /// Idle too long, or past its lifetime.
    Ended,
    /// The cache cannot say: not confirmed against the database lately, or not cached
    /// (signed out, closed when its admin was disabled or given a new password).
    Unconfirmed,
}

/// An `admin_sessions` row joined with its admin: session id, CSRF token, last seen,
/// expires, admin id, username, role, disabled.
type SessionRow = (
    i64,
    String,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    i64,
    String,
    String,
    bool,
);

/// The row of the session whose secret hashes to `key`, with its admin.
fn read_row(conn: &mut DbConnection, key: &[u8; 32]) -> QueryResult<Option<SessionRow>> {
    admin_sessions::table
        .inner_join(admin_users::table)
        .filter(admin_sessions::token_hash.eq(hex::encode(key)))
        .select((
            admin_sessions::id,
            admin_sessions::csrf_token,
            admin_sessions::last_seen_at,
            admin_sessions::expires_at,
            admin_users::id,
            admin_users::username,
            admin_users::role,
            admin_users::disabled,
        ))
        .first::<SessionRow>(conn)
        .optional()
}

/// A signed-in admin's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub identity: Identity,
    pub csrf: String,
}

struct Cached {
    session: Session,
    last_seen: DateTime<Utc>,
    /// The last-seen time last written to the database.
    saved_seen: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    checked: Instant,
    /// `Sessions::epoch` when this entry was read from the database.
    epoch: u64,
}

/// The live sessions of this appliance: rows in `admin_sessions`, cached for a minute.
pub struct Sessions {
    idle: chrono::Duration,
    lifetime: chrono::Duration,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// Bumped when the database changed behind this process's back (the CLI, another
    /// instance): entries cached before then are checked against the database again.
    epoch: AtomicU64,
    /// Failed sign-ins and setup codes per client address.
    pub throttle: Throttle,
}

fn random_hex() -> String {
    hex::encode(rand::rng().random::<[u8; 32]>())
}

fn key_of(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Sessions {
    pub fn new(idle_minutes: u32, lifetime_hours: u32) -> Sessions {
        Sessions {
            idle: chrono::Duration::minutes(i64::from(idle_minutes)),
            lifetime: chrono::Duration::hours(i64::from(lifetime_hours)),
            cache: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            throttle: Throttle::new(THROTTLE_FAILURES, THROTTLE_WINDOW),
        }
    }

    /// How long a session lives without requests.
    pub fn idle(&self) -> chrono::Duration {
        self.idle
    }

    /// Starts a session for an admin who just signed in; returns the cookie's secret.
    pub fn open(
        &self,
        conn: &mut DbConnection,
        identity: Identity,
        now: DateTime<Utc>,
        remote: &str,
    ) -> QueryResult<(String, Session)> {
        let secret = random_hex();
        let csrf = random_hex();
        let stamp = now.naive_utc();
        // Expired sessions of anyone are swept here, on the rare path, not on every page.
        diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(stamp)))
            .execute(conn)?;
        let id = diesel::insert_into(admin_sessions::table)
            .values((
                admin_sessions::token_hash.eq(hex::encode(key_of(&secret))),
                admin_sessions::admin_user_id.eq(identity.admin_id),
                admin_sessions::csrf_token.eq(&csrf),
                admin_sessions::created_at.eq(stamp),
                admin_sessions::last_seen_at.eq(stamp),
                admin_sessions::expires_at.eq(stamp + self.lifetime),
                admin_sessions::remote_addr.eq(remote),
            ))
            .returning(admin_sessions::id)
            .get_result(conn)?;
        let session = Session { id, identity, csrf };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                key_of(&secret),
                Cached {
                    session: session.clone(),
                    last_seen: now,
                    saved_seen: now,
                    expires_at: now + self.lifetime,
                    checked: Instant::now(),
                    epoch: self.epoch.load(Ordering::SeqCst),
                },
            );
        }
        Ok((secret, session))
    }

    /// The session a cookie's secret belongs to, if it is still live; marks it seen.
    pub fn find(
        &self,
        conn: &mut DbConnection,
        secret: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Session>> {
        self.look_up(conn, secret, now, Attended::Yes)
    }

    /// As `find`, for a request a page makes by itself (a dashboard panel refreshing every
    /// few seconds): no sign that anyone is at the screen, so it does not mark the session
    /// seen. A dashboard left open still goes idle.
    pub fn find_unattended(
        &self,
        conn: &mut DbConnection,
        secret: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Session>> {
        self.look_up(conn, secret, now, Attended::No)
    }

    fn look_up(
        &self,
        conn: &mut DbConnection,
        secret: &str,
        now: DateTime<Utc>,
        attended: Attended,
    ) -> QueryResult<Option<Session>> {
        let key = key_of(secret);
        let mut cached_hit = None;
        if let Ok(mut cache) = self.cache.lock()
            && let Some(cached) = cache.get_mut(&key)
            && self.confirmed(cached)
        {
            if now - cached.last_seen > self.idle || now >= cached.expires_at {
                cache.remove(&key);
            } else if attended == Attended::No {
                cached_hit = Some((cached.session.clone(), false));
            } else {
                cached.last_seen = now;
                // Other appliances on the same database judge idleness by the stored
                // time: keep it at most a minute behind.
                let save = now - cached.saved_seen >= chrono::Duration::minutes(1);
                if save {
                    cached.saved_seen = now;
                }
                cached_hit = Some((cached.session.clone(), save));
            }
        }
        if let Some((session, save)) = cached_hit {
            if save {
                diesel::update(admin_sessions::table.find(session.id))
                    .set(admin_sessions::last_seen_at.eq(now.naive_utc()))
                    .execute(conn)?;
            }
            return Ok(Some(session));
        }
        let row = read_row(conn, &key)?;
        // A cookie that names no session costs one read, never a write: made-up cookies
        // must not be a way to load the database.
        let Some(row) = row else {
            if let Ok(mut cache) = self.cache.lock() {
                cache.remove(&key);
            }
            return Ok(None);
        };
        let Some((session, last_seen, expires_at)) = self.judge(row, &key, now) else {
            self.forget(conn, &key)?;
            return Ok(None);
        };
        let last_seen = match attended {
            Attended::Yes => {
                diesel::update(admin_sessions::table.find(session.id))
                    .set(admin_sessions::last_seen_at.eq(now.naive_utc()))
                    .execute(conn)?;
                now
            }
            Attended::No => last_seen,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, c| now - c.last_seen <= self.idle && now < c.expires_at);
            cache.insert(
                key,
                Cached {
                    session: session.clone(),
                    last_seen,
                    saved_seen: last_seen,
                    expires_at,
                    checked: Instant::now(),
                    epoch: self.epoch.load(Ordering::SeqCst),
                },
            );
        }
        Ok(Some(session))
    }

    /// The session a row describes, with its last-seen time and end, if it is live now. The
    /// last-seen time is the later of the row's and this appliance's (which writes its own
    /// at most a minute late).
    fn judge(
        &self,
        row: SessionRow,
        key: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Option<(Session, DateTime<Utc>, DateTime<Utc>)> {
        let (id, csrf, last_seen, expires_at, admin_id, username, role, disabled) = row;
        let last_seen_here = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(key).map(|c| c.last_seen));
        let last_seen = last_seen_here.unwrap_or(utc(last_seen)).max(utc(last_seen));
        let expires_at = utc(expires_at);
        let role: Role = role.parse().ok()?;
        let fresh = now - last_seen <= self.idle && now < expires_at && !disabled;
        fresh.then_some((
            Session {
                id,
                identity: Identity {
                    admin_id,
                    username,
                    role,
                },
                csrf,
            },
            last_seen,
            expires_at,
        ))
    }

    /// Whether the session of a cookie's secret is still live, from the cache alone: for a
    /// response held open on that session (the dashboard's live feed), which must end with
    /// the session, must not read the database per event, and is no request of the admin's
    /// (so it neither marks the session seen nor keeps it from going idle).
    pub fn standing(&self, secret: &str, now: DateTime<Utc>) -> Standing {
        let Ok(cache) = self.cache.lock() else {
            return Standing::Unconfirmed;
        };
        match cache.get(&key_of(secret)) {
            Some(c) if now - c.last_seen > self.idle || now >= c.expires_at => Standing::Ended,
            Some(c) if self.confirmed(c) => Standing::Live,
            // Not confirmed lately (it may have been ended elsewhere), or not here at all
            // (signed out, closed): the row says which.
            _ => Standing::Unconfirmed,
        }
    }

    /// As `standing`, but a session the cache cannot vouch for is looked up (one read, no
    /// write), and what was read is cached for [`RECHECK_AFTER`] like `find` does. Does
    /// not mark the session seen.
    pub fn still_live(
        &self,
        conn: &mut DbConnection,
        secret: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<bool> {
        match self.standing(secret, now) {
            Standing::Live => return Ok(true),
            Standing::Ended => return Ok(false),
            Standing::Unconfirmed => {}
        }
        let key = key_of(secret);
        let live = read_row(conn, &key)?.and_then(|row| self.judge(row, &key, now));
        let Ok(mut cache) = self.cache.lock() else {
            return Ok(live.is_some());
        };
        let Some((session, last_seen, expires_at)) = live else {
            // The row stays for `find` (or the next sign-in's sweep) to delete.
            cache.remove(&key);
            return Ok(false);
        };
        cache
            .entry(key)
            .and_modify(|c| {
                c.session = session.clone();
                c.expires_at = expires_at;
                c.checked = Instant::now();
                c.epoch = self.epoch.load(Ordering::SeqCst);
            })
            .or_insert_with(|| Cached {
                session,
                last_seen,
                saved_seen: last_seen,
                expires_at,
                checked: Instant::now(),
                epoch: self.epoch.load(Ordering::SeqCst),
            });
        Ok(true)
    }

    /// Whether a cached entry may be believed without reading its row again.
    fn confirmed(&self, cached: &Cached) -> bool {
        cached.checked.elapsed() < RECHECK_AFTER
            && cached.epoch == self.epoch.load(Ordering::SeqCst)
    }

    /// The database changed behind this process's back (an admin disabled or a session
    /// ended through the CLI or another instance): every session is checked against it
    /// again on its next request, keeping what this process knows of its last activity.
    pub fn recheck_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends the session of a cookie's secret (sign-out).
    pub fn close(&self, conn: &mut DbConnection, secret: &str) -> QueryResult<()> {
        self.forget(conn, &key_of(secret))
    }

    fn forget(&self, conn: &mut DbConnection, key: &[u8; 32]) -> QueryResult<()> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
        diesel::delete(
            admin_sessions::table.filter(admin_sessions::token_hash.eq(hex::encode(key))),
        )
        .execute(conn)?;
        Ok(())
    }

    /// Ends every session of an admin (disabled, or their password changed).
    pub fn close_all_of(&self, conn: &mut DbConnection, admin_id: i64) -> QueryResult<()> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, c| c.session.identity.admin_id != admin_id);
        }
        diesel::delete(admin_sessions::table.filter(admin_sessions::admin_user_id.eq(admin_id)))
            .execute(conn)?;
        Ok(())
    }

    /// A fresh random value for the sign-in form's double-submit CSRF check.
    pub fn sign_in_token() -> String {
        random_hex()
    }
}

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

/// Whether a request comes from someone at the screen, or from the page by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attended {
    Yes,
    No,
}

/// The header the console's self-refreshing panels send (`hx-headers` in their templates).
pub const AUTO_REFRESH_HEADER: &str = "X-Gatehouse-Refresh";

fn session_from(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<Session, PageError>>>> {
    let secret = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let attended = if req.headers().contains_key(AUTO_REFRESH_HEADER) {
        Attended::No
    } else {
        Attended::Yes
    };
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
            Ok(store.sessions.look_up(&mut conn, &secret, now, attended)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admins::{AdminInput, create_admin};

    fn db() -> (tempfile::TempDir, crate::store::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let pool = crate::store::open(&url, 1).unwrap();
        crate::store::migrate(&mut pool.get().unwrap()).unwrap();
        (dir, pool)
    }

    /// Whether the session is live at minute `m`, asked by a request of the admin's.
    fn seen(sessions: &Sessions, conn: &mut DbConnection, secret: &str, m: i64) -> bool {
        sessions.find(conn, secret, minutes(m)).unwrap().is_some()
    }

    /// The same, asked by a page refreshing itself.
    fn polled(sessions: &Sessions, conn: &mut DbConnection, secret: &str, m: i64) -> bool {
        sessions
            .find_unattended(conn, secret, minutes(m))
            .unwrap()
            .is_some()
    }

    /// `m` minutes into the tests' day (08:00 UTC on 2026-12-01).
    fn minutes(m: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(m)
    }

    fn admin(conn: &mut DbConnection, now: DateTime<Utc>) -> Identity {
        let view = create_admin(
            conn,
            &AdminInput {
                username: "dana".to_owned(),
                password: "a long enough password".to_owned(),
                role: "operator".to_owned(),
            },
            &ChangeContext {
                provenance: &crate::provenance::Provenance::cli("test"),
                now,
            },
        )
        .unwrap();
        Identity {
            admin_id: view.id,
            username: view.username,
            role: view.role,
        }
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_lifetime_however_busy() {
        let (_dir, pool) = db();
        let conn = &mut pool.get().unwrap();
        let t0 = minutes(0);
        let identity = admin(conn, t0);

        // 30 minutes idle allowed, 2 hours in all.
        let sessions = Sessions::new(30, 2);
        let (secret, _) = sessions
            .open(conn, identity.clone(), t0, "127.0.0.1")
            .unwrap();
        for m in (20..=100).step_by(20) {
            assert!(
                sessions.find(conn, &secret, minutes(m)).unwrap().is_some(),
                "busy at {m}"
            );
        }
        assert!(
            !seen(&sessions, conn, &secret, 125),
            "over at two hours, busy or not"
        );

        // A fresh store (another process, a restart) reads the same rules from the database.
        let (idle_secret, _) = sessions.open(conn, identity, t0, "127.0.0.1").unwrap();
        assert!(seen(&sessions, conn, &idle_secret, 29));
        let elsewhere = Sessions::new(30, 2);
        assert!(seen(&elsewhere, conn, &idle_secret, 58));
        assert!(
            !seen(&elsewhere, conn, &idle_secret, 89),
            "31 minutes without a request"
        );
        assert!(
            !seen(&sessions, conn, "not a session", 1),
            "unknown secrets find nothing"
        );
    }

    #[test]
    fn a_page_refreshing_itself_does_not_keep_its_session_alive() {
        let (_dir, pool) = db();
        let conn = &mut pool.get().unwrap();
        let t0 = minutes(0);
        let identity = admin(conn, t0);
        let sessions = Sessions::new(30, 2);
        let (secret, _) = sessions.open(conn, identity, t0, "127.0.0.1").unwrap();
        // A dashboard polling every few minutes, nobody at the screen: served until the
        // idle time is up, then not.
        for m in (2..=28).step_by(2) {
            assert!(
                sessions
                    .find_unattended(conn, &secret, minutes(m))
                    .unwrap()
                    .is_some(),
                "live at {m}"
            );
        }
        // Another process (its cache empty) agrees: nothing was stored as activity.
        let elsewhere = Sessions::new(30, 2);
        assert!(polled(&elsewhere, conn, &secret, 29));
        assert!(
            !polled(&sessions, conn, &secret, 31),
            "idle however often the page refreshed"
        );
        assert!(!seen(&elsewhere, conn, &secret, 31));
    }

    #[test]
    fn a_held_open_response_sees_its_session_end_and_does_not_keep_it_alive() {
        let (_dir, pool) = db();
        let conn = &mut pool.get().unwrap();
        let t0 = minutes(0);
        let identity = admin(conn, t0);
        let sessions = Sessions::new(30, 2);

        let (secret, _) = sessions
            .open(conn, identity.clone(), t0, "127.0.0.1")
            .unwrap();
        assert_eq!(sessions.standing(&secret, minutes(29)), Standing::Live);
        assert!(sessions.still_live(conn, &secret, minutes(29)).unwrap());
        // Asking is no request: 31 minutes after the last one, the session is idle.
        assert_eq!(sessions.standing(&secret, minutes(31)), Standing::Ended);
        assert!(!sessions.still_live(conn, &secret, minutes(31)).unwrap());
        assert!(!seen(&sessions, conn, &secret, 31));

        // Signed out: the cache cannot vouch for it, and the row is gone.
        let (signed_out, _) = sessions
            .open(conn, identity.clone(), minutes(40), "127.0.0.1")
            .unwrap();
        sessions.close(conn, &signed_out).unwrap();
        assert_eq!(
            sessions.standing(&signed_out, minutes(41)),
            Standing::Unconfirmed
        );
        assert!(!sessions.still_live(conn, &signed_out, minutes(41)).unwrap());

        // Another process reads the row, and then knows it from its cache.
        let (secret, _) = sessions
            .open(conn, identity.clone(), minutes(40), "127.0.0.1")
            .unwrap();
        let elsewhere = Sessions::new(30, 2);
        assert_eq!(
            elsewhere.standing(&secret, minutes(41)),
            Standing::Unconfirmed
        );
        assert!(elsewhere.still_live(conn, &secret, minutes(41)).unwrap());
        assert_eq!(elsewhere.standing(&secret, minutes(41)), Standing::Live);
        // The admin is disabled behind this process's back: a read finds out.
        diesel::update(admin_users::table.find(identity.admin_id))
            .set(admin_users::disabled.eq(true))
            .execute(conn)
            .unwrap();
        let fresh = Sessions::new(30, 2);
        assert!(!fresh.still_live(conn, &secret, minutes(42)).unwrap());
    }

    #[test]
    fn a_change_made_elsewhere_is_seen_at_the_next_request_after_recheck_all() {
        let (_dir, pool) = db();
        let conn = &mut pool.get().unwrap();
        let t0 = minutes(0);
        let identity = admin(conn, t0);
        let sessions = Sessions::new(30, 2);
        let (secret, _) = sessions
            .open(conn, identity.clone(), t0, "127.0.0.1")
            .unwrap();
        // The CLI disables the admin: this process's cache still vouches for the session.
        diesel::update(admin_users::table.find(identity.admin_id))
            .set(admin_users::disabled.eq(true))
            .execute(conn)
            .unwrap();
        assert!(seen(&sessions, conn, &secret, 1));
        assert_eq!(sessions.standing(&secret, minutes(1)), Standing::Live);
        sessions.recheck_all();
        assert_eq!(
            sessions.standing(&secret, minutes(1)),
            Standing::Unconfirmed
        );
        assert!(!seen(&sessions, conn, &secret, 1));
    }
}
