//! The scheduler (`server/app/jobs.rs`) on a running appliance: each job's runs on the settings
//! page and in `GET /api/v1/jobs`, failures and panics reported while the others go on, a
//! slow job skipped rather than overlapped, and a one-instance job run once per due time
//! by two instances sharing a PostgreSQL database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{TimeDelta, Utc};
use gatehouse::app::jobs::{Instances, JobSpec};
use gatehouse::clock::{Clock, ClockShift};
use gatehouse::store::event_log::{Appended, Event, EventKind};
use serde_json::Value;

use crate::app::{Backend, TestApp, backends, wait_until, wait_until_within};
use crate::console::signed_in;

/// The job named `name` as `GET /api/v1/jobs` shows it.
fn job(app: &TestApp, name: &str) -> Value {
    let jobs = app.get("/api/v1/jobs");
    assert_eq!(jobs.status, 200, "{}", jobs.body);
    jobs.body
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no job {name} in {}", jobs.body))
}

fn append(app: &TestApp, event: Event) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(app.state.events.append(event)).unwrap() {
        Appended::New(id) => id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_appliances_jobs_show_their_runs_on_the_settings_page_and_in_the_api() {
    for backend in backends() {
        let shift: &'static ClockShift = Box::leak(Box::default());
        let app = TestApp::with_mqtt_on(backend, None, Clock::Shifted(shift));
        let names: Vec<String> = app
            .get("/api/v1/jobs")
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "follow_database",
                "presence_reset",
                "policy_rebuild",
                "audit_head_log",
                "risk_retrain",
                "event_retention"
            ]
        );
        let rebuild = job(&app, "policy_rebuild");
        assert_eq!(rebuild["schedule"], "0 * * * *");
        assert_eq!(rebuild["timezone"], "UTC");
        assert_eq!(rebuild["instances"], "each");
        assert!(rebuild["next_run"].is_string(), "{rebuild}");

        // A fresh database has never had its old events deleted: that runs at start.
        wait_until("the retention sweep's first run", || {
            job(&app, "event_retention")["last_run"]["result"] == "ok"
        });
        let first = job(&app, "event_retention");
        assert!(
            first["last_run"]["detail"]
                .as_str()
                .unwrap()
                .starts_with("no events from before "),
            "{first}"
        );
        assert_eq!(first["instances"], "one");
        let due: chrono::DateTime<Utc> = first["next_run"].as_str().unwrap().parse().unwrap();
        assert_eq!(due.format("%H:%M").to_string(), "03:30", "{first}");

        // A year and more ago, and yesterday: the default retention keeps 365 days.
        let old = append(
            &app,
            Event::new(EventKind::Rex, Utc::now() - TimeDelta::days(400)),
        );
        let recent = append(
            &app,
            Event::new(EventKind::Rex, Utc::now() - TimeDelta::days(1)),
        );
        // The next 03:30 comes within a day of the appliance's clock.
        shift.advance(TimeDelta::days(1));
        wait_until("the retention sweep at its next due time", || {
            job(&app, "event_retention")["last_run"]["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("deleted 1 event from before "))
        });
        let swept = job(&app, "event_retention");
        let started: chrono::DateTime<Utc> = swept["last_run"]["started_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(started >= due, "{swept}");
        assert_eq!(swept["last_run"]["result"], "ok");
        let next: chrono::DateTime<Utc> = swept["next_run"].as_str().unwrap().parse().unwrap();
        assert_eq!(next - due, TimeDelta::days(1), "{swept}");
        let ids: Vec<i64> = app.events(Some("rex")).iter().map(|e| e.id).collect();
        assert_eq!(ids, [recent], "event {old} should be gone");

        // Following the database runs every second and says what it found.
        let follow = job(&app, "follow_database");
        assert!(follow["runs"].as_u64().unwrap() >= 1, "{follow}");
        assert_eq!(follow["last_run"]["result"], "ok", "{follow}");

        // The least privileged role that sees the settings page sees the jobs.
        let mut auditor = signed_in(&app, "auditor");
        let settings = auditor.get("/settings");
        assert_eq!(settings.status, 200);
        let row = settings
            .body
            .split("<tr id=\"job-event_retention\">")
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_else(|| panic!("no event_retention row in {}", settings.body));
        assert!(row.contains("<code>30 3 * * *</code> UTC"), "{row}");
        assert!(
            row.contains("<span class=\"badge active\">ok</span> deleted 1 event from before "),
            "{row}"
        );
        assert!(
            row.contains("Deletes events older than events.retention_days"),
            "{row}"
        );
        assert!(
            settings.body.contains("<tr id=\"job-follow_database\">"),
            "{}",
            settings.body
        );
    }
}

#[test]
fn a_failing_or_panicking_job_is_reported_and_the_others_go_on() {
    let app = TestApp::new(Backend::Sqlite);
    let counted = Arc::new(AtomicUsize::new(0));
    let jobs = &app.state.jobs;
    jobs.add(JobSpec::new(
        "backup",
        "Copies the database to the backup disk",
        "* * * * * *",
        Instances::Each,
        || async { Err("the backup disk is full".to_owned()) },
    ))
    .unwrap();
    jobs.add(JobSpec::new(
        "reminders",
        "Reminds reviewers of access reviews due",
        "* * * * * *",
        Instances::Each,
        || async { panic!("no reviewer list") },
    ))
    .unwrap();
    let counter = counted.clone();
    jobs.add(JobSpec::new(
        "tally",
        "Counts",
        "* * * * * *",
        Instances::Each,
        move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(format!("run {n}"))
            }
        },
    ))
    .unwrap();
    wait_until("both failures to be reported, twice each", || {
        let (backup, reminders) = (job(&app, "backup"), job(&app, "reminders"));
        backup["runs"].as_u64().unwrap() >= 2 && reminders["runs"].as_u64().unwrap() >= 2
    });
    let backup = job(&app, "backup");
    assert_eq!(backup["last_run"]["result"], "failed", "{backup}");
    assert_eq!(backup["last_run"]["detail"], "the backup disk is full");
    let reminders = job(&app, "reminders");
    assert_eq!(reminders["last_run"]["result"], "failed", "{reminders}");
    assert_eq!(
        reminders["last_run"]["detail"],
        "the job panicked: no reviewer list"
    );
    // The others go on: the counting job and the appliance's own.
    let before = counted.load(Ordering::SeqCst);
    let follows = job(&app, "follow_database")["runs"].as_u64().unwrap();
    wait_until("two more runs of the healthy jobs", || {
        counted.load(Ordering::SeqCst) >= before + 2
            && job(&app, "follow_database")["runs"].as_u64().unwrap() >= follows + 2
    });
    assert_eq!(job(&app, "tally")["last_run"]["result"], "ok");

    let mut operator = signed_in(&app, "operator");
    let settings = operator.get("/settings");
    assert!(
        settings
            .body
            .contains("<span class=\"badge failed\">failed</span> the backup disk is full"),
        "{}",
        settings.body
    );
    assert!(
        settings.body.contains(
            "<span class=\"badge failed\">failed</span> the job panicked: no reviewer list"
        )
    );
    // A name is one job's.
    let again = jobs.add(JobSpec::new(
        "backup",
        "again",
        "0 * * * *",
        Instances::Each,
        || async { Ok(String::new()) },
    ));
    assert_eq!(
        again.unwrap_err().to_string(),
        "a job named backup is already registered"
    );
    let bad = jobs.add(JobSpec::new(
        "nightly",
        "never",
        "0 25 * * *",
        Instances::Each,
        || async { Ok(String::new()) },
    ));
    assert!(
        bad.unwrap_err()
            .to_string()
            .starts_with("job nightly: '0 25 * * *' is not a cron expression"),
    );
}

#[test]
fn a_slow_job_is_skipped_while_it_runs_not_overlapped() {
    let app = TestApp::new(Backend::Sqlite);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now_running, at_most) = (running.clone(), most.clone());
    app.state
        .jobs
        .add(JobSpec::new(
            "retrain",
            "Retrains the risk model",
            "* * * * * *",
            Instances::Each,
            move || {
                let (running, most) = (now_running.clone(), at_most.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Due every second, it takes two and a half.
                    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok("retrained".to_owned())
                }
            },
        ))
        .unwrap();
    wait_until_within(
        "two slow runs and the due times skipped meanwhile",
        std::time::Duration::from_secs(20),
        || {
            let retrain = job(&app, "retrain");
            retrain["last_run"]["result"] == "ok"
                && retrain["runs"].as_u64().unwrap() >= 2
                && retrain["skipped"].as_u64().unwrap() >= 3
        },
    );
    assert_eq!(most.load(Ordering::SeqCst), 1, "runs overlapped");
    let retrain = job(&app, "retrain");
    assert!(
        retrain["last_run"]["duration_ms"].as_i64().unwrap() >= 2500,
        "{retrain}"
    );
}

/// A second appliance instance on the first one's PostgreSQL database.
struct SecondInstance {
    state: actix_web::web::Data<gatehouse::app::state::AppState>,
    handle: actix_web::dev::ServerHandle,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl SecondInstance {
    fn beside(app: &TestApp) -> SecondInstance {
        let dir = tempfile::tempdir().unwrap();
        // The same appliance key: the audit chain they share is keyed with it.
        std::fs::copy(
            app.state.config.data_dir.join("secret.key"),
            dir.path().join("secret.key"),
        )
        .unwrap();
        let config = gatehouse::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..app.state.config.clone()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime
            .block_on(gatehouse::app::serve::start(config, Clock::System))
            .expect("the second instance starts");
        let handle = running.server.handle();
        runtime.spawn(running.server);
        SecondInstance {
            state: running.state,
            handle,
            runtime: Some(runtime),
            _dir: dir,
        }
    }
}

impl Drop for SecondInstance {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.block_on(self.handle.stop(false));
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

#[test]
fn instances_sharing_postgresql_run_a_one_instance_job_once_per_due_time() {
    // On SQLite one `serve` owns the file; two would only compare the stored due time.
    if !backends().contains(&Backend::Postgres) {
        crate::app::skip_without_service("PostgreSQL (GATEHOUSE_TEST_POSTGRES_URL)");
        return;
    }
    let app = TestApp::new(Backend::Postgres);
    let second = SecondInstance::beside(&app);
    // The retention sweep that the first instance ran at start is not run again.
    let stored = &job(&app, "event_retention")["last_run"];
    assert_eq!(stored["result"], "ok", "{stored}");
    let seconds: Arc<Mutex<Vec<i64>>> = Arc::default();
    for jobs in [&app.state.jobs, &second.state.jobs] {
        let seconds = seconds.clone();
        jobs.add(JobSpec::new(
            "digest",
            "Sends the daily digest",
            "* * * * * *",
            Instances::One,
            move || {
                let seconds = seconds.clone();
                async move {
                    seconds.lock().unwrap().push(Utc::now().timestamp());
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Ok("sent".to_owned())
                }
            },
        ))
        .unwrap();
    }
    wait_until("six due times run", || seconds.lock().unwrap().len() >= 6);
    let mut ran = seconds.lock().unwrap().clone();
    let all = ran.len();
    ran.sort_unstable();
    ran.dedup();
    assert_eq!(ran.len(), all, "a due time ran twice: {ran:?}");
    let views = |state: &gatehouse::app::state::AppState| {
        let stored = gatehouse::app::jobs::stored_runs(&mut state.db.get().unwrap()).unwrap();
        state
            .jobs
            .views(&stored)
            .into_iter()
            .find(|job| job.name == "digest")
            .unwrap()
    };
    let (first_view, second_view) = (views(&app.state), views(&second.state));
    assert!(
        first_view.run_elsewhere + second_view.run_elsewhere >= 3,
        "{first_view:?} {second_view:?}"
    );
    // Both show the one stored run, whichever instance ran it.
    let newest = |view: &gatehouse::app::jobs::JobView| view.last_run.clone().unwrap().started_at;
    wait_until("both instances to show the latest stored run", || {
        newest(&views(&app.state)) == newest(&views(&second.state))
    });
}
