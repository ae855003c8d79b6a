//! The console and API over native HTTPS (`[http] tls_cert`, `tls_key`), as a browser and
//! an installer meet it: pages and the API over TLS with the site's certificate, Secure
//! cookies, no answer to plain HTTP on the port, and certificate mistakes caught by
//! `check-config` and at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use crate::app::{Backend, Https, TestApp};
use crate::mqtt::Pki;

/// The password `TestApp::token_for` gives its admins (`root` among them).
const PASSWORD: &str = "a long enough password";

fn https_app(pki: &Pki) -> TestApp {
    TestApp::with_https(
        Backend::Sqlite,
        &Https {
            cert: &pki.cert,
            key: &pki.key,
            ca: &pki.ca,
        },
    )
}

/// The Set-Cookie header that sets `name`, whole (value and attributes).
fn set_cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", response.headers()))
        .to_owned()
}

fn is_secure(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"))
}

/// `name=value` of a Set-Cookie header, as a browser sends it back.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap_or_default()
}

/// Signs in as `root` the way the sign-in page's form does, with `extra` headers on both
/// requests; returns the sign-in form's cookie and the answer to the post.
fn sign_in(
    app: &TestApp,
    agent: &ureq::Agent,
    extra: &[(&str, &str)],
) -> (String, ureq::http::Response<ureq::Body>) {
    let mut get = agent.get(&app.url("/login"));
    for (name, value) in extra {
        get = get.header(*name, *value);
    }
    let form = get.call().unwrap();
    assert_eq!(form.status(), 200);
    let form_cookie = set_cookie(&form, "gatehouse_sign_in");
    // A double submit: the form carries the same value as its cookie.
    let csrf = pair(&form_cookie)
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap();
    let body = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("next", "/"),
        ("username", "root"),
        ("password", PASSWORD),
    ])
    .unwrap();
    let mut post = agent
        .post(&app.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", pair(&form_cookie))
        .header("Sec-Fetch-Site", "same-origin");
    for (name, value) in extra {
        post = post.header(*name, *value);
    }
    (form_cookie, post.send(body.as_bytes()).unwrap())
}

#[test]
fn the_console_and_api_answer_over_https_with_secure_cookies() {
    let pki = Pki::new();
    let app = https_app(&pki);
    assert!(app.url("/").starts_with("https://"), "{}", app.url("/"));
    let health = app.get_as(None, "/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["status"], "ok", "{}", health.body);
    let api = app.get("/api/v1/sites");
    assert_eq!(api.status, 200, "{}", api.body);

    let agent = app.agent_config().max_redirects(0).build().new_agent();
    let (form_cookie, signed_in) = sign_in(&app, &agent, &[]);
    assert!(is_secure(&form_cookie), "{form_cookie}");
    assert_eq!(signed_in.status(), 303);
    let session = set_cookie(&signed_in, "gatehouse_session");
    assert!(is_secure(&session), "{session}");
    // Browsers are told to come back over HTTPS only.
    assert_eq!(
        signed_in
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000")
    );
    // The session works: the dashboard, not the sign-in page.
    let mut dashboard = agent
        .get(&app.url("/"))
        .header("Cookie", pair(&session))
        .call()
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    let page = dashboard.body_mut().read_to_string().unwrap();
    assert!(page.contains("Sign out"), "{page}");

    // A client claiming the request came over plain HTTP (as a proxy would say) does not
    // talk the appliance out of Secure: this connection is TLS whatever the header says.
    let (form_cookie, signed_in) = sign_in(
        &app,
        &agent,
        &[("X-Forwarded-Proto", "http"), ("Forwarded", "proto=http")],
    );
    assert!(is_secure(&form_cookie), "{form_cookie}");
    let session = set_cookie(&signed_in, "gatehouse_session");
    assert!(is_secure(&session), "{session}");
}

#[test]
fn over_plain_http_cookies_are_secure_only_behind_a_tls_proxy() {
    let app = TestApp::new(Backend::Sqlite);
    let agent = app.agent_config().max_redirects(0).build().new_agent();
    let (form_cookie, signed_in) = sign_in(&app, &agent, &[]);
    assert!(!is_secure(&form_cookie), "{form_cookie}");
    let session = set_cookie(&signed_in, "gatehouse_session");
    // A browser would drop a Secure cookie set over plain HTTP: signing in would not work.
    assert!(!is_secure(&session), "{session}");
    assert!(
        signed_in
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "no HSTS over plain HTTP"
    );
    // Behind a TLS-terminating proxy that says so.
    let (_, signed_in) = sign_in(&app, &agent, &[("X-Forwarded-Proto", "https")]);
    let session = set_cookie(&signed_in, "gatehouse_session");
    assert!(is_secure(&session), "{session}");
}

#[test]
fn plain_http_to_the_https_port_gets_no_answer() {
    let pki = Pki::new();
    let app = https_app(&pki);
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was neither answered nor closed: {e}"),
    }
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("HTTP/1."), "an HTTP answer: {text}");
    assert!(
        !text.contains("\"status\""),
        "a page over plain HTTP: {text}"
    );
    // The listener is unharmed.
    assert_eq!(app.get_as(None, "/healthz").status, 200);
}

/// Runs the binary as an installer would, with `env` on top of a fresh data folder.
fn gatehouse(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .current_dir(dir)
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_DATA_DIR", dir.join("data"))
        .env("GATEHOUSE_MQTT_BROKER", "off")
        .env("GATEHOUSE_LOG", "off")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn check_config_and_serve_refuse_a_key_that_is_not_the_certificates() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let cert = pki.cert.to_str().unwrap();

    let ok = gatehouse(
        dir.path(),
        &["check-config"],
        &[
            ("GATEHOUSE_HTTP_TLS_CERT", cert),
            ("GATEHOUSE_HTTP_TLS_KEY", pki.key.to_str().unwrap()),
        ],
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("HTTPS only"), "{stdout}");

    let mismatched = [
        ("GATEHOUSE_HTTP_TLS_CERT", cert),
        ("GATEHOUSE_HTTP_TLS_KEY", other_key.to_str().unwrap()),
    ];
    for command in ["check-config", "serve"] {
        let out = gatehouse(dir.path(), &[command], &mismatched);
        assert!(!out.status.success(), "{command} accepted the wrong key");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("http.tls_key") && err.contains("does not belong"),
            "{command}: {err}"
        );
    }
    // Half a setup is refused too, rather than served as plain HTTP.
    let out = gatehouse(
        dir.path(),
        &["check-config"],
        &[("GATEHOUSE_HTTP_TLS_CERT", cert)],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.tls_key"), "{err}");
}

#[test]
fn a_busy_https_port_is_a_clear_startup_error() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let out = gatehouse(
        dir.path(),
        &["serve"],
        &[
            ("GATEHOUSE_HTTP_LISTEN", &busy),
            ("GATEHOUSE_HTTP_TLS_CERT", pki.cert.to_str().unwrap()),
            ("GATEHOUSE_HTTP_TLS_KEY", pki.key.to_str().unwrap()),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use") && err.contains("GATEHOUSE_HTTP_LISTEN"),
        "{err}"
    );
}
