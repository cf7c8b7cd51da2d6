//! The kinds of agent project loopwatch knows. A directory may hold more than one (a Ralph loop
//! that drives a BuildRunner build): a project carries the set of kinds found in it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectKind {
    /// A Ralph loop: `.ralph/` holds its log, rows, pid and notification.
    Ralph,
    /// A BuildRunner build: `.buildrunner/` holds its checkpoints, features and context files.
    #[serde(rename = "buildrunner")]
    BuildRunner,
}

impl ProjectKind {
    /// Every kind, in the order detection tries them.
    pub const ALL: [ProjectKind; 2] = [ProjectKind::Ralph, ProjectKind::BuildRunner];

    /// The name a badge shows.
    pub fn label(self) -> &'static str {
        match self {
            ProjectKind::Ralph => "Ralph",
            ProjectKind::BuildRunner => "BuildRunner",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_short_names() {
        let json = serde_json::to_string(&ProjectKind::ALL).unwrap_or_default();
        assert_eq!(json, r#"["ralph","buildrunner"]"#);
    }
}
