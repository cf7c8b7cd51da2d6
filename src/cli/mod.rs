//! `loopwatch serve` and `loopwatch demo`, and the smaller commands (`share`, `audit`, ...).

pub mod admin;
pub mod cluster;
pub mod demo;
pub mod demo_build;

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

use crate::server::{
    auth::{self, Cookies},
    discovery, hub, project,
};
use crate::site::{listen, options, start_with_hub, RunningServer, ServerConfig, StartError};

#[derive(Parser, Debug)]
#[command(
    name = "loopwatch",
    version,
    about = "Live dashboard for autonomous coding-agent loops"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch Ralph projects under the given directories and serve the dashboard.
    Serve(ServeArgs),
    /// Create demo projects with simulated loops writing real files, and serve them.
    Demo(DemoArgs),
    /// Index one project directory and print what loopwatch sees in it (JSON), with timings.
    Inspect(InspectArgs),
    /// Print the sign-in link (it contains the login credential: treat it like a password).
    LoginLink(LoginLinkArgs),
    /// Create a read-only link to some projects and print it (treat it like a password).
    Share(admin::ShareArgs),
    /// Print the audit trail of control actions, newest first, one line each.
    Audit(admin::AuditArgs),
    /// Watch projects on this host and publish their events to the cluster engine (Redis).
    Agent(cluster::AgentArgs),
}

#[derive(Args, Debug)]
struct LoginLinkArgs {
    /// Where the credential lives [default: $LOOPWATCH_DATA_DIR, else ~/.local/share/loopwatch].
    #[arg(long, value_name = "DIR", env = "LOOPWATCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The address the server listens on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The project directory (the one that contains `.ralph/`).
    dir: PathBuf,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Directory to scan for projects (directories that contain `.ralph/`); repeat for more.
    #[arg(
        long = "projects",
        value_name = "DIR",
        required_unless_present = "redis"
    )]
    projects: Vec<PathBuf>,
    /// Serve the projects of the cluster engine at URL too (e.g. redis://127.0.0.1:6379), as
    /// its agents publish them.
    #[arg(long, value_name = "URL", env = "LOOPWATCH_REDIS")]
    redis: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Seconds one simulated iteration takes.
    #[arg(long, value_name = "SECONDS", default_value_t = 4.0)]
    iteration_seconds: f64,
    /// Create the demo projects here (kept on exit) instead of in a temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Address to listen on (port 0 picks a free port) [default: site-addr in Leptos.toml].
    #[arg(long, value_name = "HOST:PORT", env = "LOOPWATCH_ADDR")]
    addr: Option<SocketAddr>,
    /// Read the Leptos runtime options from this file instead of the built-in Leptos.toml.
    #[arg(long, value_name = "FILE")]
    leptos_config: Option<PathBuf>,
    /// Where the signing secret, the login credential and the archive list live (created when
    /// first needed) [default: $LOOPWATCH_DATA_DIR, else ~/.local/share/loopwatch].
    #[arg(long, value_name = "DIR", env = "LOOPWATCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Serve without authentication. Anyone who can reach the address sees your projects.
    #[arg(long)]
    no_auth: bool,
    /// Also answer requests whose Host is NAME (any port) or NAME:PORT, e.g. the name a reverse
    /// proxy forwards; repeat for more. Other host names are refused (DNS rebinding).
    #[arg(long = "allowed-host", value_name = "NAME[:PORT]")]
    allowed_hosts: Vec<crate::contract::request_host::AllowedHost>,
    /// Serve HTTPS (and WSS) with this PEM certificate chain (needs --tls-key); SIGHUP
    /// re-reads both files.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// What "start" runs for a project that has no executable ralph.sh and no command of its
    /// own (set on its page), e.g. ralph.sh; it gets the maximum iterations as its argument.
    #[arg(long, value_name = "COMMAND")]
    loop_command: Option<String>,
    /// Seconds a stop waits after SIGTERM before it sends SIGKILL to the loop's group.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    stop_grace: u64,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] options::ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("demo: {0}")]
    Demo(std::io::Error),
    #[error("--iteration-seconds must be between 0.2 and 3600")]
    IterationSeconds,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}: {1}")]
    Inspect(PathBuf, String),
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error("engine: {0}")]
    Engine(#[from] crate::server::engine::EngineError),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // The WebSocket library prints whole frames (session tokens in `auth` frames included) at
    // debug and trace: whatever RUST_LOG asks for, it logs at most at info.
    let no_frame_payloads = tracing_subscriber::filter::filter_fn(|meta| {
        let target = meta.target();
        let prints_frames = ["tungstenite", "tokio_tungstenite"]
            .iter()
            .any(|crate_name| {
                target
                    .strip_prefix(crate_name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            });
        !prints_frames || *meta.level() <= tracing::Level::INFO
    });
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .finish()
        .with(no_frame_payloads)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| {
            let result = runtime.block_on(run_command(cli.command));
            // Dropping the runtime would wait for every blocking task, a stuck file read
            // included: give them a moment, then leave them behind.
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loopwatch: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> Result<(), CliError> {
    match command {
        Command::Inspect(args) => inspect(&args.dir),
        Command::Share(args) => {
            println!("{}", admin::share(args)?);
            Ok(())
        }
        Command::Audit(args) => {
            for line in admin::audit(args)? {
                println!("{line}");
            }
            Ok(())
        }
        Command::LoginLink(args) => {
            let dir = args.data_dir.unwrap_or_else(auth::default_data_dir);
            let loaded = auth::Auth::load_or_create(&dir).map_err(|e| CliError::DataDir(dir, e))?;
            println!(
                "{}",
                login_link("http", args.addr, loaded.auth.credential())
            );
            Ok(())
        }
        Command::Agent(args) => cluster::agent(args).await,
        Command::Serve(ServeArgs {
            projects,
            redis: Some(url),
            common,
        }) => cluster::node(projects, &common, &url).await,
        Command::Serve(args) => {
            // Before start-up, which reads every project's files: a stuck read must not make
            // SIGTERM wait for ever.
            listen::arm_forced_exit();
            let hub = hub::Hub::new(hub::DEFAULT_CAPACITY);
            let server =
                start_server(args.projects, &args.common, SignInLink::OnFirstRun, hub).await?;
            server.run_until_signal().await;
            Ok(())
        }
        Command::Demo(args) => {
            if !(0.2..=3600.0).contains(&args.iteration_seconds) {
                return Err(CliError::IterationSeconds);
            }
            listen::arm_forced_exit();
            let tree = demo::DemoTree::create(args.dir).map_err(CliError::Demo)?;
            println!("demo projects in {}", tree.root().display());
            let mut common = args.common;
            // The demo keeps its own credential next to its projects and always shows the link.
            common
                .data_dir
                .get_or_insert_with(|| tree.root().join(".loopwatch"));
            let hub = hub::Hub::new(hub::DEFAULT_CAPACITY);
            let root = vec![tree.root().to_path_buf()];
            let server = start_server(root, &common, SignInLink::Always, hub).await?;
            let mut loops = demo::simulate(
                tree.projects(),
                Duration::from_secs_f64(args.iteration_seconds),
                server.shutdown.clone(),
            );
            server.run_until_signal().await;
            loops.abort_all();
            drop(tree);
            Ok(())
        }
    }
}

/// Indexes one project the way the server does at start-up and prints the result.
fn inspect(dir: &std::path::Path) -> Result<(), CliError> {
    let fail = |why: String| CliError::Inspect(dir.to_path_buf(), why);
    let dir = dir.canonicalize().map_err(|e| fail(e.to_string()))?;
    let kinds = discovery::ProjectKind::detect_all(&dir);
    if kinds.is_empty() {
        return Err(fail(
            "not a project: it has no .ralph/ or .buildrunner/ directory".into(),
        ));
    }
    let started = std::time::Instant::now();
    let state = project::ProjectState::open(&discovery::project_id(&dir), &dir, kinds);
    let indexed = started.elapsed();
    let detail = state.detail(crate::model::Cursor::default());
    let json = serde_json::to_string_pretty(&detail).map_err(|e| fail(e.to_string()))?;
    println!("{json}");
    eprintln!(
        "indexed in {:.3} s: {} log lines, {} log iterations, {} rows ({} lines skipped)",
        indexed.as_secs_f64(),
        state.log_lines(),
        state.log_iterations(),
        detail.stats.iterations,
        detail.skipped_rows.total(),
    );
    Ok(())
}

fn login_link(scheme: &str, addr: SocketAddr, credential: &str) -> String {
    format!("{scheme}://{addr}/api/login?token={credential}")
}

/// When the sign-in link is printed: `serve` prints it when it made a new key (a link printed
/// on every start would end up in logs); `demo` always does, since it is the way in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SignInLink {
    OnFirstRun,
    Always,
}

async fn start_server(
    roots: Vec<PathBuf>,
    common: &CommonArgs,
    link: SignInLink,
    hub: hub::Hub,
) -> Result<RunningServer, CliError> {
    let leptos_options = options::leptos_options(common.leptos_config.as_deref())?;
    let addr = common.addr.unwrap_or(leptos_options.site_addr);
    // Resolved the same way with or without authentication: the archive list lives there too.
    let data_dir = common
        .data_dir
        .clone()
        .unwrap_or_else(auth::default_data_dir);
    let (auth, first_run) = if common.no_auth {
        tracing::warn!("authentication is off: anyone who can reach {addr} sees these projects");
        (None, false)
    } else {
        let loaded = auth::Auth::load_or_create(&data_dir)
            .map_err(|e| CliError::DataDir(data_dir.clone(), e))?;
        // Over TLS the cookie is `Secure` and `__Host-` prefixed.
        let auth = loaded.auth.with_cookies(match tls_files(common) {
            Some(_) => Cookies::Secure,
            None => Cookies::Plain,
        });
        (Some(std::sync::Arc::new(auth)), loaded.first_run)
    };
    let server = start_with_hub(
        ServerConfig {
            roots,
            addr,
            leptos_options,
            auth: auth.clone(),
            keepalive: Default::default(),
            hub_capacity: hub::DEFAULT_CAPACITY,
            data_dir: Some(data_dir),
            allowed_hosts: common.allowed_hosts.clone(),
            listen: listen::ListenConfig {
                tls: tls_files(common),
                ..Default::default()
            },
            control: crate::server::control::ControlOptions {
                loop_command: common.loop_command.clone(),
                grace: std::time::Duration::from_secs(common.stop_grace),
            },
        },
        hub,
    )
    .await?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    // Scripts and tests read these lines to learn the port and the sign-in link.
    println!("loopwatch listening on {scheme}://{}", server.addr);
    if let Some(auth) = auth.filter(|_| first_run || link == SignInLink::Always) {
        println!(
            "sign in (once per browser; keep this link private): {}",
            login_link(scheme, server.addr, auth.credential())
        );
    }
    let _ = std::io::stdout().flush();
    Ok(server)
}

/// Both TLS flags or neither (clap enforces the pair).
fn tls_files(common: &CommonArgs) -> Option<listen::TlsFiles> {
    match (&common.tls_cert, &common.tls_key) {
        (Some(cert), Some(key)) => Some(listen::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    }
}
