//! Opening a project's files: the one way every watched or served project file is opened.
//!
//! Everything inside a project directory is written by someone else (the agent, the loop, anyone
//! with access to it): a file may be a symlink to a secret elsewhere, a FIFO that blocks its
//! reader for ever, a device that never ends (`/dev/zero`), a hard link to a file outside the
//! project, or be swapped for one of those between a check and the open. So a file is:
//!
//! - opened relative to the project directory without following a symlink at any step
//!   (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, else a walk
//!   of `openat(O_NOFOLLOW | O_DIRECTORY)` per directory and `O_NOFOLLOW` on the file);
//! - opened with `O_NONBLOCK` (a FIFO or device opens at once instead of waiting);
//! - judged by `fstat` on the handle itself, so nothing can be swapped after the check: only a
//!   regular file, on the project directory's device, with one link, is accepted.
//!
//! A refusal is a typed [`Refused`] the project shows as a warning. Reads that serve requests
//! run off the async threads with a time limit ([`off_thread`]).

use std::{
    fs::File,
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use rustix::{
    fs::{fstat, openat, statat, AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD},
    io::Errno,
};

/// How long a request waits for a file read before it is answered with an error instead.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a project file was not opened although it exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} is or goes through a symbolic link (links are not followed)")]
    Symlink(String),
    #[error("{name} is a {kind}, not a regular file")]
    NotRegular { name: String, kind: &'static str },
    #[error("{0} is on another file system than the project")]
    OtherDevice(String),
    #[error("{name} has {links} hard links (a link can lead outside the project)")]
    HardLink { name: String, links: u64 },
    #[error("{0:?} is not a plain path inside the project")]
    BadPath(String),
}

/// What opening a project file can end in, other than a file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} does not exist")]
    Missing(String),
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    #[error("{name}: {error}")]
    Io { name: String, error: io::Error },
}

impl OpenError {
    /// The refusal, when this is one (also through an `io::Error` made from it).
    pub fn refusal(error: &io::Error) -> Option<&Refused> {
        error.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

impl From<OpenError> for io::Error {
    /// `Missing` keeps the `NotFound` kind (callers treat it as "no such file yet"); a refusal
    /// stays reachable through [`OpenError::refusal`].
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Missing(name) => {
                io::Error::new(io::ErrorKind::NotFound, format!("{name} does not exist"))
            }
            OpenError::Refused(refused) => io::Error::other(refused),
            OpenError::Io { error, .. } => error,
        }
    }
}

/// Opens `rel` (a `/`-separated path such as `.ralph/ralph.log`) inside the project directory
/// `dir` for reading, under the rules above.
pub fn open(dir: &Path, rel: &str) -> Result<File, OpenError> {
    let (base, device) = open_project_dir(dir)?;
    let fd = open_beneath(base.as_fd(), rel, OFlags::RDONLY, strategy())?;
    judge_file(&fd, rel, device)?;
    Ok(File::from(fd))
}

/// The names of the regular files directly in the directory `rel` of the project, sorted. The
/// directory is opened under the same rules as a file (a `specs` symlink lists nothing: it is
/// refused); entries that are links, special files, hard-linked or on another device are left
/// out. Names that are not UTF-8 are left out too.
pub fn list_files(dir: &Path, rel: &str) -> Result<Vec<String>, OpenError> {
    let (base, device) = open_project_dir(dir)?;
    let sub = open_beneath(
        base.as_fd(),
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY,
        strategy(),
    )?;
    judge_dir(&sub, rel, device)?;
    let entries = Dir::read_from(&sub).map_err(|errno| io_error(rel, errno))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|errno| io_error(rel, errno))?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        // `lstat` of the entry: nothing is opened, and a link is seen as a link.
        let Ok(stat) = statat(&sub, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::RegularFile && device_of(&stat) == device && links_of(&stat) <= 1 {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Checks that the directory `rel` of the project would be opened (it is a real directory of the
/// project, reached without links). `Ok(false)` when it does not exist.
pub fn dir_ok(dir: &Path, rel: &str) -> Result<bool, OpenError> {
    let (base, device) = open_project_dir(dir)?;
    match open_beneath(
        base.as_fd(),
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY,
        strategy(),
    ) {
        Ok(sub) => judge_dir(&sub, rel, device).map(|()| true),
        Err(OpenError::Missing(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// A directory of a project opened for writing into with `*at` calls (the control actions'
/// temp files, renames, appends): reached under the same rules as a file, so a name written
/// through it lands in the project and nowhere else.
pub struct ProjectDir {
    pub fd: OwnedFd,
    device: u64,
}

/// Opens the directory `rel` of the project (`""`: the project directory itself).
pub fn open_dir(dir: &Path, rel: &str) -> Result<ProjectDir, OpenError> {
    let (base, device) = open_project_dir(dir)?;
    if rel.is_empty() {
        return Ok(ProjectDir { fd: base, device });
    }
    let sub = open_beneath(
        base.as_fd(),
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY,
        strategy(),
    )?;
    judge_dir(&sub, rel, device)?;
    Ok(ProjectDir { fd: sub, device })
}

impl ProjectDir {
    /// Opens the entry `name` (a plain name, no `/`) of this directory with `flags` added to
    /// `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`, and accepts it only as a regular file of the
    /// project with one link. `Missing` when it does not exist (and `flags` do not create it).
    pub fn open(&self, name: &str, flags: OFlags, mode: Mode) -> Result<File, OpenError> {
        if name.contains('/') {
            return Err(Refused::BadPath(name.chars().take(200).collect()).into());
        }
        check_path(name)?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = openat(&self.fd, name, flags, mode).map_err(|errno| classify(name, errno))?;
        judge_file(&fd, name, self.device)?;
        Ok(File::from(fd))
    }
}

/// Runs a blocking file read on the blocking pool and waits at most [`READ_TIMEOUT`] for it: a
/// slow or stuck file costs one blocking thread, never an async thread or the request itself.
pub async fn off_thread<T: Send + 'static>(
    read: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    match tokio::time::timeout(READ_TIMEOUT, tokio::task::spawn_blocking(read)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(io::Error::other(format!("the read failed: {error}"))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the file took more than {READ_TIMEOUT:?} to read"),
        )),
    }
}

/// How files are reached below the project directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// One `openat2` call; the kernel refuses links and escapes.
    #[cfg(target_os = "linux")]
    Openat2,
    /// One `openat(O_NOFOLLOW)` per component.
    Walk,
}

/// Set once `openat2` turned out to be missing (an old kernel, or a sandbox that filters it).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn strategy() -> Strategy {
    #[cfg(target_os = "linux")]
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        return Strategy::Openat2;
    }
    Strategy::Walk
}

/// The project directory itself (not followed if it is a link) and its device.
fn open_project_dir(dir: &Path) -> Result<(OwnedFd, u64), OpenError> {
    let name = dir.display().to_string();
    let fd = openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| classify(&name, errno))?;
    let stat = fstat(&fd).map_err(|errno| io_error(&name, errno))?;
    Ok((fd, device_of(&stat)))
}

/// Checks `rel` is a plain relative path: no empty, `.` or `..` component, no NUL, not absolute.
fn check_path(rel: &str) -> Result<(), Refused> {
    let plain = !rel.is_empty()
        && !rel.contains('\0')
        && rel
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if plain {
        Ok(())
    } else {
        Err(Refused::BadPath(rel.chars().take(200).collect()))
    }
}

fn open_beneath(
    base: BorrowedFd<'_>,
    rel: &str,
    access: OFlags,
    strategy: Strategy,
) -> Result<OwnedFd, OpenError> {
    check_path(rel)?;
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    #[cfg(target_os = "linux")]
    if strategy == Strategy::Openat2 {
        use rustix::fs::{openat2, ResolveFlags};
        let resolve = ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV;
        // EAGAIN: a rename raced the lookup; the kernel asks for another try.
        for _ in 0..16 {
            match openat2(base, rel, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    return walk(base, rel, flags);
                }
                Err(Errno::NOTDIR) => return Err(not_a_directory(base, rel)),
                Err(errno) => return Err(classify(rel, errno)),
            }
        }
        return Err(io_error(rel, Errno::AGAIN));
    }
    walk(base, rel, flags)
}

/// Opens `rel` one component at a time: each directory with `O_NOFOLLOW | O_DIRECTORY` (and on
/// the project's device), the last component with `flags` (which hold `O_NOFOLLOW`).
fn walk(base: BorrowedFd<'_>, rel: &str, flags: OFlags) -> Result<OwnedFd, OpenError> {
    let device = fstat(base)
        .map(|stat| device_of(&stat))
        .map_err(|errno| io_error(rel, errno))?;
    let mut parts = rel.split('/').peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let at = current.as_ref().map_or(base, |fd| fd.as_fd());
        let failed = |errno: Errno| match errno {
            Errno::NOTDIR => not_a_directory(base, rel),
            errno => classify(rel, errno),
        };
        if parts.peek().is_none() {
            return openat(at, part, flags, Mode::empty()).map_err(failed);
        }
        let next = openat(
            at,
            part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(failed)?;
        let stat = fstat(&next).map_err(|errno| io_error(rel, errno))?;
        if device_of(&stat) != device {
            return Err(Refused::OtherDevice(rel.to_owned()).into());
        }
        current = Some(next);
    }
    Err(Refused::BadPath(rel.to_owned()).into())
}

/// Maps an open error: a link met on the way (`ELOOP` under `O_NOFOLLOW`/`RESOLVE_NO_SYMLINKS`),
/// a mount point crossed (`EXDEV` under `RESOLVE_NO_XDEV`), a socket (`ENXIO`), or a plain miss.
fn classify(rel: &str, errno: Errno) -> OpenError {
    match errno {
        Errno::NOENT | Errno::NOTDIR => OpenError::Missing(rel.to_owned()),
        Errno::LOOP => Refused::Symlink(rel.to_owned()).into(),
        Errno::XDEV => Refused::OtherDevice(rel.to_owned()).into(),
        Errno::NXIO => Refused::NotRegular {
            name: rel.to_owned(),
            kind: "socket",
        }
        .into(),
        errno => io_error(rel, errno),
    }
}

/// ENOTDIR: a component is not a directory, or (with `O_DIRECTORY | O_NOFOLLOW`) is a link to
/// one. Looks at each step (without following it) to tell a link from a plain miss; nothing is
/// opened or read.
fn not_a_directory(base: BorrowedFd<'_>, rel: &str) -> OpenError {
    let mut prefix = String::new();
    for part in rel.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        match statat(base, prefix.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                return Refused::Symlink(rel.to_owned()).into()
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    OpenError::Missing(rel.to_owned())
}

fn io_error(rel: &str, errno: Errno) -> OpenError {
    OpenError::Io {
        name: rel.to_owned(),
        error: io::Error::from_raw_os_error(errno.raw_os_error()),
    }
}

/// Accepts an opened handle only if it is a regular file on `device` with a single link.
fn judge_file(fd: &OwnedFd, rel: &str, device: u64) -> Result<(), OpenError> {
    let stat = fstat(fd).map_err(|errno| io_error(rel, errno))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(Refused::NotRegular {
            name: rel.to_owned(),
            kind: kind_name(kind),
        }
        .into());
    }
    if device_of(&stat) != device {
        return Err(Refused::OtherDevice(rel.to_owned()).into());
    }
    let links = links_of(&stat);
    if links > 1 {
        return Err(Refused::HardLink {
            name: rel.to_owned(),
            links,
        }
        .into());
    }
    Ok(())
}

fn judge_dir(fd: &OwnedFd, rel: &str, device: u64) -> Result<(), OpenError> {
    let stat = fstat(fd).map_err(|errno| io_error(rel, errno))?;
    if device_of(&stat) != device {
        return Err(Refused::OtherDevice(rel.to_owned()).into());
    }
    Ok(())
}

/// `st_dev` as a `u64` (its width differs between architectures).
#[allow(clippy::useless_conversion)]
fn device_of(stat: &Stat) -> u64 {
    u64::from(stat.st_dev)
}

/// `st_nlink` as a `u64` (its width differs between architectures).
#[allow(clippy::useless_conversion)]
fn links_of(stat: &Stat) -> u64 {
    u64::from(stat.st_nlink)
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{fs, io::Read, os::unix::fs::symlink};

    fn strategies() -> Vec<Strategy> {
        #[cfg(target_os = "linux")]
        return vec![Strategy::Openat2, Strategy::Walk];
        #[cfg(not(target_os = "linux"))]
        return vec![Strategy::Walk];
    }

    /// Opens under an explicit strategy, so both paths are tested whatever the kernel has.
    fn open_with(dir: &Path, rel: &str, strategy: Strategy) -> Result<String, OpenError> {
        let (base, device) = open_project_dir(dir)?;
        let fd = open_beneath(base.as_fd(), rel, OFlags::RDONLY, strategy)?;
        judge_file(&fd, rel, device)?;
        let mut text = String::new();
        File::from(fd)
            .read_to_string(&mut text)
            .map_err(|error| OpenError::Io {
                name: rel.to_owned(),
                error,
            })?;
        Ok(text)
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success(), "mkfifo {}", path.display());
    }

    fn refusal(result: Result<String, OpenError>) -> Refused {
        match result {
            Err(OpenError::Refused(refused)) => refused,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn regular_files_open_and_missing_ones_are_missing() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path();
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        fs::write(dir.join(".ralph/ralph.log"), "hello\n").expect("write");
        for strategy in strategies() {
            assert_eq!(
                open_with(dir, ".ralph/ralph.log", strategy).expect("opens"),
                "hello\n"
            );
            assert!(matches!(
                open_with(dir, ".ralph/nope", strategy),
                Err(OpenError::Missing(_))
            ));
            assert!(matches!(
                open_with(dir, "nope/ralph.log", strategy),
                Err(OpenError::Missing(_))
            ));
        }
        let file = open(dir, ".ralph/ralph.log").expect("public open");
        assert_eq!(file.metadata().expect("metadata").len(), 6);
    }

    #[test]
    fn links_at_any_step_are_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("p");
        let outside = temp.path().join("outside");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(outside.join("secret"), "secret").expect("write");
        symlink(outside.join("secret"), dir.join(".ralph/ralph.log")).expect("file link");
        symlink(&outside, dir.join("specs")).expect("dir link");
        // A link that stays inside the project is refused too: links are never followed.
        fs::write(dir.join("AGENTS.md"), "inside").expect("write");
        symlink("AGENTS.md", dir.join("PROMPT.md")).expect("relative link");
        symlink("/dev/zero", dir.join(".ralph/zero")).expect("device link");
        for strategy in strategies() {
            for rel in [
                ".ralph/ralph.log",
                "specs/secret",
                "PROMPT.md",
                ".ralph/zero",
            ] {
                assert!(
                    matches!(refusal(open_with(&dir, rel, strategy)), Refused::Symlink(_)),
                    "{rel} with {strategy:?}"
                );
            }
        }
        let listed = list_files(&dir, "specs");
        assert!(
            matches!(listed, Err(OpenError::Refused(Refused::Symlink(_)))),
            "{listed:?}"
        );
        assert!(dir_ok(&dir, "specs").is_err());
        // The project directory itself must not be a link either.
        let linked = temp.path().join("linked");
        symlink(&dir, &linked).expect("project link");
        assert!(open(&linked, "AGENTS.md").is_err());
    }

    #[test]
    fn fifos_devices_directories_and_sockets_are_refused_without_blocking() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path();
        fs::create_dir_all(dir.join(".ralph/sub")).expect("mkdir");
        // No writer: a blocking open would wait for ever.
        mkfifo(&dir.join(".ralph/ralph.log"));
        let _socket =
            std::os::unix::net::UnixListener::bind(dir.join(".ralph/sock")).expect("socket");
        for strategy in strategies() {
            for (rel, kind) in [
                (".ralph/ralph.log", "FIFO"),
                (".ralph/sub", "directory"),
                (".ralph/sock", "socket"),
            ] {
                assert_eq!(
                    refusal(open_with(dir, rel, strategy)),
                    Refused::NotRegular {
                        name: rel.to_owned(),
                        kind
                    },
                    "{strategy:?}"
                );
            }
        }
    }

    #[test]
    fn hard_links_are_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("p");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(temp.path().join("secret"), "secret").expect("write");
        fs::hard_link(temp.path().join("secret"), dir.join("AGENTS.md")).expect("hard link");
        for strategy in strategies() {
            assert_eq!(
                refusal(open_with(&dir, "AGENTS.md", strategy)),
                Refused::HardLink {
                    name: "AGENTS.md".into(),
                    links: 2
                }
            );
        }
    }

    #[test]
    fn files_on_another_device_are_refused() {
        // `/proc` is its own file system below `/` on every Linux.
        if !Path::new("/proc/version").exists() {
            return;
        }
        for strategy in strategies() {
            assert_eq!(
                refusal(open_with(Path::new("/"), "proc/version", strategy)),
                Refused::OtherDevice("proc/version".into()),
                "{strategy:?}"
            );
        }
    }

    #[test]
    fn paths_that_are_not_plain_are_refused_before_any_lookup() {
        let temp = tempfile::tempdir().expect("tempdir");
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(
                matches!(
                    open(temp.path(), bad),
                    Err(OpenError::Refused(Refused::BadPath(_)))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn listing_keeps_only_plain_regular_files() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("p");
        fs::create_dir_all(dir.join("specs/nested")).expect("mkdir");
        fs::write(dir.join("specs/b.md"), "b").expect("write");
        fs::write(dir.join("specs/a.md"), "a").expect("write");
        fs::write(temp.path().join("secret.md"), "secret").expect("write");
        symlink(temp.path().join("secret.md"), dir.join("specs/link.md")).expect("link");
        fs::hard_link(temp.path().join("secret.md"), dir.join("specs/hard.md")).expect("hard");
        mkfifo(&dir.join("specs/fifo.md"));
        assert_eq!(list_files(&dir, "specs").expect("listed"), ["a.md", "b.md"]);
        assert!(dir_ok(&dir, "specs").expect("a real directory"));
        assert!(!dir_ok(&dir, "nothing").expect("missing is fine"));
        assert!(matches!(
            list_files(&dir, "nothing"),
            Err(OpenError::Missing(_))
        ));
    }

    #[test]
    fn a_refusal_survives_the_conversion_to_io_error() {
        let temp = tempfile::tempdir().expect("tempdir");
        symlink("/etc/passwd", temp.path().join("x")).expect("link");
        let error = io::Error::from(open(temp.path(), "x").expect_err("refused"));
        assert!(matches!(
            OpenError::refusal(&error),
            Some(Refused::Symlink(_))
        ));
        assert!(error.to_string().contains("symbolic link"), "{error}");
        let missing = io::Error::from(open(temp.path(), "y").expect_err("missing"));
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn off_thread_returns_the_value() {
        assert_eq!(off_thread(|| 7).await.expect("ran"), 7);
    }
}
