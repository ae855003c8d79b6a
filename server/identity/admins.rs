//! Admin identity: admin users with argon2id passwords and a role, and their API tokens
//! (shown once, stored as SHA-256 digests). Every change here is audited.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::utc;
use crate::entities::{ChangeContext, ChangeError, FieldErrors, Page, like_pattern, lower};
use crate::identity::provenance::{Channel, Provenance, SIGN_IN_LOCKOUT};
use crate::identity::secret::{constant_time_eq, digest_hex, hash_secret};
use crate::store::DbConnection;
use crate::store::audit::{self, AuditEntry};
use crate::store::rows::{AdminUserRow, ApiTokenRow};
use crate::store::schema::{admin_users, api_tokens};

/// What an admin may do. Auditors read everything and change nothing; operators run the
/// building but cannot manage admins; admins can do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    /// May create, change and delete policy (people, doors, levels, …).
    pub fn can_change_policy(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }

    /// May create and change admin users and their tokens.
    pub fn can_manage_admins(self) -> bool {
        self == Role::Admin
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!(
                "'{other}' is not a role; use admin, operator or auditor"
            )),
        }
    }
}

/// What an API token may do, within its admin's role: read only (every GET), or all its
/// admin's role allows. Stored as text, so that a scope for SCIM clients can be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    ReadOnly,
    Full,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::ReadOnly => "read_only",
            TokenScope::Full => "full",
        }
    }

    /// May change things (POST, PUT, DELETE), as far as its admin's role allows.
    pub fn may_change(self) -> bool {
        self == TokenScope::Full
    }

    /// In words, for summaries and pages: "read-only", "full".
    pub fn label(self) -> &'static str {
        match self {
            TokenScope::ReadOnly => "read-only",
            TokenScope::Full => "full",
        }
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TokenScope {
    type Err = String;
    fn from_str(s: &str) -> Result<TokenScope, String> {
        match s {
            "read_only" => Ok(TokenScope::ReadOnly),
            "full" => Ok(TokenScope::Full),
            other => Err(format!(
                "'{other}' is not a token scope; use read_only or full"
            )),
        }
    }
}

/// The admin on whose behalf a request or command acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub admin_id: i64,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminView {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// Set while wrong passwords keep the account locked.
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminInput {
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub admin_user_id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// `read_only`: every GET, no change; `full`: all its admin's role allows.
    pub scope: TokenScope,
}

/// A valid API token as presented: its admin, and the token itself (for the provenance of
/// what it changes and its scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBearer {
    pub identity: Identity,
    pub token_id: i64,
    pub token_name: String,
    pub scope: TokenScope,
}

impl TokenBearer {
    /// The provenance of a change made with this token through the API.
    pub fn provenance(&self) -> Provenance {
        Provenance::api_token(&self.identity, self.token_id, &self.token_name)
    }
}

/// A token as handed out: `token` is shown this once and cannot be recovered later.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

fn admin_view(r: AdminUserRow) -> AdminView {
    AdminView {
        role: r.role.parse().unwrap_or(Role::Auditor),
        id: r.id,
        username: r.username,
        disabled: r.disabled,
        created_at: utc(r.created_at),
        last_login_at: r.last_login_at.map(utc),
        locked_until: r.locked_until.map(utc),
    }
}

fn token_view(r: ApiTokenRow) -> TokenView {
    TokenView {
        // A scope this version does not know reads as the narrower one here; such a token
        // is refused outright when presented (`check_token`).
        scope: r.scope.parse().unwrap_or(TokenScope::ReadOnly),
        id: r.id,
        admin_user_id: r.admin_user_id,
        name: r.name,
        created_at: utc(r.created_at),
        expires_at: r.expires_at.map(utc),
        last_used_at: r.last_used_at.map(utc),
        revoked: r.revoked,
    }
}

pub const MIN_PASSWORD_CHARS: usize = 12;

fn audit(
    conn: &mut DbConnection,
    ctx: &ChangeContext<'_>,
    action: &str,
    entity: &str,
    id: i64,
    summary: String,
    after: Option<serde_json::Value>,
) -> QueryResult<()> {
    audit::append(
        conn,
        &AuditEntry {
            provenance: ctx.provenance,
            action,
            entity,
            entity_id: Some(id.to_string()),
            summary,
            before: None,
            after,
        },
        ctx.now,
    )
    .map(|_| ())
}

/// Creates an admin user. The password is hashed with argon2id; it is never stored.
pub fn create_admin(
    conn: &mut DbConnection,
    input: &AdminInput,
    ctx: &ChangeContext<'_>,
) -> Result<AdminView, ChangeError> {
    let mut errors = FieldErrors::default();
    let username = input.username.trim();
    if username.is_empty()
        || username.len() > 64
        || !username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
    {
        errors.add(
            "username",
            "must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
        );
    }
    if input.password.chars().count() < MIN_PASSWORD_CHARS {
        errors.add(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        );
    }
    let role = errors.parse::<Role>("role", &input.role);
    crate::store::write_transaction(conn, move |conn| {
        let taken: bool = diesel::select(diesel::dsl::exists(
            admin_users::table.filter(admin_users::username.eq(username)),
        ))
        .get_result(conn)?;
        if taken {
            errors.add(
                "username",
                format!("an admin named '{username}' already exists"),
            );
        }
        errors.into_result()?;
        let role = role.unwrap_or(Role::Auditor);
        let hash = hash_secret(&input.password)
            .map_err(|e| ChangeError::invalid("password", e.to_string()))?;
        let now = ctx.stamp();
        let id: i64 = diesel::insert_into(admin_users::table)
            .values((
                admin_users::username.eq(username),
                admin_users::password_hash.eq(hash),
                admin_users::role.eq(role.as_str()),
                admin_users::disabled.eq(false),
                admin_users::created_at.eq(now),
                admin_users::updated_at.eq(now),
            ))
            .returning(admin_users::id)
            .get_result(conn)?;
        let row = admin_users::table
            .find(id)
            .select(AdminUserRow::as_select())
            .first(conn)?;
        let view = admin_view(row);
        audit(
            conn,
            ctx,
            "create",
            "admin_user",
            view.id,
            format!(
                "create admin '{}' with role {}",
                view.username,
                role.as_str()
            ),
            serde_json::to_value(&view).ok(),
        )?;
        Ok(view)
    })
}

pub fn list_admins(conn: &mut DbConnection) -> QueryResult<Vec<AdminView>> {
    Ok(admin_users::table
        .order(admin_users::username)
        .select(AdminUserRow::as_select())
        .load(conn)?
        .into_iter()
        .map(admin_view)
        .collect())
}

/// One page of the admins whose username contains `q` (any case), by username, and how
/// many match in all.
pub fn search_admins(
    conn: &mut DbConnection,
    q: Option<&str>,
    page: Page,
) -> QueryResult<(Vec<AdminView>, i64)> {
    let query = || {
        let mut query = admin_users::table.into_boxed();
        if let Some(text) = q {
            query = query.filter(
                lower(admin_users::username)
                    .like(like_pattern(text))
                    .escape('\\'),
            );
        }
        query
    };
    let total = query().count().get_result(conn)?;
    let rows = query()
        .order(admin_users::username)
        .offset(page.offset)
        .limit(page.limit)
        .select(AdminUserRow::as_select())
        .load(conn)?;
    Ok((rows.into_iter().map(admin_view).collect(), total))
}

fn admin_by_name(conn: &mut DbConnection, username: &str) -> QueryResult<Option<AdminUserRow>> {
    admin_users::table
        .filter(admin_users::username.eq(username))
        .select(AdminUserRow::as_select())
        .first(conn)
        .optional()
}

/// The admin with this username, or an error naming the username.
fn existing_admin(conn: &mut DbConnection, username: &str) -> Result<AdminUserRow, ChangeError> {
    admin_by_name(conn, username)?
        .ok_or_else(|| ChangeError::invalid("username", format!("no admin named '{username}'")))
}

/// Sets a new password for an admin and records that it happened (not the password).
pub fn set_password(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
    ctx: &ChangeContext<'_>,
) -> Result<(), ChangeError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ChangeError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let hash =
        hash_secret(password).map_err(|e| ChangeError::invalid("password", e.to_string()))?;
    crate::store::write_transaction(conn, |conn| {
        let admin = existing_admin(conn, username)?;
        diesel::update(admin_users::table.find(admin.id))
            .set((
                admin_users::password_hash.eq(hash),
                admin_users::updated_at.eq(ctx.stamp()),
                // A new password is how an admin unlocks a locked-out colleague.
                admin_users::failed_logins.eq(0),
                admin_users::locked_until.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)?;
        audit(
            conn,
            ctx,
            "update",
            "admin_user",
            admin.id,
            format!("set password of admin '{username}'"),
            None,
        )?;
        Ok(())
    })
}

/// Enables or disables an admin; a disabled admin's tokens stop working at once.
pub fn set_disabled(
    conn: &mut DbConnection,
    username: &str,
    disabled: bool,
    ctx: &ChangeContext<'_>,
) -> Result<(), ChangeError> {
    crate::store::write_transaction(conn, |conn| {
        let admin = existing_admin(conn, username)?;
        diesel::update(admin_users::table.find(admin.id))
            .set((
                admin_users::disabled.eq(disabled),
                admin_users::updated_at.eq(ctx.stamp()),
            ))
            .execute(conn)?;
        let verb = if disabled { "disable" } else { "enable" };
        audit(
            conn,
            ctx,
            "update",
            "admin_user",
            admin.id,
            format!("{verb} admin '{username}'"),
            None,
        )?;
        Ok(())
    })
}

/// Consecutive wrong passwords after which an account is locked for [`LOCKOUT`].
pub const MAX_FAILED_SIGN_INS: i32 = 5;
/// How long a locked account refuses even the right password.
pub const LOCKOUT: chrono::Duration = chrono::Duration::minutes(15);

/// What a sign-in attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    Accepted(Identity),
    /// Unknown username or wrong password: the two are not told apart.
    Refused,
    /// Too many wrong passwords in a row; the account opens again at `until`.
    Locked {
        until: DateTime<Utc>,
    },
    /// The right password for an account that an admin disabled.
    Disabled,
}

/// What a password must be checked against for a sign-in: read first, checked with
/// argon2id away from any lock (`secret::pool`), then settled by [`settle_sign_in`].
#[derive(Debug, Clone)]
pub struct SignInSubject {
    /// The admin whose password is checked; None for an unknown username and a locked
    /// account, which are checked against [`dummy_hash`] so that both cost the same as a
    /// real check and answer the same.
    admin_id: Option<i64>,
    /// The stored hash, None meaning [`dummy_hash`].
    password_hash: Option<String>,
    /// Set when the account is locked now.
    locked_until: Option<DateTime<Utc>>,
}

impl SignInSubject {
    /// The hash to check the typed password against.
    pub fn hash_to_check(&self) -> &str {
        self.password_hash
            .as_deref()
            .unwrap_or_else(|| dummy_hash())
    }

    /// The outcome when there is no account to update (an unknown username, a locked
    /// account): settled without a write, so it never waits for the writer.
    pub fn settled_without_writing(&self) -> Option<SignIn> {
        match (self.admin_id, self.locked_until) {
            (Some(_), _) => None,
            (None, Some(until)) => Some(SignIn::Locked { until }),
            (None, None) => Some(SignIn::Refused),
        }
    }
}

/// Reads what a sign-in as `username` is checked against (one read, no write).
pub fn sign_in_subject(
    conn: &mut DbConnection,
    username: &str,
    now: DateTime<Utc>,
) -> QueryResult<SignInSubject> {
    let unknown = SignInSubject {
        admin_id: None,
        password_hash: None,
        locked_until: None,
    };
    let Some(admin) = admin_by_name(conn, username)? else {
        return Ok(unknown);
    };
    if let Some(until) = admin.locked_until.map(utc).filter(|until| *until > now) {
        // A locked account refuses even the right password: nothing to check.
        return Ok(SignInSubject {
            locked_until: Some(until),
            ..unknown
        });
    }
    Ok(SignInSubject {
        admin_id: Some(admin.id),
        password_hash: Some(admin.password_hash),
        locked_until: None,
    })
}

/// Records what the password check of `subject` came to, counting wrong passwords: the
/// [`MAX_FAILED_SIGN_INS`]th in a row locks the account for [`LOCKOUT`]; a right password
/// resets the count and records the sign-in time. The row is read again here, on the
/// writer's connection, so that concurrent attempts count one after another.
pub fn settle_sign_in(
    conn: &mut DbConnection,
    subject: &SignInSubject,
    password_matches: bool,
    now: DateTime<Utc>,
) -> QueryResult<SignIn> {
    if let Some(outcome) = subject.settled_without_writing() {
        return Ok(outcome);
    }
    let Some(admin_id) = subject.admin_id else {
        return Ok(SignIn::Refused);
    };
    crate::store::write_transaction(conn, |conn| {
        let Some(admin) = admin_users::table
            .find(admin_id)
            .select(AdminUserRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(SignIn::Refused);
        };
        // Another attempt locked it while this password was being checked.
        if let Some(until) = admin.locked_until.map(utc).filter(|until| *until > now) {
            return Ok(SignIn::Locked { until });
        }
        let stamp = now.naive_utc();
        // Checked against a password that was changed meanwhile: neither right nor counted.
        let same_password = subject.password_hash.as_deref() == Some(admin.password_hash.as_str());
        if !same_password {
            return Ok(SignIn::Refused);
        }
        if !password_matches {
            // Counting restarts once a lock has run out.
            let failed = if admin.locked_until.is_some() {
                1
            } else {
                admin.failed_logins + 1
            };
            let locked_until = (failed >= MAX_FAILED_SIGN_INS).then(|| stamp + LOCKOUT);
            diesel::update(admin_users::table.find(admin.id))
                .set((
                    admin_users::failed_logins.eq(if locked_until.is_some() { 0 } else { failed }),
                    admin_users::locked_until.eq(locked_until),
                ))
                .execute(conn)?;
            if let Some(until) = locked_until {
                record_lockout(conn, &admin.username, admin.id, utc(until), now)?;
            }
            return Ok(match locked_until {
                Some(until) => SignIn::Locked { until: utc(until) },
                None => SignIn::Refused,
            });
        }
        if admin.disabled {
            return Ok(SignIn::Disabled);
        }
        diesel::update(admin_users::table.find(admin.id))
            .set((
                admin_users::failed_logins.eq(0),
                admin_users::locked_until.eq(None::<chrono::NaiveDateTime>),
                admin_users::last_login_at.eq(Some(stamp)),
            ))
            .execute(conn)?;
        Ok(admin.role.parse().ok().map_or(SignIn::Refused, |role| {
            SignIn::Accepted(Identity {
                admin_id: admin.id,
                username: admin.username,
                role,
            })
        }))
    })
}

/// Notes that an admin signed in other than with their password (the first admin, signed
/// in by `/setup`): their last sign-in, as a password sign-in notes it.
pub fn note_sign_in(conn: &mut DbConnection, admin_id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(admin_users::table.find(admin_id))
        .set(admin_users::last_login_at.eq(Some(crate::clock::stored(now))))
        .execute(conn)?;
    Ok(())
}

/// Records in the audit log that wrong passwords locked an admin's account.
fn record_lockout(
    conn: &mut DbConnection,
    username: &str,
    admin_id: i64,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    // The sign-in check locks the account, not an admin; only the console's sign-in form
    // checks passwords.
    let provenance = Provenance::appliance(SIGN_IN_LOCKOUT, Channel::Console);
    let ctx = ChangeContext {
        provenance: &provenance,
        now,
    };
    audit(
        conn,
        &ctx,
        "lock",
        "admin_user",
        admin_id,
        format!(
            "lock admin '{username}' until {} UTC after {MAX_FAILED_SIGN_INS} wrong passwords \
             in a row",
            until.format("%Y-%m-%d %H:%M")
        ),
        None,
    )
}

/// A real argon2id hash of nothing in particular, made once, to check unknown usernames
/// and locked accounts against.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_secret("gatehouse-unknown-admin").unwrap_or_default())
}

/// Token text: `gh_{id}_{secret}`. The id finds the row; the secret's SHA-256 is compared
/// with the stored one. (Tokens issued before digests hold an argon2id hash until their
/// first use: see [`check_token`].)
const TOKEN_PREFIX: &str = "gh_";

/// Issues a new API token for an admin with a scope. The token text is returned once.
pub fn issue_token(
    conn: &mut DbConnection,
    username: &str,
    name: &str,
    scope: TokenScope,
    expires_at: Option<DateTime<Utc>>,
    ctx: &ChangeContext<'_>,
) -> Result<IssuedToken, ChangeError> {
    let mut errors = FieldErrors::default();
    errors.text("name", name, 100);
    errors.into_result()?;
    let secret_bytes: [u8; 32] = rand::rng().random();
    let secret = hex::encode(secret_bytes);
    let hash = digest_hex(&secret);
    crate::store::write_transaction(conn, |conn| {
        let admin = existing_admin(conn, username)?;
        let id: i64 = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::admin_user_id.eq(admin.id),
                api_tokens::name.eq(name.trim()),
                api_tokens::token_hash.eq(hash),
                api_tokens::created_at.eq(ctx.stamp()),
                api_tokens::expires_at.eq(expires_at.map(crate::clock::stored)),
                api_tokens::revoked.eq(false),
                api_tokens::scope.eq(scope.as_str()),
            ))
            .returning(api_tokens::id)
            .get_result(conn)?;
        let row = api_tokens::table
            .find(id)
            .select(ApiTokenRow::as_select())
            .first(conn)?;
        let token = format!("{TOKEN_PREFIX}{}_{secret}", row.id);
        let view = token_view(row);
        audit(
            conn,
            ctx,
            "create",
            "api_token",
            view.id,
            format!(
                "issue {} token '{}' for admin '{username}'",
                scope.label(),
                view.name
            ),
            serde_json::to_value(&view).ok(),
        )?;
        Ok(IssuedToken { view, token })
    })
}

pub fn list_tokens(
    conn: &mut DbConnection,
    admin_user_id: Option<i64>,
) -> QueryResult<Vec<TokenView>> {
    let mut q = api_tokens::table
        .select(ApiTokenRow::as_select())
        .order(api_tokens::id)
        .into_boxed();
    if let Some(admin) = admin_user_id {
        q = q.filter(api_tokens::admin_user_id.eq(admin));
    }
    Ok(q.load(conn)?.into_iter().map(token_view).collect())
}

/// One page of the tokens whose name or admin's username contains `q` (any case), newest
/// first, each with its admin's username, and how many match in all.
pub fn search_tokens(
    conn: &mut DbConnection,
    q: Option<&str>,
    page: Page,
) -> QueryResult<(Vec<(TokenView, String)>, i64)> {
    let query = || {
        let mut query = api_tokens::table
            .inner_join(admin_users::table)
            .into_boxed();
        if let Some(text) = q {
            let pattern = like_pattern(text);
            query = query.filter(
                lower(api_tokens::name)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(admin_users::username).like(pattern).escape('\\')),
            );
        }
        query
    };
    let total = query().count().get_result(conn)?;
    let rows: Vec<(ApiTokenRow, String)> = query()
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .offset(page.offset)
        .limit(page.limit)
        .select((ApiTokenRow::as_select(), admin_users::username))
        .load(conn)?;
    Ok((
        rows.into_iter()
            .map(|(row, owner)| (token_view(row), owner))
            .collect(),
        total,
    ))
}

/// Revokes a token for good.
pub fn revoke_token(
    conn: &mut DbConnection,
    token_id: i64,
    ctx: &ChangeContext<'_>,
) -> Result<(), ChangeError> {
    crate::store::write_transaction(conn, |conn| {
        let updated = diesel::update(api_tokens::table.find(token_id))
            .set(api_tokens::revoked.eq(true))
            .execute(conn)?;
        if updated == 0 {
            return Err(ChangeError::NotFound {
                entity: "api_token",
                id: token_id,
            });
        }
        audit(
            conn,
            ctx,
            "update",
            "api_token",
            token_id,
            format!("revoke token {token_id}"),
            None,
        )?;
        Ok(())
    })
}

/// What a presented bearer token comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Malformed, unknown, wrong, revoked, expired, or its admin is disabled.
    Invalid,
    Valid(TokenBearer),
    /// A token issued before digests: its stored argon2id hash must be checked (on the
    /// argon2id pool), and on success [`upgrade_legacy_token`] stores its digest instead.
    Legacy {
        token_id: i64,
        phc: String,
        secret: String,
        bearer: TokenBearer,
    },
}

/// Resolves a presented bearer token to its admin. A valid token's last use is recorded;
/// an invalid one costs one read and no write.
pub fn check_token(
    conn: &mut DbConnection,
    token: &str,
    now: DateTime<Utc>,
) -> QueryResult<TokenCheck> {
    let Some((id, secret)) = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(id, secret)| id.parse::<i64>().ok().map(|id| (id, secret)))
    else {
        return Ok(TokenCheck::Invalid);
    };
    let row: Option<(ApiTokenRow, AdminUserRow)> = api_tokens::table
        .inner_join(admin_users::table)
        .filter(api_tokens::id.eq(id))
        .select((ApiTokenRow::as_select(), AdminUserRow::as_select()))
        .first(conn)
        .optional()?;
    let Some((token_row, admin)) = row else {
        return Ok(TokenCheck::Invalid);
    };
    let expired = token_row.expires_at.is_some_and(|t| utc(t) <= now);
    let Ok(role) = admin.role.parse::<Role>() else {
        return Ok(TokenCheck::Invalid);
    };
    // A scope this version does not know (written by a newer one) grants nothing here.
    let Ok(scope) = token_row.scope.parse::<TokenScope>() else {
        return Ok(TokenCheck::Invalid);
    };
    if token_row.revoked || expired || admin.disabled {
        return Ok(TokenCheck::Invalid);
    }
    let bearer = TokenBearer {
        identity: Identity {
            admin_id: admin.id,
            username: admin.username,
            role,
        },
        token_id: id,
        token_name: token_row.name,
        scope,
    };
    if token_row.token_hash.starts_with('$') {
        return Ok(TokenCheck::Legacy {
            token_id: id,
            phc: token_row.token_hash,
            secret: secret.to_owned(),
            bearer,
        });
    }
    if !constant_time_eq(&token_row.token_hash, &digest_hex(secret)) {
        return Ok(TokenCheck::Invalid);
    }
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::last_used_at.eq(crate::clock::stored(now)))
        .execute(conn)?;
    Ok(TokenCheck::Valid(bearer))
}

/// Replaces a pre-digest token's argon2id hash by its secret's digest, once its secret
/// was found right, and records the use. Only while the row still holds `phc`.
pub fn upgrade_legacy_token(
    conn: &mut DbConnection,
    token_id: i64,
    phc: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        api_tokens::table
            .find(token_id)
            .filter(api_tokens::token_hash.eq(phc)),
    )
    .set((
        api_tokens::token_hash.eq(digest_hex(secret)),
        api_tokens::last_used_at.eq(crate::clock::stored(now)),
    ))
    .execute(conn)?;
    Ok(())
}

/// How many admins exist: zero means the installer still has to create the first one.
pub fn count_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    admin_users::table.count().get_result(conn)
}
