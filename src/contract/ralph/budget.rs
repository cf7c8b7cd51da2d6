//! Budgets: an operator's limits on what a loop may spend (cost, tokens, iterations, wall-clock
//! time), and the pure verdict over what it has spent: a warning from 80 %, an alert at 100 %.

use serde::{Deserialize, Serialize};

use super::alerts::{Alert, AlertKind};

/// From this share of a limit on, the budget warns.
pub const WARNING_AT: f64 = 0.8;

/// What happens when a limit is reached, besides the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtLimit {
    #[default]
    AlertOnly,
    /// loopwatch pauses the loop (`.ralph/pause`) as an audited action.
    Pause,
}

/// A project's limits; `None` is no limit on that measure.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Budget {
    pub max_cost_usd: Option<f64>,
    /// Thousands of tokens (the unit the loop reports).
    pub max_tokens: Option<f64>,
    pub max_iterations: Option<u32>,
    /// Wall-clock time from the first iteration's start, in minutes.
    pub max_minutes: Option<f64>,
    pub at_limit: AtLimit,
}

impl Budget {
    pub fn is_unlimited(&self) -> bool {
        self.max_cost_usd.is_none()
            && self.max_tokens.is_none()
            && self.max_iterations.is_none()
            && self.max_minutes.is_none()
    }

    /// Every limit positive and finite.
    pub fn check(&self) -> Result<(), String> {
        let limits = [
            ("cost", self.max_cost_usd),
            ("tokens", self.max_tokens),
            ("iterations", self.max_iterations.map(f64::from)),
            ("minutes", self.max_minutes),
        ];
        for (name, limit) in limits {
            if let Some(limit) = limit {
                if !limit.is_finite() || limit <= 0.0 {
                    return Err(format!("the {name} limit must be a positive number"));
                }
            }
        }
        Ok(())
    }
}

/// What the loop has spent so far.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub cost_usd: f64,
    /// Thousands of tokens.
    pub tokens: f64,
    pub iterations: u32,
    /// `None` when unknown (no timed iteration yet).
    pub minutes: Option<f64>,
}

/// One measure of a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Cost,
    Tokens,
    Iterations,
    WallClock,
}

impl Measure {
    pub fn label(self) -> &'static str {
        match self {
            Measure::Cost => "cost",
            Measure::Tokens => "tokens",
            Measure::Iterations => "iterations",
            Measure::WallClock => "wall-clock",
        }
    }
}

/// How far one measure is into its limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    pub measure: Measure,
    pub used: f64,
    pub limit: f64,
    /// `used / limit`; may pass 1.
    pub share: f64,
}

/// Where a budget stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Under,
    Warning,
    Exceeded,
}

impl Level {
    pub fn of(share: f64) -> Level {
        if share >= 1.0 {
            Level::Exceeded
        } else if share >= WARNING_AT {
            Level::Warning
        } else {
            Level::Under
        }
    }
}

/// Each limited measure with what was spent of it (a measure whose usage is unknown is left
/// out).
pub fn spent(budget: &Budget, usage: &Usage) -> Vec<Spent> {
    let measures = [
        (Measure::Cost, budget.max_cost_usd, Some(usage.cost_usd)),
        (Measure::Tokens, budget.max_tokens, Some(usage.tokens)),
        (
            Measure::Iterations,
            budget.max_iterations.map(f64::from),
            Some(f64::from(usage.iterations)),
        ),
        (Measure::WallClock, budget.max_minutes, usage.minutes),
    ];
    measures
        .into_iter()
        .filter_map(|(measure, limit, used)| {
            let (limit, used) = (limit?, used?);
            (limit.is_finite() && limit > 0.0 && used.is_finite()).then(|| Spent {
                measure,
                used: used.max(0.0),
                limit,
                share: used.max(0.0) / limit,
            })
        })
        .collect()
}

/// The measure furthest into its limit.
pub fn furthest(spent: &[Spent]) -> Option<Spent> {
    spent
        .iter()
        .copied()
        .max_by(|a, b| a.share.total_cmp(&b.share))
}

/// The budget's alert, if any: one for the highest level reached, naming every measure at it.
pub fn alert(budget: &Budget, usage: &Usage, iteration: Option<u32>) -> Option<Alert> {
    let spent = spent(budget, usage);
    let level = Level::of(furthest(&spent)?.share);
    let kind = match level {
        Level::Under => return None,
        Level::Warning => AlertKind::BudgetWarning,
        Level::Exceeded => AlertKind::BudgetExceeded,
    };
    let over: Vec<String> = spent
        .iter()
        .filter(|s| Level::of(s.share) == level)
        .map(|s| {
            format!(
                "{} {}% ({} of {})",
                s.measure.label(),
                (s.share * 100.0).floor(),
                amount(s.measure, s.used),
                amount(s.measure, s.limit)
            )
        })
        .collect();
    let message = match level {
        Level::Exceeded => match budget.at_limit {
            AtLimit::Pause => "The budget is used up: loopwatch pauses the loop.".to_owned(),
            AtLimit::AlertOnly => "The budget is used up.".to_owned(),
        },
        _ => format!("The budget is {}% used.", (WARNING_AT * 100.0).round()),
    };
    Some(Alert {
        kind,
        message,
        evidence: over.join("; "),
        iteration,
    })
}

/// A measure's amount as the operator reads it.
pub fn amount(measure: Measure, value: f64) -> String {
    match measure {
        Measure::Cost => format!("${value:.2}"),
        Measure::Tokens => format!("{value:.0}k"),
        Measure::Iterations => format!("{value:.0}"),
        Measure::WallClock => format!("{value:.0} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cost_budget(limit: f64) -> Budget {
        Budget {
            max_cost_usd: Some(limit),
            ..Budget::default()
        }
    }

    fn cost(used: f64) -> Usage {
        Usage {
            cost_usd: used,
            ..Usage::default()
        }
    }

    #[test]
    fn crossing_80_then_100_percent() {
        let budget = cost_budget(10.0);
        assert_eq!(alert(&budget, &cost(7.99), None), None);
        let warning = alert(&budget, &cost(8.0), Some(4)).expect("a warning at 80 %");
        assert_eq!(warning.kind, AlertKind::BudgetWarning);
        assert_eq!(warning.iteration, Some(4));
        assert!(
            warning.evidence.contains("cost 80%"),
            "{}",
            warning.evidence
        );
        assert!(
            warning.evidence.contains("$8.00 of $10.00"),
            "{}",
            warning.evidence
        );
        let exceeded = alert(&budget, &cost(10.0), None).expect("an alert at 100 %");
        assert_eq!(exceeded.kind, AlertKind::BudgetExceeded);
        assert_eq!(exceeded.message, "The budget is used up.");
        let pausing = Budget {
            at_limit: AtLimit::Pause,
            ..budget
        };
        let exceeded = alert(&pausing, &cost(12.0), None).expect("alert");
        assert!(exceeded.message.contains("pauses"), "{}", exceeded.message);
    }

    #[test]
    fn the_furthest_measure_decides_and_every_measure_at_that_level_is_named() {
        let budget = Budget {
            max_cost_usd: Some(10.0),
            max_tokens: Some(100.0),
            max_iterations: Some(5),
            max_minutes: Some(60.0),
            at_limit: AtLimit::AlertOnly,
        };
        let usage = Usage {
            cost_usd: 1.0,
            tokens: 120.0,
            iterations: 5,
            minutes: None,
        };
        let spent = spent(&budget, &usage);
        assert_eq!(spent.len(), 3, "wall-clock unknown: left out");
        let alert = alert(&budget, &usage, None).expect("alert");
        assert_eq!(alert.kind, AlertKind::BudgetExceeded);
        assert!(alert.evidence.contains("tokens 120%"), "{}", alert.evidence);
        assert!(
            alert.evidence.contains("iterations 100%"),
            "{}",
            alert.evidence
        );
        assert!(!alert.evidence.contains("cost"), "{}", alert.evidence);
    }

    #[test]
    fn no_limit_no_alert_and_bad_limits_are_refused() {
        assert!(Budget::default().is_unlimited());
        assert_eq!(alert(&Budget::default(), &cost(1e9), None), None);
        assert!(cost_budget(0.0).check().is_err());
        assert!(cost_budget(f64::NAN).check().is_err());
        assert!(cost_budget(-1.0).check().is_err());
        assert!(cost_budget(0.5).check().is_ok());
        assert!(Budget {
            max_iterations: Some(0),
            ..Budget::default()
        }
        .check()
        .is_err());
    }

    proptest! {
        #[test]
        fn the_level_only_rises_with_spending(limit in 0.01f64..1e6, a in 0.0f64..2e6, b in 0.0f64..2e6) {
            let budget = cost_budget(limit);
            let level = |used: f64| alert(&budget, &cost(used), None).map(|a| a.kind);
            let rank = |kind: Option<AlertKind>| match kind {
                None => 0,
                Some(AlertKind::BudgetWarning) => 1,
                _ => 2,
            };
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(rank(level(low)) <= rank(level(high)));
            if high >= 2.0 * limit {
                prop_assert_eq!(rank(level(high)), 2);
            }
        }
    }
}
