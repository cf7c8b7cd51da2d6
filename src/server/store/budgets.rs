//! The budgets' table: one budget per project, kept as JSON so a new limit needs no migration.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::contract::ralph::budget::Budget;

impl Store {
    /// Sets a project's budget (an unlimited one removes it).
    pub fn set_budget(&self, project: &str, budget: &Budget, time: &str) -> Result<(), StoreError> {
        let connection = self.connection();
        if budget.is_unlimited() && budget.at_limit == Default::default() {
            connection.execute("DELETE FROM budgets WHERE project = ?1", params![project])?;
            return Ok(());
        }
        let text = serde_json::to_string(budget)
            .map_err(|error| StoreError::Open("budgets".into(), error.to_string()))?;
        connection.execute(
            "INSERT INTO budgets (project, budget, updated) VALUES (?1, ?2, ?3)
             ON CONFLICT (project) DO UPDATE SET budget = ?2, updated = ?3",
            params![project, text, time],
        )?;
        Ok(())
    }

    /// A project's budget (unlimited when none is set or the row cannot be read).
    pub fn budget(&self, project: &str) -> Result<Budget, StoreError> {
        let text: Option<String> = self
            .connection()
            .query_row(
                "SELECT budget FROM budgets WHERE project = ?1",
                params![project],
                |row| row.get(0),
            )
            .optional()?;
        Ok(text
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    /// Every set budget, by project.
    pub fn budgets(&self) -> Result<Vec<(String, Budget)>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare_cached("SELECT project, budget FROM budgets ORDER BY project")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut budgets = Vec::new();
        for row in rows {
            let (project, text) = row?;
            if let Ok(budget) = serde_json::from_str(&text) {
                budgets.push((project, budget));
            }
        }
        Ok(budgets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::budget::AtLimit;

    #[test]
    fn a_budget_is_set_replaced_and_removed() {
        let store = Store::in_memory().expect("store");
        assert_eq!(store.budget("alpha").expect("budget"), Budget::default());
        let budget = Budget {
            max_cost_usd: Some(5.0),
            at_limit: AtLimit::Pause,
            ..Budget::default()
        };
        store.set_budget("alpha", &budget, "t1").expect("set");
        assert_eq!(store.budget("alpha").expect("budget"), budget);
        let cheaper = Budget {
            max_cost_usd: Some(2.0),
            ..budget
        };
        store.set_budget("alpha", &cheaper, "t2").expect("replace");
        assert_eq!(
            store.budgets().expect("all"),
            [("alpha".to_owned(), cheaper)]
        );
        store
            .set_budget("alpha", &Budget::default(), "t3")
            .expect("remove");
        assert!(store.budgets().expect("all").is_empty());
    }
}
