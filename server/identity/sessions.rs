//! Console sign-in sessions: rows in `admin_sessions` (the cookie secret's SHA-256 stored),
//! cached for a minute, with idle and absolute timeouts; and the sign-in throttle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::clock::utc;
use crate::identity::admins::{Identity, Role};
use crate::identity::throttle::Throttle;
use crate::store::DbConnection;
use crate::store::schema::{admin_sessions, admin_users};

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

/// Whether a request comes from someone at the screen, or from the page by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attended {
    Yes,
    No,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::ChangeContext;
    use crate::identity::admins::{AdminInput, create_admin};

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
                provenance: &crate::identity::provenance::Provenance::cli("test"),
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
