//! The command line edge: parse, run, map the one error type to one exit code.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use schemagate::commands::{self, Context, Finish};
use schemagate::config::Cli;
use schemagate::error::Error;
use schemagate::interrupt::Interrupt;
use schemagate::output;

/// After SIGTERM/SIGINT/SIGHUP/SIGQUIT the process is gone within this, whatever the server does.
const SIGNAL_GRACE: Duration = Duration::from_millis(1800);

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::print_error(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let outcome = std::panic::catch_unwind(|| runtime.block_on(run(cli, started)));
    // The runtime (its signal handlers, its sockets) goes before an exec.
    drop(runtime);
    match outcome {
        Ok(Ok(Finish::Exit)) => ExitCode::SUCCESS,
        Ok(Ok(Finish::Exec(command))) => exec(&command),
        Ok(Err(code)) => ExitCode::from(code as u8),
        Err(_) => ExitCode::from(1),
    }
}

/// `up --exec -- CMD ARGS`: becomes CMD, as `exec` in a shell would. Returns only when
/// CMD cannot be started.
fn exec(command: &[OsString]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        tracing::error!("--exec needs a command after `--`");
        return ExitCode::from(2);
    };
    tracing::info!("exec {}", program.to_string_lossy());
    let error = std::process::Command::new(program).args(args).exec();
    tracing::error!(
        "cannot run {}: {error}; --exec needs a program on PATH or a path to one",
        program.to_string_lossy()
    );
    ExitCode::from(2)
}

/// Runs the command; `Err` is the exit code of a failure, already logged.
async fn run(cli: Cli, started: Instant) -> Result<Finish, i32> {
    let env = |name: &str| std::env::var(name).ok();
    // Known before logging starts, so no log line can ever show it.
    let secret = schemagate::config::connection(&cli.global, &env)
        .ok()
        .and_then(|c| c.password());
    if let Err(e) = output::init(cli.global.log_format, &cli.global.log_level, secret.clone()) {
        output::print_error(&format!(
            "error: {}",
            output::redact(&e.to_string(), secret.as_deref())
        ));
        return Err(e.exit_code());
    }
    install_panic_hook(secret);
    let interrupt = match Interrupt::install() {
        Ok(interrupt) => interrupt,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return Err(1);
        }
    };
    let watchdog = interrupt.clone();
    tokio::spawn(async move {
        let signal = watchdog.wait().await;
        tokio::time::sleep(SIGNAL_GRACE).await;
        tracing::error!("still busy {SIGNAL_GRACE:?} after the signal: exiting now");
        std::process::exit(Error::Interrupted(signal).exit_code());
    });
    let ctx = Context {
        global: &cli.global,
        interrupt: &interrupt,
        env: &env,
        started,
    };
    match commands::run(&cli.command, &ctx).await {
        Ok(finish) => Ok(finish),
        Err(e) => {
            // A signal that arrived mid-way wins over whatever error it caused, unless the
            // error already says what the signal left behind.
            let e = match (interrupt.received(), e) {
                (_, stopped @ Error::Stopped { .. }) => stopped,
                (Some(signal), _) => Error::Interrupted(signal),
                (None, e) => e,
            };
            match e {
                // `| head` took what it wanted: not a failure.
                Error::StdoutClosed => return Ok(Finish::Exit),
                // One plain line: the logger may be what failed to write, so no log line.
                Error::Stdout(_) => output::print_error(&format!("error: {e}")),
                Error::Interrupted(_) => {
                    tracing::warn!("{e}: stopped, rolled back and released the lock")
                }
                Error::Pending(_) | Error::Stopped { .. } => tracing::warn!("{e}"),
                _ => tracing::error!("{e}"),
            }
            Err(e.exit_code())
        }
    }
}

fn install_panic_hook(secret: Option<String>) {
    std::panic::set_hook(Box::new(move |info| {
        let text = output::redact(&info.to_string(), secret.as_deref());
        output::print_error(&format!(
            "error: internal error (a bug in schemagate, please report it): {text}"
        ));
    }));
}
