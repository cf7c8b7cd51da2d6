fn main() -> std::process::ExitCode {
    loopwatch::server::cli::run()
}
