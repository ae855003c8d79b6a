//! Admin users and API tokens, each a searched and paged list on a page of its own
//! (`/admins`, `/tokens`): who may sign in with which role, disabling and new passwords
//! (which end their sessions), and tokens shown once. Changes are for admins only.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::kit::listing::{ListQuery, Paged};
use super::kit::notice::{Notice, see_other_saying};
use super::kit::session::{Posted, Viewer};
use super::kit::{Chrome, PageError, Problems, Section, page_with_status};
use super::people::end_of_day;
use crate::app::state::AppState;
use crate::entities::{ChangeContext, ChangeError, FieldErrors};
use crate::identity::admins::{self, AdminInput, AdminView, IssuedToken, TokenScope, TokenView};
use crate::web::error::ApiError;

/// The forms of the admins page, as typed (passwords are never typed back).
#[derive(Deserialize, Default, Clone)]
pub struct AdminForms {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

/// The issue-a-token form of the tokens page, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct TokenForm {
    #[serde(default)]
    token_name: String,
    #[serde(default)]
    token_admin: String,
    #[serde(default)]
    token_expires: String,
    /// `read_only` or `full` (`admins::TokenScope`).
    #[serde(default)]
    token_scope: String,
}

#[derive(Template)]
#[template(path = "admins.html")]
struct AdminsPage {
    chrome: Chrome,
    /// The admins list's search and page.
    list: Paged,
    /// The page of admins the list shows.
    admins: Vec<AdminView>,
    typed: AdminForms,
    problems: Problems,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    /// The tokens list's search and page.
    list: Paged,
    /// The page of tokens the list shows, each with its admin's username.
    tokens: Vec<(TokenView, String)>,
    /// Every admin who may hold a token, for the issue-a-token form.
    token_holders: Vec<AdminView>,
    typed: TokenForm,
    problems: Problems,
    /// A token just issued: its text is shown on this page only.
    issued: Option<IssuedToken>,
}

/// Admins per page of the list.
const ADMINS_PAGE: i64 = 50;

/// API tokens per page of their list.
const TOKENS_PAGE: i64 = 50;

/// What the admins page shows besides its list's position: the forms as typed and their
/// messages.
struct Shown {
    typed: AdminForms,
    problems: Problems,
}

impl Shown {
    fn form(typed: AdminForms, problems: Problems) -> Shown {
        Shown { typed, problems }
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
    shown: Shown,
) -> Result<HttpResponse, PageError> {
    let search = query.search();
    let paging = query.rows(ADMINS_PAGE);
    let (listed, total) = state
        .read(move |conn| Ok(admins::search_admins(conn, search.as_deref(), paging)?))
        .await?;
    let Shown { typed, problems } = shown;
    let status = Problems::status(problems.is_empty());
    page_with_status(
        status,
        &AdminsPage {
            chrome: Chrome::new(state, viewer, Section::Admins),
            list: Paged::new("/admins", &query, total, ADMINS_PAGE),
            admins: listed,
            typed,
            problems,
        },
    )
}

/// GET /admins
pub async fn show(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let typed = AdminForms {
        role: "operator".to_owned(),
        ..Default::default()
    };
    render(
        &state,
        &viewer,
        query.into_inner(),
        Shown::form(typed, Problems::default()),
    )
    .await
}

/// Runs an admin-management change; invalid input brings the page back with messages.
async fn manage<T, F>(
    state: &web::Data<AppState>,
    viewer: &Viewer,
    f: F,
) -> Result<Result<T, Problems>, PageError>
where
    T: Send + 'static,
    F: FnOnce(&mut crate::store::DbConnection, &ChangeContext<'_>) -> Result<T, ChangeError>
        + Send
        + 'static,
{
    viewer.may_manage_admins()?;
    let provenance = viewer.provenance();
    let now = state.clock.now();
    let result = state
        .write(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            f(conn, &ctx).map_err(ApiError::from)
        })
        .await;
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(ApiError::Invalid(fields)) => Ok(Err(Problems(fields))),
        Err(other) => Err(other.into()),
    }
}

/// The typed forms without the password, to show again.
fn without_password(form: &AdminForms) -> AdminForms {
    AdminForms {
        password: String::new(),
        ..form.clone()
    }
}

/// POST /admins: creates an admin user.
pub async fn create(
    state: web::Data<AppState>,
    posted: Posted<AdminForms>,
) -> Result<HttpResponse, PageError> {
    let input = AdminInput {
        username: posted.form.username.trim().to_owned(),
        password: posted.form.password.clone(),
        role: posted.form.role.clone(),
    };
    let outcome = manage(&state, &posted.viewer, move |conn, ctx| {
        admins::create_admin(conn, &input, ctx)
    })
    .await?;
    match outcome {
        Ok(view) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/admins",
            Notice::done(format!(
                "{} can now sign in as {}.",
                view.username,
                view.role.as_str()
            )),
        )),
        Err(problems) => {
            let typed = without_password(&posted.form);
            render(
                &state,
                &posted.viewer,
                ListQuery::default(),
                Shown::form(typed, problems),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct AdminAction {
    #[serde(default)]
    password: String,
}

/// The admin named in the path, with their id, for ending their sessions.
async fn admin_id(state: &AppState, username: String) -> Result<i64, PageError> {
    let admins = state.read(|conn| Ok(admins::list_admins(conn)?)).await?;
    admins
        .iter()
        .find(|a| a.username == username)
        .map(|a| a.id)
        .ok_or_else(|| PageError::NotFound(format!("There is no admin named {username}.")))
}

async fn set_disabled(
    state: web::Data<AppState>,
    posted: Posted<AdminAction>,
    username: String,
    disabled: bool,
) -> Result<HttpResponse, PageError> {
    let actor = posted.viewer.may_manage_admins()?.username.clone();
    let provenance = posted.viewer.provenance();
    if disabled && actor == username {
        // Back to the list, saying why, rather than a page that leads nowhere.
        return Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/admins",
            Notice::refused("You cannot disable yourself: ask another admin."),
        ));
    }
    let id = admin_id(&state, username.clone()).await?;
    let now = state.clock.now();
    let app = state.clone();
    let said = if disabled {
        format!("{username} is disabled: their sessions and API tokens stopped working")
    } else {
        format!("{username} is enabled: they can sign in again")
    };
    state
        .write(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            admins::set_disabled(conn, &username, disabled, &ctx)?;
            if disabled {
                app.sessions.close_all_of(conn, id)?;
            }
            Ok(())
        })
        .await?;
    // Their API tokens stop at once too, not when the token cache expires.
    state.tokens.clear();
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        "/admins",
        Notice::done(said),
    ))
}

/// POST /admins/{username}/disable: their sign-ins, sessions and tokens stop working.
pub async fn disable(
    state: web::Data<AppState>,
    posted: Posted<AdminAction>,
    username: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    set_disabled(state, posted, username.into_inner(), true).await
}

/// POST /admins/{username}/enable
pub async fn enable(
    state: web::Data<AppState>,
    posted: Posted<AdminAction>,
    username: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    set_disabled(state, posted, username.into_inner(), false).await
}

/// POST /admins/{username}/password: a new password, which also unlocks the account and
/// ends the admin's other sessions.
pub async fn set_password(
    state: web::Data<AppState>,
    posted: Posted<AdminAction>,
    username: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_manage_admins()?;
    let provenance = posted.viewer.provenance();
    let username = username.into_inner();
    let id = admin_id(&state, username.clone()).await?;
    let password = posted.form.password.clone();
    let now = state.clock.now();
    let app = state.clone();
    let who = username.clone();
    let result = state
        .write(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            admins::set_password(conn, &who, &password, &ctx).map_err(ApiError::from)?;
            app.sessions.close_all_of(conn, id)?;
            Ok(())
        })
        .await;
    match result {
        Ok(()) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/admins",
            Notice::done(format!(
                "{username} has a new password; their sessions have ended."
            )),
        )),
        Err(ApiError::Invalid(fields)) => {
            let mut problems = FieldErrors::default();
            for (_, messages) in fields.0 {
                for m in messages {
                    problems.add(format!("password-{username}"), m);
                }
            }
            render(
                &state,
                &posted.viewer,
                ListQuery::default(),
                Shown::form(AdminForms::default(), Problems(problems)),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// GET /tokens
pub async fn tokens(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    // Least privilege first: a token that only reads unless full is chosen.
    let typed = TokenForm {
        token_admin: viewer.identity().username.clone(),
        token_scope: TokenScope::ReadOnly.as_str().to_owned(),
        ..Default::default()
    };
    render_tokens(
        &state,
        &viewer,
        query.into_inner(),
        typed,
        Problems::default(),
        None,
    )
    .await
}

/// The API tokens, newest first, searched by name and by their admin's username, with
/// the issue-a-token form and a token just issued.
async fn render_tokens(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
    typed: TokenForm,
    problems: Problems,
    issued: Option<IssuedToken>,
) -> Result<HttpResponse, PageError> {
    let search = query.search();
    let paging = query.rows(TOKENS_PAGE);
    let (tokens, total, everyone) = state
        .read(move |conn| {
            let (tokens, total) = admins::search_tokens(conn, search.as_deref(), paging)?;
            let everyone = admins::list_admins(conn)?;
            Ok((tokens, total, everyone))
        })
        .await?;
    let status = Problems::status(problems.is_empty());
    page_with_status(
        status,
        &TokensPage {
            chrome: Chrome::new(state, viewer, Section::Admins),
            list: Paged::new("/tokens", &query, total, TOKENS_PAGE),
            tokens,
            token_holders: everyone.into_iter().filter(|a| !a.disabled).collect(),
            typed,
            problems,
            issued,
        },
    )
}

/// POST /tokens: issues an API token, shown once.
pub async fn issue_token(
    state: web::Data<AppState>,
    posted: Posted<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let tz = Chrome::new(&state, &posted.viewer, Section::Admins).timezone;
    let form = posted.form.clone();
    let outcome = manage(&state, &posted.viewer, move |conn, ctx| {
        let expires = match form.token_expires.trim() {
            "" => None,
            text => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(day) => end_of_day(day, tz),
                Err(_) => {
                    return Err(ChangeError::invalid(
                        "token_expires",
                        "enter a date like 2027-03-31",
                    ));
                }
            },
        };
        // A form sent without the field gets what the form offers first: read-only.
        let scope = match form.token_scope.trim() {
            "" => TokenScope::ReadOnly,
            text => text
                .parse::<TokenScope>()
                .map_err(|message| ChangeError::invalid("token_scope", message))?,
        };
        admins::issue_token(
            conn,
            form.token_admin.trim(),
            form.token_name.trim(),
            scope,
            expires,
            ctx,
        )
        .map_err(|e| match e {
            ChangeError::Invalid(fields) => {
                let mut renamed = FieldErrors::default();
                for (field, messages) in fields.0 {
                    let field = match field.as_str() {
                        "name" => "token_name".to_owned(),
                        "username" => "token_admin".to_owned(),
                        "expires_at" => "token_expires".to_owned(),
                        _ => field,
                    };
                    for m in messages {
                        renamed.add(field.clone(), m);
                    }
                }
                ChangeError::Invalid(renamed)
            }
            other => other,
        })
    })
    .await?;
    match outcome {
        // Rendered, not redirected: the token must not travel in a URL or show again.
        Ok(issued) => {
            render_tokens(
                &state,
                &posted.viewer,
                ListQuery::default(),
                TokenForm::default(),
                Problems::default(),
                Some(issued),
            )
            .await
        }
        Err(problems) => {
            render_tokens(
                &state,
                &posted.viewer,
                ListQuery::default(),
                posted.form.clone(),
                problems,
                None,
            )
            .await
        }
    }
}

/// POST /tokens/{id}/revoke
pub async fn revoke_token(
    state: web::Data<AppState>,
    posted: Posted<AdminAction>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_manage_admins()?;
    let provenance = posted.viewer.provenance();
    let id = id.into_inner();
    let now = state.clock.now();
    state
        .write(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            admins::revoke_token(conn, id, &ctx)?;
            Ok(())
        })
        .await?;
    state.tokens.clear();
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        "/tokens",
        Notice::done(format!(
            "API token {id} revoked: requests that use it are refused from now on"
        )),
    ))
}
