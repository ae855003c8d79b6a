//! The people of a snapshot in name order with case-folded search keys, built once per
//! snapshot on first use, so the console lists and searches 100,000 people in memory.

use super::model::{Person, PersonStatus};

/// People sorted by (name, id), with what a search compares against.
#[derive(Debug)]
pub struct PeopleDirectory {
    /// Indexes into the snapshot's people, by (name, id): byte order, as SQLite's BINARY
    /// collation sorts, so the in-memory and SQL lists agree on SQLite.
    order: Vec<u32>,
    /// Lower-cased name and employee id, in `order`'s order.
    folded: Vec<(Box<str>, Box<str>)>,
}

/// What to look for: a text inside the name or the employee id (any case), and a status.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeopleQuery<'a> {
    pub text: Option<&'a str>,
    pub status: Option<PersonStatus>,
}

/// One page of matches: their ids in list order, and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPage {
    pub ids: Vec<i64>,
    pub total: usize,
}

impl PeopleDirectory {
    pub fn build(people: &[Person]) -> PeopleDirectory {
        let mut order: Vec<u32> = (0..people.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&people[a as usize], &people[b as usize]);
            (a.name.as_str(), a.id).cmp(&(b.name.as_str(), b.id))
        });
        let folded = order
            .iter()
            .map(|&i| {
                let p = &people[i as usize];
                (
                    p.name.to_lowercase().into_boxed_str(),
                    p.employee_id.to_lowercase().into_boxed_str(),
                )
            })
            .collect();
        PeopleDirectory { order, folded }
    }

    /// The matches of `query` from `offset`, at most `limit` of them, and the total.
    /// `people` must be the slice the directory was built from.
    pub fn find(
        &self,
        people: &[Person],
        query: PeopleQuery<'_>,
        offset: usize,
        limit: usize,
    ) -> DirectoryPage {
        let text = query
            .text
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase);
        let mut ids = Vec::with_capacity(limit.min(self.order.len()));
        let mut total = 0;
        for (&i, (name, employee_id)) in self.order.iter().zip(&self.folded) {
            let Some(person) = people.get(i as usize) else {
                continue;
            };
            if query.status.is_some_and(|s| s != person.status) {
                continue;
            }
            if let Some(text) = &text
                && !name.contains(text.as_str())
                && !employee_id.contains(text.as_str())
            {
                continue;
            }
            if total >= offset && ids.len() < limit {
                ids.push(person.id);
            }
            total += 1;
        }
        DirectoryPage { ids, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: i64, employee_id: &str, name: &str, status: PersonStatus) -> Person {
        Person {
            id,
            employee_id: employee_id.to_owned(),
            name: name.to_owned(),
            status,
            valid_from: None,
            valid_until: None,
        }
    }

    fn people() -> Vec<Person> {
        vec![
            person(4, "E-4", "Zoë Öztürk", PersonStatus::Active),
            person(1, "E-1", "Ada Turner", PersonStatus::Active),
            person(3, "X-99", "Ada Turner", PersonStatus::Suspended),
            person(2, "E-2", "Ben Okafor", PersonStatus::Terminated),
        ]
    }

    #[test]
    fn lists_by_name_then_id_and_pages() {
        let people = people();
        let dir = PeopleDirectory::build(&people);
        let all = dir.find(&people, PeopleQuery::default(), 0, 10);
        assert_eq!(all.ids, vec![1, 3, 2, 4]);
        assert_eq!(all.total, 4);
        let second = dir.find(&people, PeopleQuery::default(), 2, 1);
        assert_eq!(
            second,
            DirectoryPage {
                ids: vec![2],
                total: 4
            }
        );
        let past_the_end = dir.find(&people, PeopleQuery::default(), 9, 5);
        assert_eq!(
            past_the_end,
            DirectoryPage {
                ids: vec![],
                total: 4
            }
        );
    }

    #[test]
    fn searches_names_and_employee_ids_in_any_case_and_filters_status() {
        let people = people();
        let dir = PeopleDirectory::build(&people);
        let find = |text: &str, status| {
            dir.find(
                &people,
                PeopleQuery {
                    text: Some(text),
                    status,
                },
                0,
                10,
            )
            .ids
        };
        assert_eq!(find("turn", None), vec![1, 3]);
        assert_eq!(find("  TURN ", None), vec![1, 3], "trimmed, any case");
        assert_eq!(find("x-9", None), vec![3], "employee id");
        assert_eq!(find("öZTÜ", None), vec![4], "non-ASCII letters fold too");
        assert_eq!(find("turn", Some(PersonStatus::Suspended)), vec![3]);
        assert_eq!(find("nobody", None), Vec::<i64>::new());
        assert_eq!(find("", Some(PersonStatus::Terminated)), vec![2]);
    }
}
