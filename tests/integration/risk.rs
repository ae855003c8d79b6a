//! The risk engine end to end: swipes over real MQTT on real databases get their anomaly
//! score and reasons stored after they are answered, the events API shows them, an unknown
//! card tried again and again scores high, and retraining is a job.

use std::time::Duration;

use gatehouse_drivers::message::{Command, WireCredential};

use crate::app::{backends, wait_until};
use crate::mqtt::{Broker, site};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn every_swipe_gets_a_stored_score_and_an_unknown_card_tried_repeatedly_scores_high() {
    for backend in backends() {
        let site = site(Broker::Embedded, backend);
        let mut reader = site.reader("main-in", false);
        for _ in 0..3 {
            let (_, answer) = site
                .runtime
                .block_on(reader.swipe(site.card(), None, WAIT))
                .unwrap();
            assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
        }
        let stranger = WireCredential::Card {
            uid: "04DEADBEEF0101".to_owned(),
        };
        for _ in 0..4 {
            let (_, answer) = site
                .runtime
                .block_on(reader.swipe(stranger.clone(), None, WAIT))
                .unwrap();
            assert!(matches!(answer, Command::Deny { .. }), "{answer:?}");
        }
        wait_until("every swipe is scored", || {
            let swipes = site.app.events(Some("swipe"));
            swipes.len() == 7 && swipes.iter().all(|s| s.event.risk_score.is_some())
        });
        let swipes = site.app.events(Some("swipe"));
        for s in &swipes {
            let score = s.event.risk_score.unwrap();
            assert!((0.0..=100.0).contains(&score), "{s:?}");
            let reasons: serde_json::Value =
                serde_json::from_str(s.event.risk_reasons.as_deref().unwrap()).unwrap();
            assert!(reasons.is_array(), "{reasons}");
        }
        // The fourth try of a card nobody holds: probing.
        let last_try = swipes
            .iter()
            .filter(|s| s.event.presented.is_some())
            .max_by_key(|s| (s.event.at, s.id))
            .unwrap();
        assert!(last_try.event.risk_score.unwrap() >= 50.0, "{last_try:?}");
        let page = site.app.get("/api/v1/events?kind=swipe&limit=20");
        assert_eq!(page.status, 200, "{}", page.body);
        let shown = page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == last_try.id)
            .cloned()
            .unwrap();
        assert_eq!(shown["risk_score"].as_f64(), last_try.event.risk_score);
        assert_eq!(
            shown["risk_reasons"][0]["code"], "unknown_card_repeated",
            "{shown}"
        );
        assert!(
            shown["risk_reasons"][0]["words"]
                .as_str()
                .unwrap()
                .contains("tried 4 times"),
            "{shown}"
        );
        // The card holder's own swipes at their usual door stay low.
        for s in swipes.iter().filter(|s| s.event.presented.is_none()) {
            assert!(s.event.risk_score.unwrap() < 50.0, "{s:?}");
        }
        // Retraining is a job the settings page and the API list.
        let jobs = site.app.get("/api/v1/jobs");
        let retrain = jobs
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "risk_retrain")
            .cloned()
            .unwrap_or_else(|| panic!("no risk_retrain job in {}", jobs.body));
        assert_eq!(retrain["schedule"], "15 2 * * *");
    }
}
