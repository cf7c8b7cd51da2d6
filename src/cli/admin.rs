//! `loopwatch share` and `loopwatch audit`: what an operator does from a shell, against the
//! data directory's store (a server running on the same directory sees the new link at once).

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf};

use clap::Args;

use crate::model::audit::AuditEntry;
use crate::server::{auth, share, store::Store};

#[derive(Args, Debug)]
pub struct ShareArgs {
    /// A project the link shows (its id, as in the dashboard's addresses); repeat for more.
    #[arg(long = "project", value_name = "ID", required = true)]
    projects: Vec<String>,
    /// How long the link opens: `7d`, `12h`, `90m`.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    expires: String,
    /// Where the server keeps its data [default: $LOOPWATCH_DATA_DIR, else
    /// ~/.local/share/loopwatch].
    #[arg(long, value_name = "DIR", env = "LOOPWATCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The address the server listens on (the link is printed for it).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The address viewers reach the server at, when not --addr (a proxy's, with its scheme:
    /// `https://dash.example.org`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this project's actions.
    #[arg(long, value_name = "ID")]
    project: Option<String>,
    /// How many entries, newest first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// Where the server keeps its data [default: $LOOPWATCH_DATA_DIR, else
    /// ~/.local/share/loopwatch].
    #[arg(long, value_name = "DIR", env = "LOOPWATCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] crate::server::store::StoreError),
    #[error(transparent)]
    Share(#[from] share::ShareError),
}

fn open_store(data_dir: Option<PathBuf>) -> Result<Store, AdminError> {
    let dir = data_dir.unwrap_or_else(auth::default_data_dir);
    Ok(Store::open(&dir)?)
}

/// Creates a link and returns the line to print.
pub fn share(args: ShareArgs) -> Result<String, AdminError> {
    let store = open_store(args.data_dir)?;
    let lifetime = share::parse_lifetime(&args.expires)?;
    let projects: BTreeSet<String> = args.projects.into_iter().collect();
    let made = share::create(&store, &projects, lifetime)?;
    let base = args
        .url
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{}", args.addr));
    let entry = crate::server::store::NewAuditEntry {
        time: crate::server::clock::now(),
        session: "cli".into(),
        role: crate::model::audit::Role::Operator,
        project: None,
        action: "share".into(),
        params: serde_json::json!({"projects": made.share.projects, "expires": args.expires})
            .to_string(),
        outcome: crate::model::audit::Outcome::Done,
        detail: format!("link {}", made.share.id),
    };
    store.record(&entry)?;
    Ok(format!(
        "read-only link {} to {} (until {}; keep it private): {base}{}",
        made.share.id,
        made.share.projects.join(", "),
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(made.share.expires)
        ),
        made.path
    ))
}

/// The trail's lines, newest first.
pub fn audit(args: AuditArgs) -> Result<Vec<String>, AdminError> {
    let store = open_store(args.data_dir)?;
    let entries = store.audit(args.project.as_deref(), args.limit)?;
    Ok(entries.iter().map(audit_line).collect())
}

/// One entry on one line: time, outcome, role and session, project, action, parameters, and
/// what happened. Line breaks inside a field are shown as `\n` so each entry stays one line.
pub fn audit_line(entry: &AuditEntry) -> String {
    let one_line = |text: &str| text.replace('\r', "\\r").replace('\n', "\\n");
    let mut line = format!(
        "{} {} {}:{} {} {}",
        entry.time,
        entry.outcome.as_str(),
        entry.role.as_str(),
        entry.session,
        entry.project.as_deref().unwrap_or("-"),
        entry.action,
    );
    if !entry.params.is_empty() && entry.params != "null" {
        line.push(' ');
        line.push_str(&one_line(&entry.params));
    }
    if !entry.detail.is_empty() {
        line.push_str(" - ");
        line.push_str(&one_line(&entry.detail));
    }
    line
}
