//! The context files of a project (`AGENTS.md`, `PROMPT.md`, `specs/*.md`): listing and reading,
//! with every other path refused. Both go through [`safe_open`]: a link, a special file or a
//! hard link is neither listed nor read, and a `specs` link lists nothing.

use std::io::Read;
use std::path::Path;

use crate::model::api_types::{ApiError, ContextFile};

use super::kind::is_spec_name;
use crate::server::safe_open;

/// Largest context file shown.
const MAX_CONTEXT_BYTES: u64 = 1024 * 1024;

pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["AGENTS.md", "PROMPT.md"]
        .into_iter()
        .filter(|name| safe_open::open(dir, name).is_ok())
        .map(str::to_owned)
        .collect();
    // A refused `specs` (a link, another file system) lists nothing; the project's card says why.
    let specs = safe_open::list_files(dir, "specs").unwrap_or_default();
    names.extend(
        specs
            .into_iter()
            .filter(|name| is_spec_name(name))
            .map(|name| format!("specs/{name}")),
    );
    names
}

/// Reads an allowed context file. Links, special files and hard links are refused too: they
/// could lead anywhere.
pub fn read(dir: &Path, name: &str) -> Result<ContextFile, ApiError> {
    let allowed = matches!(name, "AGENTS.md" | "PROMPT.md")
        || name.strip_prefix("specs/").is_some_and(is_spec_name);
    if !allowed {
        return Err(ApiError::FileNotAllowed(name.chars().take(200).collect()));
    }
    let file = match safe_open::open(dir, name) {
        Ok(file) => file,
        Err(safe_open::OpenError::Missing(_)) => {
            return Err(ApiError::FileMissing(name.to_owned()))
        }
        Err(safe_open::OpenError::Refused(refused)) => {
            tracing::debug!(%refused, "context file refused");
            return Err(ApiError::FileNotAllowed(name.to_owned()));
        }
        Err(error) => return Err(ApiError::Io(error.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONTEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ApiError::Io(format!("{name}: {error}")))?;
    let truncated = bytes.len() as u64 > MAX_CONTEXT_BYTES;
    bytes.truncate(MAX_CONTEXT_BYTES as usize);
    Ok(ContextFile {
        name: name.to_owned(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn lists_and_reads_only_context_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("specs/nested")).expect("mkdir");
        fs::write(root.join("AGENTS.md"), "agents").expect("write");
        fs::write(root.join("specs/b.md"), "b").expect("write");
        fs::write(root.join("specs/a.md"), "a").expect("write");
        fs::write(root.join("specs/notes.txt"), "no").expect("write");
        fs::write(root.join("specs/.hidden.md"), "no").expect("write");
        fs::write(root.join("secret.md"), "no").expect("write");
        assert_eq!(list(root), ["AGENTS.md", "specs/a.md", "specs/b.md"]);
        assert_eq!(read(root, "specs/a.md").map(|f| f.text), Ok("a".to_owned()));
        assert_eq!(
            read(root, "PROMPT.md"),
            Err(ApiError::FileMissing("PROMPT.md".into()))
        );
        for bad in [
            "secret.md",
            "../secret.md",
            "specs/../secret.md",
            "specs/nested/x.md",
            "/etc/passwd",
            "specs/.hidden.md",
            "specs/notes.txt",
            "specs/",
            "",
        ] {
            assert!(
                matches!(read(root, bad), Err(ApiError::FileNotAllowed(_))),
                "{bad:?} must be refused"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::NamedTempFile::new().expect("outside file");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("AGENTS.md")).expect("link");
        assert!(matches!(
            read(dir.path(), "AGENTS.md"),
            Err(ApiError::FileNotAllowed(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_specs_directory_lists_and_serves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = dir.path().join("p");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&project).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(outside.join("secret.md"), "secret").expect("write");
        std::os::unix::fs::symlink(&outside, project.join("specs")).expect("link");
        assert!(list(&project).is_empty());
        assert!(matches!(
            read(&project, "specs/secret.md"),
            Err(ApiError::FileNotAllowed(_))
        ));
    }
}
