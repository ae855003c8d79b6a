//! Authentication under attack: API tokens stored as digests (older argon2id ones upgraded
//! on first use), failed tokens and sign-ins throttled per client address even when sent
//! at once, argon2id kept out of the write lock, one answer for unknown and locked
//! usernames, X-Forwarded-For believed only from trusted proxies, and revocations made
//! through the CLI reaching a running appliance and its open event streams.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins;
use gatehouse::identity::provenance::Provenance;
use gatehouse::store::schema::{admin_sessions, api_tokens};

use crate::app::{Backend, TestApp, backends};
use crate::console::{Browser, PASSWORD, add_admin};

fn ctx() -> ChangeContext<'static> {
    static TEST_SETUP: std::sync::LazyLock<Provenance> =
        std::sync::LazyLock::new(|| Provenance::cli("test-setup"));
    ChangeContext {
        provenance: &TEST_SETUP,
        now: Utc::now(),
    }
}

fn stored_hash(app: &TestApp, token_id: i64) -> String {
    api_tokens::table
        .find(token_id)
        .select(api_tokens::token_hash)
        .first(&mut app.db())
        .unwrap()
}

/// The id in a token's text (`gh_{id}_{secret}`).
fn token_id(token: &str) -> i64 {
    token.split('_').nth(1).unwrap().parse().unwrap()
}

#[test]
fn api_tokens_are_stored_as_digests_and_older_argon2_tokens_upgrade_on_first_use() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let issued = admins::issue_token(
            &mut app.db(),
            "root",
            "ci",
            admins::TokenScope::Full,
            None,
            &ctx(),
        )
        .unwrap();
        let (id, secret) = (issued.view.id, issued.token.rsplit('_').next().unwrap());
        assert_eq!(
            stored_hash(&app, id),
            gatehouse::identity::secret::digest_hex(secret),
            "{backend:?}: a new token's secret is kept as its SHA-256"
        );
        assert_eq!(app.get_as(Some(&issued.token), "/api/v1/sites").status, 200);

        // A token issued before digests holds an argon2id hash of its secret.
        let old = admins::issue_token(
            &mut app.db(),
            "root",
            "old",
            admins::TokenScope::Full,
            None,
            &ctx(),
        )
        .unwrap();
        let old_id = old.view.id;
        let old_secret = old.token.rsplit('_').next().unwrap().to_owned();
        let phc = gatehouse::identity::secret::hash_secret(&old_secret).unwrap();
        diesel::update(api_tokens::table.find(old_id))
            .set(api_tokens::token_hash.eq(&phc))
            .execute(&mut app.db())
            .unwrap();
        // A wrong secret for it is refused and changes nothing.
        let wrong = format!("gh_{old_id}_{}", "0".repeat(64));
        assert_eq!(app.get_as(Some(&wrong), "/api/v1/sites").status, 401);
        assert_eq!(stored_hash(&app, old_id), phc);
        // The right one works, and from then on it is kept as a digest like the others.
        assert_eq!(app.get_as(Some(&old.token), "/api/v1/sites").status, 200);
        assert_eq!(
            stored_hash(&app, old_id),
            gatehouse::identity::secret::digest_hex(&old_secret),
            "{backend:?}: upgraded on first use"
        );
        app.state.tokens.clear();
        assert_eq!(app.get_as(Some(&old.token), "/api/v1/sites").status, 200);
    }
}

/// Sends `count` requests at once (each on its own connection), each with the headers
/// `headers(i)`, and returns their statuses.
fn burst(
    app: &TestApp,
    count: usize,
    path: &str,
    headers: impl Fn(usize) -> Vec<(String, String)> + Sync,
) -> Vec<u16> {
    let barrier = Barrier::new(count);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..count)
            .map(|i| {
                let (barrier, headers) = (&barrier, &headers);
                scope.spawn(move || {
                    let agent = app.agent_config().build().new_agent();
                    let mut request = agent.get(&app.url(path));
                    for (name, value) in headers(i) {
                        request = request.header(name, value);
                    }
                    barrier.wait();
                    request.call().unwrap().status().as_u16()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn bad_tokens_sent_at_once_are_cut_off_at_the_limit_per_address() {
    let app = TestApp::new(Backend::Sqlite);
    // A real token id with a made-up secret: the most expensive kind of bad token.
    let bogus = format!("gh_{}_{}", token_id(&app.token), "f".repeat(64));
    let statuses = burst(&app, 60, "/api/v1/sites", |_| {
        vec![("Authorization".into(), format!("Bearer {bogus}"))]
    });
    let limit = gatehouse::web::auth::TOKEN_FAILURES;
    assert!(
        count(&statuses, 401) <= limit,
        "at most {limit} checked: {statuses:?}"
    );
    assert_eq!(count(&statuses, 401) + count(&statuses, 429), 60);
    let refused = app.get_as(Some(&bogus), "/api/v1/sites");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("too many failed attempts"),
        "{}",
        refused.body
    );
}

/// Signs in from its own browser per attempt, all posted at once; returns the statuses.
fn sign_in_burst(
    app: &TestApp,
    count: usize,
    attempt: impl Fn(usize) -> (String, String, Vec<(String, String)>) + Sync,
) -> Vec<u16> {
    let barrier = Barrier::new(count);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..count)
            .map(|i| {
                let (barrier, attempt) = (&barrier, &attempt);
                scope.spawn(move || {
                    let mut browser = Browser::new(app);
                    let (username, password, headers) = attempt(i);
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    browser.sign_in_at_once(&username, &password, &headers, barrier)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn sixty_wrong_sign_ins_at_once_get_at_most_the_limit_checked() {
    let app = TestApp::new(Backend::Sqlite);
    add_admin(&app, "dana", "admin");
    let checked_before = app
        .state
        .password_checks
        .load(std::sync::atomic::Ordering::SeqCst);
    let statuses = sign_in_burst(&app, 60, |i| {
        (format!("guess{i}"), "wrong wrong wrong".into(), Vec::new())
    });
    let checked = app
        .state
        .password_checks
        .load(std::sync::atomic::Ordering::SeqCst)
        - checked_before;
    let limit = gatehouse::identity::sessions::THROTTLE_FAILURES;
    assert!(
        checked <= limit as u64,
        "{checked} passwords checked: {statuses:?}"
    );
    assert!(count(&statuses, 401) <= limit, "{statuses:?}");
    assert!(count(&statuses, 429) >= 60 - limit, "{statuses:?}");
}

#[test]
fn passwords_are_checked_outside_the_write_lock() {
    let app = TestApp::new(Backend::Sqlite);
    add_admin(&app, "dana", "admin");
    // Lock dana's account first: locked accounts are checked (against a dummy hash) too.
    let mut guesser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(guesser.sign_in_as("dana", "wrong wrong wrong").status, 401);
    }
    // Another writer holds the write lock (as a long API write would).
    let (held, holding) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let state = app.state.clone();
    let writer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(state.write(move |_conn| {
                held.send(()).unwrap();
                let _ = released.recv();
                Ok(())
            }))
            .unwrap();
    });
    holding.recv().unwrap();
    let before = app
        .state
        .password_checks
        .load(std::sync::atomic::Ordering::SeqCst);
    // Sign-ins that need no write are checked and answered while the lock is held: their
    // argon2id does not run under it.
    let (answered, answers) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for username in ["nobody", "dana", "someone-else"] {
            let answered = answered.clone();
            let app = &app;
            scope.spawn(move || {
                let mut browser = Browser::new(app);
                let page = browser.sign_in_as(username, "wrong wrong wrong");
                let _ = answered.send(page.status);
            });
        }
        for _ in 0..3 {
            let status = answers.recv_timeout(Duration::from_secs(30));
            assert_eq!(
                status,
                Ok(401),
                "answered while another write holds the lock"
            );
        }
        release.send(()).unwrap();
    });
    writer.join().unwrap();
    let after = app
        .state
        .password_checks
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - before, 3, "every attempt was checked with argon2id");
}

/// A sign-in page with what differs between two requests (the CSRF token) taken out.
fn comparable(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("name=\"csrf\" value=\"") {
        let start = at + "name=\"csrf\" value=\"".len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = &rest[rest.find('"').unwrap()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn unknown_and_locked_usernames_get_the_same_answer() {
    let app = TestApp::new(Backend::Sqlite);
    add_admin(&app, "dana", "admin");
    add_admin(&app, "eric", "admin");
    let mut guesser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(guesser.sign_in_as("dana", "wrong wrong wrong").status, 401);
    }
    // Three fresh browsers, as three people would come: the same username typed each
    // time (the page shows it back), so that only the account's state differs.
    let answer = |username: &str, password: &str| {
        let page = Browser::new(&app).sign_in_as(username, password);
        (
            page.status,
            comparable(&page.body).replace(username, "NAME"),
        )
    };
    let locked_right = answer("dana", PASSWORD);
    let locked_wrong = answer("dana", "wrong wrong wrong");
    let unknown = answer("ghost", "wrong wrong wrong");
    let wrong = answer("eric", "wrong wrong wrong");
    assert_eq!(unknown.0, 401);
    assert_eq!(locked_right, unknown, "a locked account reads as unknown");
    assert_eq!(locked_wrong, unknown);
    assert_eq!(wrong, unknown, "and so does a wrong password");
}

fn audit_summaries(app: &TestApp) -> String {
    app.get("/api/v1/audit?entity=session").body.to_string()
}

fn session_addresses(app: &TestApp) -> Vec<String> {
    admin_sessions::table
        .select(admin_sessions::remote_addr)
        .load(&mut app.db())
        .unwrap()
}

#[test]
fn x_forwarded_for_is_ignored_from_untrusted_peers() {
    let app = TestApp::new(Backend::Sqlite);
    add_admin(&app, "dana", "admin");
    let forwarded = |i: u8| vec![("X-Forwarded-For", documentation_address(i))];
    let page = Browser::new(&app).sign_in_from(
        "dana",
        PASSWORD,
        &[("X-Forwarded-For", &documentation_address(50))],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let audit = audit_summaries(&app);
    assert!(
        audit.contains("signed in to the console from 127.0.0.1"),
        "{audit}"
    );
    assert!(!audit.contains(&documentation_address(50)), "{audit}");
    assert_eq!(session_addresses(&app), ["127.0.0.1"]);
    // Ten failures under ten made-up addresses are ten failures of this one.
    for i in 0..10 {
        let headers = forwarded(i);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = Browser::new(&app).sign_in_from("dana", "wrong wrong wrong", &headers);
        assert_eq!(page.status, 401);
    }
    let page = Browser::new(&app).sign_in_from(
        "dana",
        PASSWORD,
        &[("X-Forwarded-For", &documentation_address(99))],
    );
    assert_eq!(page.status, 429, "{}", page.body);
}

#[test]
fn x_forwarded_for_names_the_client_behind_a_trusted_proxy() {
    let app = TestApp::with_trusted_proxies(Backend::Sqlite, &["127.0.0.1"]);
    add_admin(&app, "dana", "admin");
    // The client wrote the first hop itself; the proxy appended the address it saw.
    let page = Browser::new(&app).sign_in_from(
        "dana",
        PASSWORD,
        &[(
            "X-Forwarded-For",
            &format!("{}, {}", private_address(), documentation_address(50)),
        )],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let audit = audit_summaries(&app);
    assert!(
        audit.contains(&format!(
            "dana signed in to the console from {}",
            documentation_address(50)
        )),
        "{audit}"
    );
    assert_eq!(session_addresses(&app), [documentation_address(50)]);

    // The throttle is kept per forwarded address.
    let from = |addr: String| vec![("X-Forwarded-For", addr)];
    for _ in 0..10 {
        let headers = from(documentation_address(7));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = Browser::new(&app).sign_in_from("ghost", "wrong wrong wrong", &headers);
        assert_eq!(page.status, 401);
    }
    let throttled = Browser::new(&app).sign_in_from(
        "dana",
        PASSWORD,
        &[("X-Forwarded-For", &documentation_address(7))],
    );
    assert_eq!(throttled.status, 429);
    let elsewhere = Browser::new(&app).sign_in_from(
        "dana",
        PASSWORD,
        &[("X-Forwarded-For", &documentation_address(8))],
    );
    assert_eq!(
        elsewhere.status, 303,
        "another client behind the same proxy"
    );

    // So is the bad-token throttle.
    let bogus = format!("gh_{}_{}", token_id(&app.token), "f".repeat(64));
    let limit = gatehouse::web::auth::TOKEN_FAILURES;
    let statuses = burst(&app, limit + 5, "/api/v1/sites", |_| {
        vec![
            ("Authorization".into(), format!("Bearer {bogus}")),
            ("X-Forwarded-For".into(), documentation_address(9)),
        ]
    });
    assert_eq!(count(&statuses, 429), 5, "{statuses:?}");
    let other = burst(&app, 1, "/api/v1/sites", |_| {
        vec![
            ("Authorization".into(), format!("Bearer {bogus}")),
            ("X-Forwarded-For".into(), documentation_address(10)),
        ]
    });
    assert_eq!(other, [401]);
}

/// Runs the `gatehouse` binary against the app's database, as an operator on the
/// appliance would while it runs.
fn cli(app: &TestApp, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_DATABASE_URL", app.state.config.database_url())
        .env("GATEHOUSE_DATA_DIR", &app.state.config.data_dir)
        .env("GATEHOUSE_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `condition`, well under the caches' minute.
fn within(wait: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        // Each refused try counts against this address's bad-token allowance: ask
        // a few times a second, not more.
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An event stream held open on a thread of its own, collecting what it is sent.
struct OpenStream {
    chunks: std::sync::mpsc::Receiver<String>,
    sent: String,
}

impl OpenStream {
    fn open(app: &TestApp, token: &str) -> OpenStream {
        use std::io::Read;
        let agent = app.agent_config().build().new_agent();
        let response = agent
            .get(&app.url("/api/v1/events/stream"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let (tx, chunks) = std::sync::mpsc::channel();
        let mut body = response.into_body().into_reader();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = body.read(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        OpenStream {
            chunks,
            sent: String::new(),
        }
    }

    /// Whether the appliance ended the stream within `wait`.
    fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.sent.push_str(&chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

#[test]
fn revocations_through_the_cli_reach_a_running_appliance_at_once() {
    let wait = Duration::from_secs(15);
    for backend in backends() {
        let app = TestApp::new(backend);
        let token = app.token_for("ops", "operator");
        let streamed = admins::issue_token(
            &mut app.db(),
            "root",
            "feed",
            admins::TokenScope::Full,
            None,
            &ctx(),
        )
        .unwrap()
        .token;
        // Both verified and cached.
        assert_eq!(app.get_as(Some(&token), "/api/v1/sites").status, 200);
        let mut stream = OpenStream::open(&app, &streamed);
        let mut kept = OpenStream::open(&app, &app.token);

        cli(
            &app,
            &["admin", "token", "revoke", &token_id(&token).to_string()],
        );
        assert!(
            within(wait, || app.get_as(Some(&token), "/api/v1/sites").status
                != 200),
            "{backend:?}: a token revoked through the CLI is refused within seconds"
        );

        cli(
            &app,
            &["admin", "token", "revoke", &token_id(&streamed).to_string()],
        );
        assert!(
            stream.ends_within(wait),
            "{backend:?}: the revoked token's stream ends: {}",
            stream.sent
        );
        assert!(
            stream.sent.contains("event: token_invalid"),
            "{}",
            stream.sent
        );
        assert!(
            !kept.ends_within(Duration::from_millis(500)),
            "a valid token's stream goes on"
        );

        // An admin disabled through the CLI loses their console session and tokens too.
        let other = app.token_for("eve", "admin");
        assert_eq!(app.get_as(Some(&other), "/api/v1/sites").status, 200);
        let mut browser = Browser::new(&app);
        assert_eq!(browser.sign_in_as("eve", PASSWORD).status, 303);
        assert_eq!(browser.get("/").status, 200);
        cli(&app, &["admin", "disable", "eve"]);
        assert!(
            within(wait, || app.get_as(Some(&other), "/api/v1/sites").status
                != 200),
            "{backend:?}: a disabled admin's token"
        );
        assert!(
            within(wait, || browser.get("/").status == 303),
            "{backend:?}: a disabled admin's console session"
        );
    }
}

#[test]
fn a_token_revoked_through_the_api_ends_its_open_stream() {
    let app = TestApp::new(Backend::Sqlite);
    let streamed = admins::issue_token(
        &mut app.db(),
        "root",
        "feed",
        admins::TokenScope::Full,
        None,
        &ctx(),
    )
    .unwrap()
    .token;
    let mut stream = OpenStream::open(&app, &streamed);
    let r = app.delete(&format!("/api/v1/tokens/{}", token_id(&streamed)));
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        stream.ends_within(Duration::from_secs(15)),
        "{}",
        stream.sent
    );
    assert!(
        stream.sent.contains("event: token_invalid"),
        "{}",
        stream.sent
    );
}

/// A client address as a proxy would forward it, from the range reserved for
/// documentation (RFC 5737). Only ever a header's text: nothing connects to it (and no
/// address outside loopback is written out in tests, see `harness`).
fn documentation_address(last: u8) -> String {
    std::net::Ipv4Addr::new(203, 0, 113, last).to_string()
}

/// An address on the building's own network, as a client might claim in its own header.
fn private_address() -> String {
    std::net::Ipv4Addr::new(10, 9, 9, 9).to_string()
}
