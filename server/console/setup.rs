//! The first admin, made in the browser: while no admin exists, `serve` writes a one-time
//! setup code to a file only the installer can read, and /setup makes whoever types it in
//! the first admin.

use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::kit::session::{self, session_cookie};
use super::kit::{PageError, page_with_status, see_other};
use crate::app::state::AppState;
use crate::config::Config;
use crate::entities::{ChangeContext, ChangeError};
use crate::identity::admins::{self, AdminInput, Role};
use crate::identity::provenance::Provenance;
use crate::identity::secret::constant_time_eq;
use crate::identity::sessions::Sessions;
use crate::store::DbPool;
use crate::store::audit::{self, AuditEntry};
use crate::web::error::ApiError;

/// The file in the data folder that holds the setup code while no admin exists.
pub const SETUP_CODE_FILE: &str = "first-admin-code";

fn code_path(config: &Config) -> PathBuf {
    config.data_dir.join(SETUP_CODE_FILE)
}

/// At start: with no admin, writes a fresh setup code (readable by this user only) and
/// returns the file's path; with admins, removes a code left from before. The code itself
/// is never logged: a log is read by more people than the data folder.
pub fn prepare(config: &Config, pool: &DbPool) -> anyhow::Result<Option<PathBuf>> {
    let path = code_path(config);
    let mut conn = pool.get()?;
    if admins::count_admins(&mut conn)? > 0 {
        remove_code(&path)?;
        return Ok(None);
    }
    // On PostgreSQL nothing else has made the data folder yet.
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data folder {} for the setup code (set data_dir or GATEHOUSE_DATA_DIR): {e}",
            config.data_dir.display()
        )
    })?;
    write_code(&path, &Sessions::sign_in_token())?;
    Ok(Some(path))
}

fn write_code(path: &Path, code: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write the setup code to {}: {e}", path.display()))?;
    // A file left by an earlier start may have looser permissions than `mode` gives new
    // ones: tighten them before the new code goes in.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{code}")?;
    file.sync_all()?;
    Ok(())
}

fn remove_code(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot remove the used setup code {}: {e}",
            path.display()
        )),
    }
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    csrf: String,
    /// Where the code is, as the installer would look for it.
    code_file: String,
    username: String,
    problems: Vec<String>,
}

fn setup_form(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    username: String,
    problems: Vec<String>,
) -> Result<HttpResponse, PageError> {
    let csrf = Sessions::sign_in_token();
    let response = page_with_status(
        status,
        &SetupPage {
            csrf: csrf.clone(),
            code_file: code_path(&state.config).display().to_string(),
            username,
            problems,
        },
    )?;
    session::with_form_cookie(req, "/setup", csrf, response)
}

async fn admins_exist(state: &AppState) -> Result<bool, PageError> {
    Ok(state
        .read(|conn| Ok(admins::count_admins(conn)? > 0))
        .await?)
}

/// Whether the sign-in page should offer the first-admin setup.
pub async fn needed(state: &AppState) -> bool {
    matches!(admins_exist(state).await, Ok(false))
}

/// GET /setup
pub async fn form(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    if admins_exist(&state).await? {
        return Ok(see_other("/login"));
    }
    setup_form(&req, &state, StatusCode::OK, String::new(), Vec::new())
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    csrf: String,
}

/// What stopped the first admin from being made.
enum Refusal {
    /// Someone made an admin meanwhile.
    Done,
    Invalid(Vec<String>),
}

/// POST /setup
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    // Once an admin exists this page is done, whatever is posted to it.
    if admins_exist(&state).await? {
        return Ok(see_other("/login"));
    }
    let form: SetupForm =
        serde_urlencoded::from_bytes(&body).map_err(|e| PageError::BadForm(e.to_string()))?;
    session::check_form_cookie(&req, &form.csrf)?;
    let username = form.username.trim().to_owned();
    let peer = crate::web::client_addr::client_addr(&req);
    // Wrong codes count as failed sign-ins: the same per-address wait applies.
    let reservation = match peer
        .map(|ip| state.sessions.throttle.reserve(ip))
        .transpose()
    {
        Ok(reservation) => reservation,
        Err(wait) => {
            return setup_form(
                &req,
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                username,
                vec![format!(
                    "Too many wrong setup codes from this computer. {}",
                    crate::identity::throttle::Throttle::wait_words(wait)
                )],
            );
        }
    };
    let path = code_path(&state.config);
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    let expected = expected.trim();
    if expected.is_empty() || !constant_time_eq(expected, form.code.trim()) {
        if let Some(reservation) = reservation {
            reservation.failed();
        }
        tracing::info!(remote = ?peer, "a first-admin setup was refused: wrong setup code");
        let problem = if expected.is_empty() {
            format!(
                "There is no setup code on this appliance. Restart `gatehouse serve`: with no \
                 admin it writes one to {}.",
                path.display()
            )
        } else {
            format!(
                "That is not the setup code. Copy it from {} on the appliance.",
                path.display()
            )
        };
        return setup_form(&req, &state, StatusCode::FORBIDDEN, username, vec![problem]);
    }
    if form.password != form.password_again {
        return setup_form(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            username,
            vec!["The two passwords differ. Type the same password twice.".to_owned()],
        );
    }
    let now = state.clock.now();
    let remote = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let app = state.clone();
    let input = AdminInput {
        username: username.clone(),
        password: form.password.clone(),
        role: Role::Admin.as_str().to_owned(),
    };
    // One writer at a time in this process: two setups racing cannot both see no admin.
    let made = state
        .write(move |conn| {
            if admins::count_admins(conn)? > 0 {
                return Ok(Err(Refusal::Done));
            }
            let provenance = Provenance::setup_code();
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            let view = match admins::create_admin(conn, &input, &ctx) {
                Ok(view) => view,
                Err(ChangeError::Invalid(fields)) => {
                    return Ok(Err(Refusal::Invalid(
                        fields
                            .0
                            .into_iter()
                            .flat_map(|(field, messages)| {
                                messages.into_iter().map(move |m| format!("{field}: {m}"))
                            })
                            .collect(),
                    )));
                }
                Err(other) => return Err(ApiError::from(other)),
            };
            let identity = admins::Identity {
                admin_id: view.id,
                username: view.username.clone(),
                role: Role::Admin,
            };
            let signed_in = Provenance::console(&identity);
            admins::note_sign_in(conn, view.id, now)?;
            let (secret, _) = app.sessions.open(conn, identity, now, &remote)?;
            // The setup signs the new admin in: recorded like any other console sign-in.
            audit::append(
                conn,
                &AuditEntry {
                    provenance: &signed_in,
                    action: "sign_in",
                    entity: "session",
                    entity_id: None,
                    summary: format!(
                        "{} signed in to the console from {remote} (the first admin, through \
                         /setup)",
                        view.username
                    ),
                    before: None,
                    after: None,
                },
                now,
            )
            .map_err(ApiError::from)?;
            Ok(Ok(secret))
        })
        .await?;
    match made {
        Ok(secret) => {
            if let Some(reservation) = reservation {
                reservation.succeeded();
            }
            if let Err(e) = remove_code(&path) {
                // The admin exists, so the code opens nothing any more; say so and go on.
                tracing::warn!("{e}; it is of no use now that an admin exists");
            }
            tracing::info!(remote = ?peer, "the first admin was made through /setup");
            let mut response = see_other("/");
            response
                .add_cookie(&session_cookie(&req, secret))
                .map_err(|e| PageError::Internal(e.to_string()))?;
            Ok(response)
        }
        Err(Refusal::Done) => Ok(see_other("/login")),
        Err(Refusal::Invalid(problems)) => setup_form(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            username,
            problems,
        ),
    }
}
