//! The context files of a project (`AGENTS.md`, `PROMPT.md`, `specs/*.md`): listing and reading,
//! with every other path refused.

use std::{fs, io::Read, path::Path};

use crate::app::api::ApiError;
use crate::model::api::ContextFile;

use super::project::is_spec_name;

/// Largest context file shown.
const MAX_CONTEXT_BYTES: u64 = 1024 * 1024;

pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["AGENTS.md", "PROMPT.md"]
        .into_iter()
        .filter(|name| dir.join(name).is_file())
        .map(str::to_owned)
        .collect();
    let mut specs: Vec<String> = fs::read_dir(dir.join("specs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_spec_name(name))
        .map(|name| format!("specs/{name}"))
        .collect();
    specs.sort();
    names.extend(specs);
    names
}

/// Reads an allowed context file. Symlinks are refused too: a link could point anywhere.
pub fn read(dir: &Path, name: &str) -> Result<ContextFile, ApiError> {
    let allowed = matches!(name, "AGENTS.md" | "PROMPT.md")
        || name.strip_prefix("specs/").is_some_and(is_spec_name);
    if !allowed {
        return Err(ApiError::FileNotAllowed(name.chars().take(200).collect()));
    }
    let path = dir.join(name);
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::FileMissing(name.to_owned()))
        }
        Err(error) => return Err(ApiError::Io(format!("{name}: {error}"))),
    };
    if !metadata.is_file() {
        return Err(ApiError::FileNotAllowed(name.to_owned()));
    }
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .and_then(|file| file.take(MAX_CONTEXT_BYTES + 1).read_to_end(&mut bytes))
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
}
