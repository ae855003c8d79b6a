//! What every console page shares: `PageError` and its pages, `Chrome` around each page,
//! the session guards, searched lists, saving forms, site clocks and the static files.

pub mod listing;
pub mod notice;
pub mod saved;
pub mod session;
pub mod site_clock;
pub mod static_files;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::app::state::AppState;
use crate::entities::{ChangeError, FieldErrors};
use crate::identity::admins::Role;
use crate::store::history::ReadScope;
use crate::web::error::ApiError;
use session::Viewer;

/// Scripts, styles and images only from the appliance itself, no inline script or style,
/// no framing, forms only to the appliance.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Why a console request failed, and the page (or redirect) each reason gets.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("sign-in needed")]
    SignIn { next: String, htmx: bool },
    #[error("the {} role may not do this", .0.as_str())]
    Forbidden(Role),
    #[error("CSRF token missing or wrong")]
    Csrf,
    #[error("bad form: {0}")]
    BadForm(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn { .. } => StatusCode::SEE_OTHER,
            PageError::Forbidden(_) | PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::BadForm(_) => StatusCode::BAD_REQUEST,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            PageError::SignIn { next, htmx } => {
                let to = format!(
                    "/login?next={}",
                    percent_encode_query(if next.starts_with('/') { next } else { "/" })
                );
                // htmx follows a redirect inside the page it swaps; HX-Redirect makes the
                // whole browser go to the sign-in page instead.
                return if *htmx {
                    HttpResponse::Ok()
                        .insert_header(("HX-Redirect", to))
                        .finish()
                } else {
                    HttpResponse::SeeOther()
                        .insert_header(("Location", to))
                        .finish()
                };
            }
            PageError::Forbidden(role) => (
                "Not allowed",
                format!(
                    "Your role ({}) can look but not change this. Ask an admin if you need to.",
                    role.as_str()
                ),
            ),
            PageError::Csrf => (
                "Form expired",
                "This form has expired or was not sent from this console. Go back, reload the \
                 page and try again."
                    .to_owned(),
            ),
            PageError::BadForm(m) => ("Bad request", format!("The form could not be read: {m}")),
            PageError::NotFound(m) => ("Not found", m.clone()),
            PageError::Conflict(m) => ("Cannot do that", m.clone()),
            PageError::Internal(m) => {
                tracing::error!(error = %m, "console request failed");
                (
                    "Something went wrong",
                    "The appliance could not complete this request; it is in the log. Try \
                     again in a moment."
                        .to_owned(),
                )
            }
        };
        let status = self.status_code();
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message,
        };
        match page.render() {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(_) => HttpResponse::build(status).body(title.to_owned()),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(m) => PageError::NotFound(m),
            ApiError::Forbidden(role) => {
                PageError::Forbidden(role.parse().unwrap_or(Role::Auditor))
            }
            ApiError::Conflict(m) => PageError::Conflict(m),
            ApiError::Invalid(fields) => PageError::BadForm(describe(&fields)),
            ApiError::BadRequest(message, _) => PageError::BadForm(message),
            // The detail goes to the log; the page says only that it failed.
            ApiError::Internal(detail) => PageError::Internal(detail),
            other => PageError::Internal(other.to_string()),
        }
    }
}

impl From<ChangeError> for PageError {
    fn from(e: ChangeError) -> Self {
        PageError::from(ApiError::from(e))
    }
}

impl From<diesel::result::Error> for PageError {
    fn from(e: diesel::result::Error) -> Self {
        PageError::Internal(format!("database: {e}"))
    }
}

impl From<diesel::r2d2::PoolError> for PageError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        PageError::Internal(format!("database pool: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for PageError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        PageError::Internal(e.to_string())
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("template: {e}"))
    }
}

/// Every field's messages in one line, for errors that have no form to show them beside.
pub fn describe(fields: &FieldErrors) -> String {
    fields
        .0
        .iter()
        .map(|(field, messages)| format!("{field}: {}", messages.join("; ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Percent-encodes text for a query string value.
pub fn percent_encode_query(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// A rendered page.
pub fn page<T: Template>(template: &T) -> Result<HttpResponse, PageError> {
    page_with_status(StatusCode::OK, template)
}

/// A rendered page with a status other than 200 (a form with errors is 422).
pub fn page_with_status<T: Template>(
    status: StatusCode,
    template: &T,
) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(template.render()?))
}

/// Where to go after a form was accepted (303, so that reloading does not post again).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location.to_owned()))
        .finish()
}

/// The sections of the console, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    People,
    Doors,
    /// Zones, schedules and holidays, access levels.
    Policy,
    Events,
    Activity,
    Why,
    Audit,
    Admins,
    Settings,
    Lockdown,
}

impl Section {
    const ALL: [Section; 11] = [
        Section::Dashboard,
        Section::People,
        Section::Doors,
        Section::Policy,
        Section::Events,
        Section::Activity,
        Section::Why,
        Section::Audit,
        Section::Admins,
        Section::Settings,
        Section::Lockdown,
    ];

    fn href(self) -> &'static str {
        match self {
            Section::Dashboard => "/",
            Section::People => "/people",
            Section::Doors => "/doors",
            Section::Policy => "/levels",
            Section::Audit => "/audit",
            Section::Admins => "/admins",
            Section::Settings => "/settings",
            Section::Events => "/events",
            Section::Activity => "/activity",
            Section::Why => "/why",
            Section::Lockdown => "/lockdown",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Section::Dashboard => "Dashboard",
            Section::People => "People",
            Section::Doors => "Doors",
            Section::Policy => "Access",
            Section::Audit => "Audit log",
            Section::Admins => "Admins",
            Section::Settings => "Settings",
            Section::Events => "Events",
            Section::Activity => "Activity",
            Section::Why => "Why?",
            Section::Lockdown => "Lockdown",
        }
    }
}

/// One link of the navigation bar.
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every console page shows around its content: who is signed in, the navigation,
/// the lockdown banner, the CSRF token for its forms, and the page's clock.
pub struct Chrome {
    pub username: String,
    pub role: Role,
    pub csrf: String,
    pub nav: Vec<NavLink>,
    /// Names of the sites in lockdown; the banner shows while any is.
    pub lockdown: Vec<String>,
    /// The page's clock: the first site's timezone, for times that belong to no site.
    /// Times of a door or reader are on its own site's clock ([`site_clock`]).
    pub timezone: Tz,
    /// The other timezones sites keep, for the footer; empty when all keep one.
    pub other_clocks: Vec<site_clock::OtherClock>,
    /// What the viewer's last changes did, for the layout to say once.
    pending: notice::PendingNotices,
}

impl Chrome {
    /// What the viewer reads history as: their role's scope.
    pub fn history_scope(&self) -> ReadScope {
        ReadScope::of(self.role)
    }

    pub fn new(state: &AppState, viewer: &Viewer, section: Section) -> Chrome {
        let snapshot = state.live.snapshot();
        let sites = snapshot.sites();
        let timezone = sites
            .first()
            .and_then(|s| snapshot.site_timezone(s.id))
            .unwrap_or(Tz::UTC);
        Chrome {
            username: viewer.identity().username.clone(),
            role: viewer.identity().role,
            csrf: viewer.0.csrf.clone(),
            nav: Section::ALL
                .iter()
                .map(|s| NavLink {
                    href: s.href(),
                    label: s.label(),
                    current: *s == section,
                })
                .collect(),
            lockdown: sites
                .iter()
                .filter(|s| s.lockdown)
                .map(|s| s.name.clone())
                .collect(),
            timezone,
            other_clocks: site_clock::other_clocks(&snapshot, timezone, state.clock.now()),
            pending: notice::PendingNotices::new(state.notices.clone(), viewer.0.id),
        }
    }

    /// The notices waiting for this page, taken: `base.html` asks once, so each is said
    /// on one page (a panel that refreshes itself never asks).
    pub fn notices(&self) -> Vec<notice::Notice> {
        self.pending.take()
    }

    /// May this admin change policy? Pages hide what they may not do.
    pub fn can_change(&self) -> bool {
        self.role.can_change_policy()
    }

    /// Whether sites keep different time, so that times at some carry a mark and forms
    /// say which clock a typed time is read on.
    pub fn clocks_differ(&self) -> bool {
        !self.other_clocks.is_empty()
    }

    /// A time on the page's clock, for what belongs to no site.
    pub fn time(&self, at: &DateTime<Utc>) -> String {
        self.time_in(at, &self.timezone)
    }

    /// A time on `tz`'s wall clock (a door's site's), marked with its zone when that is
    /// not the page's.
    pub fn time_in(&self, at: &DateTime<Utc>, tz: &Tz) -> String {
        site_clock::on_clock(at, *tz, self.timezone, site_clock::DATE_TIME)
    }

    /// An end date on `tz`'s clock as the forms take it: the last day it is good for
    /// ("2027-03-31" for an end at the midnight that closes that day), or the date and
    /// time of an end at another time. One convention for every "until" in the console.
    pub fn until_in(&self, at: &DateTime<Utc>, tz: &Tz) -> String {
        site_clock::last_day(at, *tz, self.timezone)
    }

    /// [`Chrome::until_in`] on the page's clock.
    pub fn until(&self, at: &DateTime<Utc>) -> String {
        self.until_in(at, &self.timezone)
    }

    /// A time of day on `tz`'s wall clock, for today's lists; marked like [`Chrome::time_in`].
    pub fn clock_in(&self, at: &DateTime<Utc>, tz: &Tz) -> String {
        site_clock::on_clock(at, *tz, self.timezone, site_clock::TIME_OF_DAY)
    }
}

/// A form's validation messages, shown beside the fields they are about.
#[derive(Debug, Default)]
pub struct Problems(pub FieldErrors);

impl Problems {
    /// The messages about one field, in one sentence; None when it is fine.
    pub fn of(&self, field: &str) -> Option<String> {
        self.0.0.get(field).map(|messages| messages.join("; "))
    }

    /// Messages about fields that the form does not show, so that none goes unsaid.
    pub fn others(&self, shown: &[&str]) -> Vec<String> {
        self.0
            .0
            .iter()
            .filter(|(field, _)| !shown.contains(&field.as_str()))
            .map(|(field, messages)| format!("{field}: {}", messages.join("; ")))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The status of a page that shows these problems: 422 when there are any.
    pub fn status(problems_empty: bool) -> StatusCode {
        if problems_empty {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

/// Whether two texts are equal, whatever their reference depth: templates compare form
/// values with the options they offer.
pub fn same(a: impl AsRef<str>, b: impl AsRef<str>) -> bool {
    a.as_ref() == b.as_ref()
}
