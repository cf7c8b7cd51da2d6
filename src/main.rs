fn main() -> std::process::ExitCode {
    loopwatch::cli::run()
}
