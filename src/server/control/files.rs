//! Writing a project's files for the operator: the editable files (with a precondition on the
//! version edited, and an atomic replace), the pause flag and the injection queue. Every name is
//! checked against the few the loop reads, and every write goes through a directory opened by
//! [`safe_open`], so a link never leads a write out of the project.

use std::io::{Read, Write};
use std::path::Path;

use rustix::fs::{fstat, renameat, unlinkat, AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::model::api_types::ApiError;
use crate::model::control::EditableFile;
use crate::server::project::kind::is_spec_name;
use crate::server::safe_open::{self, OpenError, ProjectDir};

/// The largest file the editors load or save.
pub const MAX_EDIT_BYTES: u64 = 1024 * 1024;

/// The largest single injection.
pub const MAX_INJECT_BYTES: usize = 64 * 1024;

/// The loop's configuration, relative to the project.
pub const CONFIG: &str = ".ralph/config.json";

/// The plan: editable only while no loop runs (the agent ticks it).
pub const PLAN: &str = "IMPLEMENTATION_PLAN.md";

/// The queue of instructions for the next iteration; the loop reads and removes it.
pub const INJECT: &str = ".ralph/inject.md";

/// An editable file: the directory it lives in (relative to the project) and its name there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Editable<'a> {
    pub dir: &'a str,
    pub file: &'a str,
}

/// Which editable file `name` is; anything else (another file, a path that climbs, a nested
/// spec) is refused.
pub fn editable(name: &str) -> Result<Editable<'_>, ApiError> {
    match name {
        "AGENTS.md" | "PROMPT.md" | PLAN => Ok(Editable {
            dir: "",
            file: name,
        }),
        CONFIG => Ok(Editable {
            dir: ".ralph",
            file: "config.json",
        }),
        _ => match name.strip_prefix("specs/") {
            Some(spec) if is_spec_name(spec) => Ok(Editable {
                dir: "specs",
                file: spec,
            }),
            _ => Err(ApiError::FileNotAllowed(name.chars().take(200).collect())),
        },
    }
}

/// The version of some bytes: their SHA-256, hex.
pub fn version_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Maps a refusal or failure to open to what the operator is told: a link or special file is
/// a bad request (400), the rest an I/O failure.
fn open_failed(name: &str, error: OpenError) -> ApiError {
    match error {
        OpenError::Missing(_) => ApiError::FileMissing(name.to_owned()),
        OpenError::Refused(refused) => ApiError::FileNotAllowed(format!("{name}: {refused}")),
        OpenError::Io { error, .. } => ApiError::Control(format!("{name}: {error}")),
    }
}

/// The bytes of `file` in `dir`, `None` when it does not exist.
fn read_current(dir: &ProjectDir, name: &str, file: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let handle = match dir.open(file, OFlags::RDONLY, Mode::empty()) {
        Ok(handle) => handle,
        Err(OpenError::Missing(_)) => return Ok(None),
        Err(error) => return Err(open_failed(name, error)),
    };
    let mut bytes = Vec::new();
    handle
        .take(MAX_EDIT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ApiError::Control(format!("{name}: {error}")))?;
    if bytes.len() as u64 > MAX_EDIT_BYTES {
        return Err(ApiError::TooLarge {
            name: name.to_owned(),
            limit: MAX_EDIT_BYTES,
        });
    }
    Ok(Some(bytes))
}

fn text_of(name: &str, bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|_| ApiError::Invalid(format!("{name} is not UTF-8 text")))
}

/// Opens the directory of an editable file; a missing `specs` directory is `Missing`.
fn open_parent(project: &Path, name: &str, at: Editable<'_>) -> Result<ProjectDir, ApiError> {
    safe_open::open_dir(project, at.dir).map_err(|error| open_failed(name, error))
}

/// Loads an editable file with its version. `editable` is left for the caller to decide (the
/// plan depends on whether a loop runs).
pub fn load(project: &Path, name: &str) -> Result<EditableFile, ApiError> {
    let at = editable(name)?;
    let bytes = match open_parent(project, name, at) {
        Ok(dir) => read_current(&dir, name, at.file)?,
        Err(ApiError::FileMissing(_)) => None,
        Err(error) => return Err(error),
    };
    let version = bytes.as_deref().map(version_of).unwrap_or_default();
    Ok(EditableFile {
        name: name.to_owned(),
        text: bytes.map(|bytes| text_of(name, bytes)).transpose()?,
        version,
        editable: true,
    })
}

/// Checks the file is still at `expected` (empty: it must not exist); otherwise the operator
/// gets its current text to merge against.
fn check_version(
    dir: &ProjectDir,
    name: &str,
    file: &str,
    expected: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let current = read_current(dir, name, file)?;
    let version = current.as_deref().map(version_of).unwrap_or_default();
    if version != expected {
        return Err(ApiError::Changed {
            name: name.to_owned(),
            current: current.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            version,
        });
    }
    Ok(current)
}

/// Replaces (or creates) an editable file with `text`, if it is still at `expected`: the text
/// goes to a temp file in the same directory, is synced, and renamed over the file, so a reader
/// (the agent) sees the old or the new file, never half of one. Returns the new version.
pub fn save(project: &Path, name: &str, expected: &str, text: &str) -> Result<String, ApiError> {
    let at = editable(name)?;
    if text.len() as u64 > MAX_EDIT_BYTES {
        return Err(ApiError::TooLarge {
            name: name.to_owned(),
            limit: MAX_EDIT_BYTES,
        });
    }
    let dir = match open_parent(project, name, at) {
        Err(ApiError::FileMissing(_)) if at.dir == "specs" && expected.is_empty() => {
            make_specs_dir(project)?;
            open_parent(project, name, at)?
        }
        other => other?,
    };
    check_version(&dir, name, at.file, expected)?;
    let temp = format!(".{}.loopwatch-{}.tmp", at.file, std::process::id());
    let written = write_temp(&dir, &temp, text.as_bytes()).and_then(|()| {
        // Checked again right before the swap: the window for an agent's write is the rename.
        check_version(&dir, name, at.file, expected)?;
        renameat(&dir.fd, temp.as_str(), &dir.fd, at.file)
            .map_err(|errno| ApiError::Control(format!("{name}: rename: {errno}")))
    });
    if written.is_err() {
        let _ = unlinkat(&dir.fd, temp.as_str(), AtFlags::empty());
    }
    written?;
    // The rename is durable once the directory is.
    let _ = rustix::fs::fsync(&dir.fd);
    Ok(version_of(text.as_bytes()))
}

fn write_temp(dir: &ProjectDir, temp: &str, bytes: &[u8]) -> Result<(), ApiError> {
    // A leftover (or planted) temp file is removed, never opened: `O_EXCL` creates a new one.
    let _ = unlinkat(&dir.fd, temp, AtFlags::empty());
    let mut file = dir
        .open(
            temp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|error| open_failed(temp, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| ApiError::Control(format!("{temp}: {error}")))
}

fn make_specs_dir(project: &Path) -> Result<(), ApiError> {
    let root = safe_open::open_dir(project, "").map_err(|error| open_failed("specs", error))?;
    match rustix::fs::mkdirat(&root.fd, "specs", Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(errno) => Err(ApiError::Control(format!("specs: {errno}"))),
    }
}

/// Deletes a spec, if it is still at `expected`. Only specs can be deleted: the loop needs the
/// other files.
pub fn delete(project: &Path, name: &str, expected: &str) -> Result<(), ApiError> {
    let at = editable(name)?;
    if at.dir != "specs" {
        return Err(ApiError::Invalid(format!("{name} cannot be deleted")));
    }
    let dir = open_parent(project, name, at)?;
    if check_version(&dir, name, at.file, expected)?.is_none() {
        return Err(ApiError::FileMissing(name.to_owned()));
    }
    unlinkat(&dir.fd, at.file, AtFlags::empty())
        .map_err(|errno| ApiError::Control(format!("{name}: {errno}")))?;
    let _ = rustix::fs::fsync(&dir.fd);
    Ok(())
}

/// How the pause flag is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    Pause,
    Resume,
}

/// Creates or removes `.ralph/pause`. Idempotent: pausing a paused loop changes nothing.
pub fn set_pause(project: &Path, to: Pause) -> Result<(), ApiError> {
    let dir = safe_open::open_dir(project, ".ralph").map_err(|e| open_failed(".ralph", e))?;
    match to {
        Pause::Pause => dir
            .open(
                "pause",
                OFlags::WRONLY | OFlags::CREATE,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
            .map_err(|error| open_failed(".ralph/pause", error)),
        Pause::Resume => match unlinkat(&dir.fd, "pause", AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(errno) => Err(ApiError::Control(format!(".ralph/pause: {errno}"))),
        },
    }
}

/// Appends `text` (with a final newline) to `.ralph/inject.md` in one `O_APPEND` write, so it
/// never interleaves with another writer's text.
pub fn inject(project: &Path, text: &str) -> Result<(), ApiError> {
    let trimmed = text.trim_end();
    if trimmed.trim().is_empty() {
        return Err(ApiError::Invalid("the injection is empty".into()));
    }
    let mut bytes = trimmed.as_bytes().to_vec();
    bytes.push(b'\n');
    if bytes.len() > MAX_INJECT_BYTES {
        return Err(ApiError::TooLarge {
            name: INJECT.into(),
            limit: MAX_INJECT_BYTES as u64,
        });
    }
    let dir = safe_open::open_dir(project, ".ralph").map_err(|e| open_failed(".ralph", e))?;
    let mut file = dir
        .open(
            "inject.md",
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|error| open_failed(INJECT, error))?;
    let written = file
        .write(&bytes)
        .map_err(|error| ApiError::Control(format!("{INJECT}: {error}")))?;
    if written != bytes.len() {
        return Err(ApiError::Control(format!(
            "{INJECT}: only {written} of {} bytes were written",
            bytes.len()
        )));
    }
    file.sync_all()
        .map_err(|error| ApiError::Control(format!("{INJECT}: {error}")))
}

/// The injection waiting for the loop, if any.
pub fn pending_injection(project: &Path) -> Option<String> {
    let file = safe_open::open(project, INJECT).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_INJECT_BYTES as u64 * 4)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `.ralph/pause` exists (as a file of the project).
pub fn is_paused(project: &Path) -> bool {
    safe_open::open(project, ".ralph/pause").is_ok()
}

/// Whether the project's `ralph.sh` is an executable file of the project.
pub fn has_own_script(project: &Path) -> bool {
    safe_open::open(project, "ralph.sh")
        .ok()
        .and_then(|file| fstat(&file).ok())
        .is_some_and(|stat| stat.st_mode & 0o111 != 0)
}

/// Validates a new `.ralph/config.json`: the known keys from the form over the current object,
/// unknown keys (such as `model`) kept as they are.
pub fn merge_config(
    current: Option<&str>,
    form: &crate::model::control::ConfigForm,
) -> Result<String, ApiError> {
    use serde_json::{Map, Value};
    let mut object = match current.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(object))) => object,
        Some(Ok(_)) => {
            return Err(ApiError::Invalid(
                "config.json is not a JSON object; fix it in the file".into(),
            ))
        }
        Some(Err(error)) => {
            return Err(ApiError::Invalid(format!(
                "config.json is not valid JSON ({error}); fix it in the file"
            )))
        }
    };
    let cli = form.cli.trim();
    if cli.is_empty() || cli.contains(char::is_whitespace) {
        return Err(ApiError::Invalid(
            "cli must be one word (claude, codex, ...)".into(),
        ));
    }
    if form.max_iterations > 100_000 {
        return Err(ApiError::Invalid("max_iterations is at most 100000".into()));
    }
    object.insert("cli".into(), Value::String(cli.to_owned()));
    object.insert(
        "flags".into(),
        Value::Array(
            form.flags
                .split_whitespace()
                .map(|flag| Value::String(flag.to_owned()))
                .collect(),
        ),
    );
    object.insert("max_iterations".into(), Value::from(form.max_iterations));
    object.insert(
        "test_command".into(),
        Value::String(form.test_command.trim().to_owned()),
    );
    let mut text = serde_json::to_string_pretty(&Value::Object(object))
        .map_err(|error| ApiError::Invalid(error.to_string()))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_the_loop_files_are_editable() {
        for good in ["AGENTS.md", "PROMPT.md", PLAN, CONFIG, "specs/a.md"] {
            assert!(editable(good).is_ok(), "{good}");
        }
        for bad in [
            "ralph.sh",
            ".ralph/ralph.pid",
            "specs/../x.md",
            "specs/a/b.md",
            "specs/.h.md",
            "../PROMPT.md",
            "",
        ] {
            assert!(
                matches!(editable(bad), Err(ApiError::FileNotAllowed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_stale_save_changes_nothing_and_a_fresh_one_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("PROMPT.md"), "one").expect("write");
        let loaded = load(dir.path(), "PROMPT.md").expect("load");
        fs::write(dir.path().join("PROMPT.md"), "two").expect("agent writes");
        let stale = save(dir.path(), "PROMPT.md", &loaded.version, "mine");
        assert!(
            matches!(&stale, Err(ApiError::Changed { current: Some(text), .. }) if text == "two")
        );
        assert_eq!(
            fs::read(dir.path().join("PROMPT.md")).expect("read"),
            b"two"
        );
        let version = save(dir.path(), "PROMPT.md", &version_of(b"two"), "mine").expect("save");
        assert_eq!(version, version_of(b"mine"));
        assert_eq!(
            fs::read_to_string(dir.path().join("PROMPT.md")).expect("read"),
            "mine"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn specs_are_created_and_deleted_against_their_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        save(dir.path(), "specs/new.md", "", "spec").expect("create");
        assert!(matches!(
            save(dir.path(), "specs/new.md", "", "again"),
            Err(ApiError::Changed { .. })
        ));
        assert!(matches!(
            delete(dir.path(), "specs/new.md", "stale"),
            Err(ApiError::Changed { .. })
        ));
        delete(dir.path(), "specs/new.md", &version_of(b"spec")).expect("delete");
        assert!(!dir.path().join("specs/new.md").exists());
    }

    #[test]
    fn config_keeps_unknown_keys_and_refuses_bad_values() {
        let form = crate::model::control::ConfigForm {
            cli: "claude".into(),
            flags: "-p --verbose".into(),
            max_iterations: 5,
            test_command: "make test".into(),
        };
        let merged = merge_config(Some(r#"{"model":"m","cli":"codex"}"#), &form).expect("merge");
        let value: serde_json::Value = serde_json::from_str(&merged).expect("json");
        assert_eq!(value["model"], "m");
        assert_eq!(value["cli"], "claude");
        assert_eq!(value["flags"][1], "--verbose");
        assert!(merge_config(Some("[1]"), &form).is_err());
        assert!(merge_config(Some("{"), &form).is_err());
        let bad = crate::model::control::ConfigForm {
            cli: "two words".into(),
            ..form
        };
        assert!(merge_config(None, &bad).is_err());
    }

    #[test]
    fn inject_appends_and_pause_toggles() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join(".ralph")).expect("mkdir");
        inject(dir.path(), "first").expect("inject");
        inject(dir.path(), "second\n\n").expect("inject");
        assert_eq!(
            pending_injection(dir.path()).as_deref(),
            Some("first\nsecond\n")
        );
        assert!(inject(dir.path(), "  \n").is_err());
        set_pause(dir.path(), Pause::Pause).expect("pause");
        assert!(is_paused(dir.path()));
        set_pause(dir.path(), Pause::Resume).expect("resume");
        assert!(!is_paused(dir.path()));
    }

    #[cfg(unix)]
    #[test]
    fn links_are_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::NamedTempFile::new().expect("outside");
        fs::write(outside.path(), "secret").expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("AGENTS.md")).expect("link");
        assert!(matches!(
            save(dir.path(), "AGENTS.md", "", "x"),
            Err(ApiError::FileNotAllowed(_))
        ));
        assert_eq!(fs::read(outside.path()).expect("read"), b"secret");
    }
}
