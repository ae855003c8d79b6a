//! The rules the tests themselves keep: nothing a test, benchmark, example or CI step runs
//! makes the appliance contact an address outside 127.0.0.0/8 and ::1, and a test that
//! needs a missing service is skipped with a reason locally but fails under CI.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::app::{Backend, TestApp, build_site, is_loopback_host, missing_service};

/// A reader given a host outside loopback is caught, even after it was moved back: the
/// appliance would have polled it meanwhile. (On an appliance that polls nothing, so that
/// the test itself contacts no such address.)
#[test]
fn a_reader_host_outside_loopback_is_caught_when_the_test_is_over() {
    let app = TestApp::without_modbus_polling(Backend::Sqlite);
    let f = build_site(&app);
    assert_eq!(app.reader_hosts_outside_loopback(), Vec::<String>::new());
    app.assert_readers_on_loopback();
    // A building's address, as a real reader would have (one reader validation accepts:
    // what is tested here is the harness). Built rather than written out: the scan below
    // keeps such literals out of the tests.
    let outside = Ipv4Addr::new(10, 20, 0, 64).to_string();
    let id = app.create(
        "readers",
        json!({"reader_id": "dock-mb", "door_id": f.main_door, "protocol": "modbus",
               "modbus_host": outside, "modbus_port": 1502}),
    );
    assert_eq!(app.reader_hosts_outside_loopback(), vec![outside.clone()]);
    let moved = app.put(
        &format!("/api/v1/readers/{id}"),
        json!({"reader_id": "dock-mb", "door_id": f.main_door, "protocol": "modbus",
               "modbus_host": "127.0.0.1", "modbus_port": 1502}),
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(
        app.reader_hosts_outside_loopback(),
        vec![outside],
        "the address it had before is on record"
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.assert_readers_on_loopback();
    }));
    assert!(caught.is_err(), "the harness let an outside host pass");
}

/// The example site (what the README's first steps and the browser tests run) imported into
/// a polling appliance: every reader is on loopback, checked again when the app is dropped.
#[test]
fn the_example_sites_modbus_readers_are_on_loopback() {
    let app = TestApp::new(Backend::Sqlite);
    let text = std::fs::read_to_string(repo().join("packaging/examples/office.toml")).unwrap();
    let ctx = gatehouse::entities::ChangeContext {
        provenance: &gatehouse::identity::provenance::Provenance::cli("test-setup"),
        now: chrono::Utc::now(),
    };
    gatehouse::io::site_file::import(&mut app.db(), &text, &ctx, false, &|_, _| {}).unwrap();
    use diesel::prelude::*;
    use gatehouse::store::schema::readers;
    let hosts: Vec<Option<String>> = readers::table
        .filter(readers::protocol.eq("modbus"))
        .select(readers::modbus_host)
        .load(&mut app.db())
        .unwrap();
    assert!(!hosts.is_empty(), "the example has Modbus readers");
    assert!(
        hosts.iter().flatten().all(|h| is_loopback_host(h)),
        "{hosts:?}"
    );
    app.assert_readers_on_loopback();
}

#[test]
fn loopback_means_this_machine_only() {
    for host in ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"] {
        assert!(is_loopback_host(host), "{host}");
    }
    let outside = [
        Ipv4Addr::new(10, 20, 0, 64).to_string(),
        Ipv4Addr::new(192, 168, 1, 1).to_string(),
        Ipv4Addr::UNSPECIFIED.to_string(),
        "::ffff:7f00:1".to_owned(),
        "example.com".to_owned(),
        "127.0.0.1.example.com".to_owned(),
        String::new(),
    ];
    for host in outside {
        assert!(!is_loopback_host(&host), "{host}");
    }
}

/// Under CI a missing service fails the test; elsewhere it is skipped with the reason.
#[test]
fn a_missing_service_fails_under_ci_and_is_skipped_elsewhere() {
    missing_service("Mosquitto: for a test of this rule", false);
    let under_ci = std::panic::catch_unwind(|| {
        missing_service("Mosquitto: for a test of this rule", true);
    });
    let message = under_ci.expect_err("CI went on without the service");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        text.contains("Mosquitto") && text.contains("CI=true"),
        "{text}"
    );
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` that is text, leaving out what is installed or built there.
fn text_files(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some("node_modules" | "target" | "package-lock.json" | ".git")
        ) {
            continue;
        }
        if path.is_dir() {
            text_files(&path, found);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            found.push((path, text));
        }
    }
}

/// The IP address literals in `text`, with their line numbers: dotted quads (not parts of
/// longer dotted numbers such as versions) and IPv6 addresses in brackets, as in URLs.
fn ip_literals(text: &str) -> Vec<(usize, IpAddr)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for word in line.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            let word = word.trim_matches('.');
            if word.split('.').count() == 4
                && let Ok(v4) = word.parse::<Ipv4Addr>()
            {
                found.push((n + 1, IpAddr::V4(v4)));
            }
        }
        for bracketed in line.split('[').skip(1) {
            if let Some((inside, _)) = bracketed.split_once(']')
                && let Ok(v6) = inside.parse::<Ipv6Addr>()
            {
                found.push((n + 1, IpAddr::V6(v6)));
            }
        }
    }
    found
}

/// What anything that runs may name: this machine, or "every address of this machine"
/// for a listener.
fn runnable(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

/// What the documentation may show besides: the building's own network in examples for
/// a real installation (RFC 1918) and the ranges reserved for documentation (RFC 5737).
fn illustrative(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_private() || matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        IpAddr::V6(_) => false,
    }
}

/// No test, benchmark, example, packaged config or CI step (nor the README, whose first
/// steps a newcomer runs) names an address outside loopback: whatever they run can only
/// make the appliance contact this machine. The documentation describes real
/// installations and may show a building's private addresses, never a public one.
#[test]
fn nothing_that_runs_names_an_address_outside_loopback() {
    let root = repo();
    let mut strict = Vec::new();
    for dir in ["packaging", "bench", "tests", ".ci"] {
        text_files(&root.join(dir), &mut strict);
    }
    let readme = root.join("README.md");
    strict.push((readme.clone(), std::fs::read_to_string(&readme).unwrap()));
    let mut docs = Vec::new();
    text_files(&root.join("docs"), &mut docs);
    assert!(
        strict.iter().any(|(p, _)| p.ends_with("office.toml")) && !docs.is_empty(),
        "the scan found the files it is about"
    );
    let mut problems = Vec::new();
    for (files, allowed, rule) in [
        (&strict, runnable as fn(IpAddr) -> bool, "only loopback"),
        (
            &docs,
            |ip| runnable(ip) || illustrative(ip),
            "no public address",
        ),
    ] {
        for (path, text) in files {
            for (line, ip) in ip_literals(text) {
                if !allowed(ip) {
                    let place = path.strip_prefix(&root).unwrap_or(path).display();
                    problems.push(format!("{place}:{line}: {ip} ({rule})"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_scan_reads_the_literals_it_should() {
    // The outside addresses built, not written: the scan covers this file too.
    let link_local = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
    let private = IpAddr::V4(Ipv4Addr::new(10, 20, 0, 64));
    let text = format!(
        "a 1.2.3.4.5 version, http://[::1]:8080/ and [{link_local}]\nhost = \"{private}\"; 0.0.0.0:80\n300.1.1.1 2026.12.07"
    );
    assert_eq!(
        ip_literals(&text),
        vec![
            (1, IpAddr::V6(Ipv6Addr::LOCALHOST)),
            (1, link_local),
            (2, private),
            (2, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ]
    );
}
