//! The `loopwatch` binary: everything is in the library; see `cli`.

fn main() -> std::process::ExitCode {
    loopwatch::cli::run()
}
