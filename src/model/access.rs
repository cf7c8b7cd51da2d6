//! What one session may see and do: its role, the projects it is limited to and the share
//! link it came from. The server decides with it; the page reads it to hide what a viewer
//! cannot use.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::audit::Role;

/// A session's rights. The default is the narrowest: a viewer of no project (a session whose
/// rights are unknown gets nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub role: Role,
    /// The projects this session sees; `None` means every project (operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<BTreeSet<String>>,
    /// The share link a viewer session was opened with (its public id, not its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            role: Role::Viewer,
            projects: Some(BTreeSet::new()),
            share: None,
        }
    }
}

impl Access {
    /// Everything: the first-run sign-in, and a server without authentication.
    pub fn operator() -> Self {
        Access {
            role: Role::Operator,
            projects: None,
            share: None,
        }
    }

    /// Read-only, limited to `projects`, opened with the share link `share`.
    pub fn viewer(projects: BTreeSet<String>, share: String) -> Self {
        Access {
            role: Role::Viewer,
            projects: Some(projects),
            share: Some(share),
        }
    }

    /// Whether this session may see `project` (its page, events, files and lists).
    pub fn may_see(&self, project: &str) -> bool {
        self.projects
            .as_ref()
            .is_none_or(|projects| projects.contains(project))
    }

    /// Whether this session may change anything (start, stop, edit, archive, share).
    pub fn may_act(&self) -> bool {
        self.role == Role::Operator
    }
}

/// A read-only link as operators see it in the list (never with its key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// Public and short: names the link in lists, sessions and the audit trail.
    pub id: String,
    pub projects: Vec<String>,
    /// RFC 3339.
    pub created: String,
    /// Unix seconds.
    pub expires: u64,
    /// RFC 3339, when an operator revoked it.
    pub revoked: Option<String>,
}

impl ShareLink {
    /// Whether the link still opens (not revoked, not expired at `now`, Unix seconds).
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked.is_none() && self.expires > now
    }
}

/// A link just created: the only time its full address is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShareLink {
    pub share: ShareLink,
    /// The path to open, key included (`/api/share?key=...`): prefix it with the server's
    /// origin.
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_see_their_projects_only_and_never_act() {
        let viewer = Access::viewer(["alpha".to_owned()].into(), "s1".into());
        assert!(viewer.may_see("alpha"));
        assert!(!viewer.may_see("bravo"));
        assert!(!viewer.may_act());
        let operator = Access::operator();
        assert!(operator.may_see("bravo") && operator.may_act());
        let unknown = Access::default();
        assert!(!unknown.may_see("alpha") && !unknown.may_act());
    }
}
