//! Bearer-token authentication of API requests (digests compared, failures throttled per
//! client address), the token's scope, and the role checks every route makes.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::app::state::AppState;
use crate::identity::admins::{self, Identity, Role, TokenBearer, TokenCheck};
use crate::identity::provenance::Provenance;
use crate::identity::secret::{Lane, SecretError};

/// How long a verified token is trusted without reading its row again. Revoking a token or
/// disabling an admin through this appliance clears the cache at once; a change made
/// elsewhere (the CLI, another instance) clears it when `serve` notices the database moved.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Failed token uses from one address within [`TOKEN_FAILURE_WINDOW`] before the address
/// must wait. A script with a revoked token trips it within seconds; a person never does.
pub const TOKEN_FAILURES: usize = 20;
pub const TOKEN_FAILURE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Verified tokens by SHA-256 of their text, so that a busy client costs no read per
/// request, and a generation that tells open event streams to check their token again.
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (TokenBearer, Instant)>>,
    cleared: tokio::sync::watch::Sender<u64>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::default(),
            cleared: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl TokenCache {
    fn get(&self, key: &[u8; 32]) -> Option<TokenBearer> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(bearer, _)| bearer.clone())
    }

    fn put(&self, key: [u8; 32], bearer: TokenBearer) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
            entries.insert(key, (bearer, Instant::now()));
        }
    }

    /// Forgets every verified token (one was revoked, an admin disabled, or the database
    /// changed elsewhere) and wakes the open event streams to check theirs.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
        self.cleared.send_modify(|generation| *generation += 1);
    }

    /// Changes whenever the cache is cleared.
    pub fn watch_clears(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cleared.subscribe()
    }
}

/// The admin making this request, established from its bearer token, and the token's
/// scope: a read-only token is refused here on anything but GET and HEAD, so that no route
/// that changes something can forget it.
pub struct Authenticated {
    pub bearer: TokenBearer,
    /// The token as presented, for a response held open on it (the event stream) to
    /// check again.
    pub token: String,
}

impl Authenticated {
    pub fn identity(&self) -> &Identity {
        &self.bearer.identity
    }

    pub fn require_policy_writer(&self) -> Result<&Identity, ApiError> {
        if self.identity().role.can_change_policy() {
            Ok(self.identity())
        } else {
            Err(ApiError::Forbidden(self.identity().role.as_str()))
        }
    }

    pub fn require_admin(&self) -> Result<&Identity, ApiError> {
        if self.identity().role == Role::Admin {
            Ok(self.identity())
        } else {
            Err(ApiError::Forbidden(self.identity().role.as_str()))
        }
    }

    /// The provenance of a change made with this request: its token, through the API.
    /// Refused for a token whose scope may not change anything (a second check after the
    /// method's, for a change a route might make on a GET).
    pub fn change_provenance(&self) -> Result<Provenance, ApiError> {
        if !self.bearer.scope.may_change() {
            return Err(ApiError::TokenScope(self.bearer.scope));
        }
        Ok(self.bearer.provenance())
    }
}

/// Whether a request with this method only reads.
fn only_reads(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// The admin a token belongs to, if it is valid now. From the cache when it was verified
/// lately; otherwise the attempt is reserved with the client's throttle first (so a burst
/// of bad tokens is cut off at the limit, however many arrive at once), then the row is
/// read and the digest compared.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    client: Option<IpAddr>,
) -> Result<TokenBearer, ApiError> {
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(bearer) = state.tokens.get(&key) {
        return Ok(bearer);
    }
    let reservation = client
        .map(|addr| state.token_throttle.reserve(addr))
        .transpose()
        .map_err(ApiError::TooManyAttempts)?;
    let now = state.clock.now();
    let presented = token.to_owned();
    let check = state
        .read(move |conn| Ok(admins::check_token(conn, &presented, now)?))
        .await?;
    let bearer = match check {
        TokenCheck::Valid(bearer) => Some(bearer),
        TokenCheck::Invalid => None,
        TokenCheck::Legacy {
            token_id,
            phc,
            secret,
            bearer,
        } => {
            let pool = crate::identity::secret::pool();
            let matches = pool
                .verify(Lane::General, phc.clone(), secret.clone())
                .await
                .map_err(|e| match e {
                    SecretError::Busy => ApiError::Busy,
                    other => ApiError::Internal(other.to_string()),
                })?;
            if matches {
                state
                    .read(move |conn| {
                        Ok(admins::upgrade_legacy_token(
                            conn, token_id, &phc, &secret, now,
                        )?)
                    })
                    .await?;
            }
            matches.then_some(bearer)
        }
    };
    match bearer {
        Some(bearer) => {
            // A right token does not forgive the address's failures: one valid token must
            // not be a way to keep guessing others.
            drop(reservation);
            state.tokens.put(key, bearer.clone());
            Ok(bearer)
        }
        None => {
            if let Some(reservation) = reservation {
                reservation.failed();
            }
            Err(ApiError::Unauthenticated)
        }
    }
}

/// Whether a token that was valid is still valid, for a response held open on it: from
/// the cache, else one read; never throttled (it is no new attempt).
pub async fn still_valid(state: &AppState, token: &str) -> bool {
    authenticate(state, token, None).await.is_ok()
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let client = super::client_addr::client_addr(req);
        let only_reads = only_reads(req.method());
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(ApiError::Unauthenticated);
            };
            let bearer = authenticate(&state, &token, client).await?;
            if !only_reads && !bearer.scope.may_change() {
                return Err(ApiError::TokenScope(bearer.scope));
            }
            Ok(Authenticated { bearer, token })
        })
    }
}
