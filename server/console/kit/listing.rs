//! What the console's searched and paged lists share: the query (`?q=…&page=N`), the rows
//! a page holds, and where the list stands for the pager, whose links keep the search.
//! The search box and the pager are the macros `search` and `pager` of `forms.html`.

use serde::Deserialize;

use crate::entities::Page;

/// A list's query string: the search text and the page asked for.
#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: Option<i64>,
}

impl ListQuery {
    /// The search text, trimmed; None when there is none.
    pub fn search(&self) -> Option<String> {
        Some(self.q.trim().to_owned()).filter(|q| !q.is_empty())
    }

    /// The page asked for, counted from 1.
    pub fn page_no(&self) -> i64 {
        self.page.unwrap_or(1).max(1)
    }

    /// The rows of the page asked for, `per_page` to a page.
    pub fn rows(&self, per_page: i64) -> Page {
        Page {
            offset: (self.page_no() - 1).saturating_mul(per_page),
            limit: per_page,
        }
    }
}

/// Where a list stands: what was searched for, how many rows match, the page shown and
/// how many pages there are.
pub struct Paged {
    /// The list's own URL, such as `/levels`.
    pub path: &'static str,
    pub q: String,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

impl Paged {
    pub fn new(path: &'static str, query: &ListQuery, total: i64, per_page: i64) -> Paged {
        Paged {
            path,
            q: query.q.clone(),
            total,
            page: query.page_no(),
            pages: pages(total, per_page),
        }
    }

    /// The list's URL for another page, keeping the search.
    pub fn href(&self, page: &i64) -> String {
        format!(
            "{}?q={}&page={page}",
            self.path,
            super::percent_encode_query(&self.q)
        )
    }

    /// Whether a search narrows the list.
    pub fn searched(&self) -> bool {
        !self.q.trim().is_empty()
    }
}

/// How many pages `total` rows fill, `per_page` to a page (at least one, which may be
/// empty).
pub fn pages(total: i64, per_page: i64) -> i64 {
    ((total + per_page - 1) / per_page).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_from_one_and_links_keep_the_search() {
        let query = ListQuery {
            q: " night & day ".to_owned(),
            page: Some(0),
        };
        assert_eq!(query.search().as_deref(), Some("night & day"));
        assert_eq!(query.page_no(), 1);
        assert_eq!(query.rows(25).offset, 0);
        let paged = Paged::new("/schedules", &query, 51, 25);
        assert_eq!(paged.pages, 3);
        assert_eq!(
            paged.href(&2),
            "/schedules?q=+night+%26+day+&page=2",
            "the search travels with the page"
        );
        assert_eq!(pages(0, 25), 1);
        let third = ListQuery {
            q: String::new(),
            page: Some(3),
        };
        assert_eq!(third.rows(25).offset, 50);
        assert_eq!(third.search(), None);
    }
}
