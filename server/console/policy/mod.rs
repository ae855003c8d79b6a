//! The pages that shape the policy, one module per thing they manage: zones (a tree with
//! their doors), schedules (a week view; `schedules/windows.rs`), holidays, access levels.

pub mod holidays;
pub mod levels;
pub mod schedules;
pub mod zones;

use serde::Deserialize;

use crate::entities::Page;

const EVERYTHING: Page = Page {
    offset: 0,
    limit: 1000,
};

/// Names a list: "Main Entrance", "Main Entrance and Lobby", "A, B and C".
fn and_list(items: &[(i64, String)]) -> String {
    match items {
        [] => String::new(),
        [one] => one.1.clone(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.1
        ),
    }
}

/// One kind of thing that keeps something from being deleted: what they are, which
/// (id and name), and what to do about them.
struct Keeping<'a> {
    what: &'a str,
    items: &'a [(i64, String)],
    remedy: &'a str,
}

/// Why something could not be deleted, naming what keeps it and what to do about each.
/// The entity layer decided; this only says it in the building's terms, or repeats the
/// entity's words when the console finds nothing.
fn refusal(name: &str, entity_says: &str, reasons: &[Keeping<'_>]) -> String {
    let named: Vec<String> = reasons
        .iter()
        .filter(|k| !k.items.is_empty())
        .map(|k| format!("{}: {}; {}.", k.what, and_list(k.items), k.remedy))
        .collect();
    if named.is_empty() {
        return format!("{name} was not deleted: {entity_says}.");
    }
    format!("{name} was not deleted. {}", named.join(" "))
}

#[derive(Deserialize)]
pub struct NoFields {}
