//! Topics of the live stream and cursors into them.
//!
//! Every event belongs to one topic: `projects` (projects appearing and leaving), `project:ID`
//! (a project's state) or `log:ID` (its log lines). Each topic numbers its events: a cursor
//! `(epoch, seq)` names the last event a client has. The epoch changes when the numbering starts
//! over (a server restart, a rotated log), so an old cursor can never be mistaken for a new one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Projects,
    Project(String),
    Log(String),
}

impl Topic {
    pub fn parse(text: &str) -> Option<Topic> {
        if text == "projects" {
            return Some(Topic::Projects);
        }
        let (kind, id) = text.split_once(':')?;
        if id.is_empty() || id.len() > 200 {
            return None;
        }
        match kind {
            "project" => Some(Topic::Project(id.to_owned())),
            "log" => Some(Topic::Log(id.to_owned())),
            _ => None,
        }
    }

    /// The project a topic is about (`None` for `projects`).
    pub fn project(&self) -> Option<&str> {
        match self {
            Topic::Projects => None,
            Topic::Project(id) | Topic::Log(id) => Some(id),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Projects => f.write_str("projects"),
            Topic::Project(id) => write!(f, "project:{id}"),
            Topic::Log(id) => write!(f, "log:{id}"),
        }
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Topic::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown topic {text:?}")))
    }
}

/// The position of the last event of a topic that a client (or a response) reflects.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    pub epoch: u64,
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_bad_ones_are_refused() {
        for text in ["projects", "project:alpha-1234", "log:a:b"] {
            let topic = Topic::parse(text).expect("valid topic");
            assert_eq!(topic.to_string(), text);
        }
        assert_eq!(
            Topic::parse("log:x").and_then(|t| t.project().map(str::to_owned)),
            Some("x".into())
        );
        for bad in ["", "project:", "logs:x", "project", "x:y"] {
            assert_eq!(Topic::parse(bad), None, "{bad:?}");
        }
        let json = serde_json::to_string(&Topic::Log("p".into())).unwrap_or_default();
        assert_eq!(json, "\"log:p\"");
        assert!(serde_json::from_str::<Topic>("\"nope\"").is_err());
    }

    #[test]
    fn cursors_order_by_epoch_then_seq() {
        let old = Cursor { epoch: 1, seq: 900 };
        let new = Cursor { epoch: 2, seq: 1 };
        assert!(new > old);
    }
}
