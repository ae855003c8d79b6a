//! The appliance's resident memory under unauthenticated bursts: 300 bad tokens that each
//! cost an argon2id check, and 200 event-stream clients that come and go. Run as its own
//! process (the built binary), so that nothing else in the test binary is counted.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins::{self, AdminInput};
use gatehouse::store::schema::api_tokens;

const PASSWORD: &str = "a long enough password";

/// `gatehouse serve` in a process of its own, killed when dropped.
struct Appliance {
    child: Child,
    port: u16,
    /// A valid token, and the id of a token issued before digests (an argon2id hash).
    token: String,
    legacy_id: i64,
    _dir: tempfile::TempDir,
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Appliance {
    fn start() -> Appliance {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // The entries made below are keyed with this process's appliance key: the data
        // folder gets that key, as `serve` will look for it there.
        gatehouse::identity::appliance_key::install_from(&data, true).unwrap();
        let url = format!("sqlite://{}", data.join("gatehouse.db").display());
        let pool = gatehouse::store::open(&url, 1).unwrap();
        let conn = &mut pool.get().unwrap();
        gatehouse::store::migrate(conn).unwrap();
        let ctx = ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("test-setup"),
            now: Utc::now(),
        };
        admins::create_admin(
            conn,
            &AdminInput {
                username: "root".to_owned(),
                password: PASSWORD.to_owned(),
                role: "admin".to_owned(),
            },
            &ctx,
        )
        .unwrap();
        let token =
            admins::issue_token(conn, "root", "tests", admins::TokenScope::Full, None, &ctx)
                .unwrap()
                .token;
        let legacy =
            admins::issue_token(conn, "root", "old", admins::TokenScope::Full, None, &ctx).unwrap();
        let secret = legacy.token.rsplit('_').next().unwrap();
        diesel::update(api_tokens::table.find(legacy.view.id))
            .set(
                api_tokens::token_hash
                    .eq(gatehouse::identity::secret::hash_secret(secret).unwrap()),
            )
            .execute(conn)
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_DATA_DIR", &data)
            .env("GATEHOUSE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            // Every request of the burst comes from "another client" behind this proxy, so
            // that the per-address throttle does not stop it before argon2id does.
            .env("GATEHOUSE_HTTP_TRUSTED_PROXIES", "127.0.0.1")
            .env("GATEHOUSE_MQTT_BROKER", "off")
            .env("GATEHOUSE_MODBUS_ENABLED", "false")
            .env("GATEHOUSE_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let appliance = Appliance {
            child,
            port,
            token,
            legacy_id: legacy.view.id,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while appliance.get("/healthz", &[]) != 200 {
            assert!(Instant::now() < deadline, "the appliance did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        appliance
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .new_agent()
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut request = Self::agent().get(&self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.call().map_or(0, |r| r.status().as_u16())
    }

    /// The process's resident set, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// A console session cookie, signed in as root.
    fn session_cookie(&self) -> String {
        let agent = Self::agent();
        let mut form = agent.get(&self.url("/login")).call().unwrap();
        let form_cookie = form
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        let body = form.body_mut().read_to_string().unwrap();
        let at = body.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
        let csrf = &body[at..at + body[at..].find('"').unwrap()];
        let fields = serde_urlencoded::to_string([
            ("csrf", csrf),
            ("next", "/"),
            ("username", "root"),
            ("password", PASSWORD),
        ])
        .unwrap();
        let signed_in = agent
            .post(&self.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", &form_cookie)
            .header("Sec-Fetch-Site", "same-origin")
            .send(fields.as_bytes())
            .unwrap();
        assert_eq!(signed_in.status().as_u16(), 303);
        signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("gatehouse_session="))
            .unwrap()
    }

    /// Waits until the resident set is at most `bound` KiB; returns the last reading.
    fn settles_within(&self, bound: u64, wait: Duration) -> Result<u64, u64> {
        let deadline = Instant::now() + wait;
        loop {
            let rss = self.rss_kib();
            if rss <= bound {
                return Ok(rss);
            }
            if Instant::now() > deadline {
                return Err(rss);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn memory_returns_to_within_twice_idle_after_bad_token_and_stream_bursts() {
    let appliance = Appliance::start();
    // Idle: started, a console admin signed in (one password check), a few pages served.
    let cookie = appliance.session_cookie();
    for _ in 0..3 {
        assert_eq!(appliance.get("/", &[("Cookie", &cookie)]), 200);
        let bearer = format!("Bearer {}", appliance.token);
        assert_eq!(
            appliance.get("/api/v1/sites", &[("Authorization", &bearer)]),
            200
        );
    }
    let idle = appliance.rss_kib();

    // 300 requests at once, each from its own address behind the trusted proxy, each
    // naming the pre-digest token with a wrong secret: each would run argon2id.
    let bogus = format!("Bearer gh_{}_{}", appliance.legacy_id, "e".repeat(64));
    let barrier = Barrier::new(300);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..300u32)
            .map(|i| {
                let (appliance, barrier, bogus) = (&appliance, &barrier, &bogus);
                scope.spawn(move || {
                    let from = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
                    barrier.wait();
                    appliance.get(
                        "/api/v1/sites",
                        &[("Authorization", bogus), ("X-Forwarded-For", &from)],
                    )
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "refused, or told the appliance is busy: {statuses:?}"
    );
    assert!(statuses.contains(&401), "some were checked: {statuses:?}");
    let after_tokens = appliance.settles_within(2 * idle, Duration::from_secs(20));
    assert!(
        after_tokens.is_ok(),
        "idle {idle} KiB, after 300 bad tokens {after_tokens:?} KiB"
    );

    // 200 event-stream clients (console live feeds and API streams) come and go.
    let bearer = format!("Bearer {}", appliance.token);
    let streams: Vec<_> = (0..200)
        .map(|i| {
            let (path, header) = if i % 2 == 0 {
                ("/live/feed", ("Cookie", cookie.as_str()))
            } else {
                ("/api/v1/events/stream", ("Authorization", bearer.as_str()))
            };
            let response = Appliance::agent()
                .get(&appliance.url(path))
                .header(header.0, header.1)
                .call()
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
            response
        })
        .collect();
    drop(streams);
    let after_streams = appliance.settles_within(2 * idle, Duration::from_secs(40));
    assert!(
        after_streams.is_ok(),
        "idle {idle} KiB, after 200 streams {after_streams:?} KiB"
    );
    // And the appliance still answers.
    assert_eq!(
        appliance.get("/api/v1/sites", &[("Authorization", &bearer)]),
        200
    );
}
