//! Notices: what a console change did ("Card 04C0A1 issued to Ada Lovelace") or why it
//! was refused, said once on the page the browser is sent to next. Kept in memory by
//! session, never in the URL, so no name ends up in a proxy's log or the browser history.
//!
//! A handler leaves a notice and redirects ([`see_other_saying`]); the next full page
//! that session renders takes it (`base.html` calls [`Chrome::notices`], so the panels a
//! page refreshes by itself, which build a `Chrome` too, never take one).
//!
//! [`Chrome::notices`]: super::Chrome::notices

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse};

use super::session::Viewer;
use crate::app::state::AppState;

/// How long a notice waits for its page. The redirect that shows it follows at once; a
/// notice nobody came back for is dropped rather than shown on some later page.
const KEEP_FOR: Duration = Duration::from_secs(120);
/// At most this many notices wait per session (the oldest go first).
const MOST_PER_SESSION: usize = 8;

/// What kind of thing a notice says, which sets how it looks and how a screen reader
/// announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// A change was made.
    Done,
    /// A save found nothing to change.
    Unchanged,
    /// The change was not made, and why.
    Refused,
}

impl Tone {
    /// The CSS class of the notice.
    pub fn class(&self) -> &'static str {
        match self {
            Tone::Done => "done",
            Tone::Unchanged => "unchanged",
            Tone::Refused => "refused",
        }
    }

    /// The ARIA role: a refusal interrupts, the others wait their turn.
    pub fn role(&self) -> &'static str {
        match self {
            Tone::Refused => "alert",
            Tone::Done | Tone::Unchanged => "status",
        }
    }
}

/// One sentence for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub tone: Tone,
    pub text: String,
}

impl Notice {
    /// A change that was made, said as what it did.
    pub fn done(text: impl Into<String>) -> Notice {
        Notice {
            tone: Tone::Done,
            text: text.into(),
        }
    }

    /// A change that was not made, with the reason.
    pub fn refused(text: impl Into<String>) -> Notice {
        Notice {
            tone: Tone::Refused,
            text: text.into(),
        }
    }

    /// A save that changed nothing, so nothing was recorded.
    pub fn unchanged() -> Notice {
        Notice {
            tone: Tone::Unchanged,
            text: super::saved::NOTHING_CHANGED.to_owned(),
        }
    }

    /// A change that found nothing to do, and why ("Lockdown was already on there.").
    pub fn unchanged_because(why: impl Into<String>) -> Notice {
        Notice {
            tone: Tone::Unchanged,
            text: format!("Nothing changed: {}", why.into()),
        }
    }
}

/// The notices waiting for their page, by session id.
#[derive(Default)]
pub struct Notices {
    waiting: Mutex<HashMap<i64, Vec<(Instant, Notice)>>>,
}

impl Notices {
    /// Keeps `notice` for the next page of `session`.
    pub fn leave(&self, session: i64, notice: Notice) {
        let now = Instant::now();
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        // Sessions that never came back for theirs are forgotten here, on the write path.
        waiting.retain(|_, list| {
            list.retain(|(at, _)| now.duration_since(*at) < KEEP_FOR);
            !list.is_empty()
        });
        let list = waiting.entry(session).or_default();
        if list.len() >= MOST_PER_SESSION {
            list.remove(0);
        }
        list.push((now, notice));
    }

    /// The notices waiting for `session`, oldest first; none are left behind.
    pub fn take(&self, session: i64) -> Vec<Notice> {
        let now = Instant::now();
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting
            .remove(&session)
            .unwrap_or_default()
            .into_iter()
            .filter(|(at, _)| now.duration_since(*at) < KEEP_FOR)
            .map(|(_, notice)| notice)
            .collect()
    }
}

/// A page's claim on its session's notices, taken only when the page's layout shows them.
pub struct PendingNotices {
    notices: Arc<Notices>,
    session: i64,
}

impl PendingNotices {
    pub fn new(notices: Arc<Notices>, session: i64) -> PendingNotices {
        PendingNotices { notices, session }
    }

    pub fn take(&self) -> Vec<Notice> {
        self.notices.take(self.session)
    }
}

/// After a form: to `location` (303), where `notice` is said once.
pub fn see_other_saying(
    state: &AppState,
    viewer: &Viewer,
    location: &str,
    notice: Notice,
) -> HttpResponse {
    state.notices.leave(viewer.0.id, notice);
    super::see_other(location)
}

/// The page a form was posted from, for a refusal to return to: the path and query of
/// the request's `Referer` when it names this host, else `fallback`. Never another
/// site's address, so a refusal cannot be made into an open redirect.
pub fn back(req: &HttpRequest, fallback: &str) -> String {
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    req.headers()
        .get(actix_web::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.parse::<actix_web::http::Uri>().ok())
        .filter(|uri| uri.authority().map(|a| a.as_str()) == host && host.is_some())
        .and_then(|uri| uri.path_and_query().map(|p| p.as_str().to_owned()))
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .unwrap_or_else(|| fallback.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_taken_once_and_only_by_its_session() {
        let notices = Notices::default();
        notices.leave(1, Notice::done("Card 04C0 issued to Ada Lovelace"));
        notices.leave(1, Notice::refused("The door is locked"));
        assert!(notices.take(2).is_empty());
        let taken = notices.take(1);
        assert_eq!(
            taken,
            vec![
                Notice::done("Card 04C0 issued to Ada Lovelace"),
                Notice::refused("The door is locked"),
            ]
        );
        assert!(notices.take(1).is_empty());
    }

    #[test]
    fn a_session_keeps_only_its_newest_notices() {
        let notices = Notices::default();
        for n in 0..(MOST_PER_SESSION + 3) {
            notices.leave(7, Notice::done(format!("change {n}")));
        }
        let taken = notices.take(7);
        assert_eq!(taken.len(), MOST_PER_SESSION);
        assert_eq!(taken[0].text, "change 3");
    }

    #[test]
    fn back_goes_only_to_this_host() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Host", "gate.example:8443"))
            .insert_header(("Referer", "https://gate.example:8443/doors/3?x=1"))
            .to_http_request();
        assert_eq!(back(&req, "/doors"), "/doors/3?x=1");
        let elsewhere = actix_web::test::TestRequest::default()
            .insert_header(("Host", "gate.example:8443"))
            .insert_header(("Referer", "https://evil.example/doors/3"))
            .to_http_request();
        assert_eq!(back(&elsewhere, "/doors"), "/doors");
        let none = actix_web::test::TestRequest::default()
            .insert_header(("Host", "gate.example:8443"))
            .to_http_request();
        assert_eq!(back(&none, "/doors"), "/doors");
    }
}
