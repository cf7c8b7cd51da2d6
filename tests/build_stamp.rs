//! `scripts/build-stamp.sh`, which lets `scripts/demo.sh` start in seconds when nothing changed
//! since the last release build: run on a scratch tree with real files and modification times.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, SystemTime},
};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-stamp.sh")
}

fn stamp(mode: &str, root: &Path) -> bool {
    stamp_with(mode, root, None)
}

/// Runs the script; `sources` is the hash `write` records (as `$BUILD_SOURCES`).
fn stamp_with(mode: &str, root: &Path, sources: Option<&str>) -> bool {
    let mut command = Command::new("bash");
    command.arg(script()).arg(mode).arg(root);
    if let Some(sources) = sources {
        command.env("BUILD_SOURCES", sources);
    }
    let output = command.output().expect("bash runs");
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "{mode}: {output:?}"
    );
    output.status.success()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(when))
        .expect("set mtime");
}

#[test]
fn a_touched_but_unchanged_tree_needs_no_rebuild_and_a_changed_one_does() {
    let temp = tempfile::tempdir().expect("temp dir");
    let root = temp.path();
    let past = SystemTime::now() - Duration::from_secs(3600);
    let source = root.join("src/lib.rs");
    write(&source, "pub fn a() {}\n");
    write(&root.join("Cargo.toml"), "[package]\n");
    assert!(!stamp("check", root), "nothing built yet");

    let binary = root.join("target/release/loopwatch");
    write(&binary, "binary");
    fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    write(&root.join("target/site/pkg/loopwatch.wasm"), "wasm");
    set_mtime(&source, past);
    set_mtime(&root.join("Cargo.toml"), past);
    assert!(stamp("check", root), "the binary is newer than every input");

    // A checkout or a `touch`: newer times, same contents.
    let later = SystemTime::now() + Duration::from_secs(60);
    set_mtime(&source, later);
    assert!(stamp("check", root), "same contents: current");

    write(&source, "pub fn a() { changed() }\n");
    set_mtime(&source, later);
    assert!(!stamp("check", root), "changed contents: rebuild");
    assert!(stamp("write", root), "recorded after the build");
    assert!(stamp("check", root));

    // A file edited while a build ran: the binary is newer than it, but was built from the
    // contents hashed before the build.
    let before = Command::new("bash")
        .arg(script())
        .arg("sources")
        .arg(root)
        .output()
        .expect("bash runs");
    let before = String::from_utf8(before.stdout).expect("utf-8");
    write(&source, "pub fn a() { edited_during_the_build() }\n");
    set_mtime(&source, past);
    write(&binary, "a newer binary");
    assert!(stamp_with("write", root, Some(before.trim())));
    assert!(
        !stamp("check", root),
        "the edit is not in the binary, though older than it"
    );

    fs::remove_file(root.join("target/site/pkg/loopwatch.wasm")).expect("rm");
    assert!(!stamp("check", root), "no site: rebuild");
    assert!(!stamp("write", root), "nothing to record");
}
