//! Bearer-token authentication of API requests and the role checks every route makes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::admins::{self, Identity, Role};

/// How long a verified token is trusted without another argon2id check. Revoking a token or
/// disabling an admin through this appliance clears the cache at once.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Verified tokens by SHA-256 of their text, so that argon2id runs once a minute per token
/// rather than on every request.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

impl TokenCache {
    fn get(&self, key: &[u8; 32]) -> Option<Identity> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(identity, _)| identity.clone())
    }

    fn put(&self, key: [u8; 32], identity: Identity) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
            entries.insert(key, (identity, Instant::now()));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// The admin making this request, established from its bearer token.
pub struct Authenticated(pub Identity);

impl Authenticated {
    pub fn require_policy_writer(&self) -> Result<&Identity, ApiError> {
        if self.0.role.can_change_policy() {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(self.0.role.as_str()))
        }
    }

    pub fn require_admin(&self) -> Result<&Identity, ApiError> {
        if self.0.role == Role::Admin {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(self.0.role.as_str()))
        }
    }
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
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(ApiError::Unauthenticated);
            };
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(identity) = state.tokens.get(&key) {
                return Ok(Authenticated(identity));
            }
            let pool = state.db.clone();
            let now = state.clock.now();
            let identity = web::block(move || -> Result<Option<Identity>, ApiError> {
                let mut conn = pool.get()?;
                Ok(admins::verify_token(&mut conn, &token, now)?)
            })
            .await??;
            match identity {
                Some(identity) => {
                    state.tokens.put(key, identity.clone());
                    Ok(Authenticated(identity))
                }
                None => Err(ApiError::Unauthenticated),
            }
        })
    }
}
