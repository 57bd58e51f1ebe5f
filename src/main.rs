//! The command line edge: parse, run, map the one error type to one exit code.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use schemagate::cli::commands::{self, Finish};
use schemagate::cli::config::Cli;
use schemagate::cli::context::Context;
use schemagate::db::interrupt::Interrupt;
use schemagate::error::Error;
use schemagate::output::LogFormat;
use schemagate::output::{self, event};

/// After SIGTERM/SIGINT/SIGHUP/SIGQUIT the process is gone within this, whatever the server does.
const SIGNAL_GRACE: Duration = Duration::from_millis(1800);

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::parse_args() {
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
    let format = cli.global.log_format;
    let outcome = std::panic::catch_unwind(|| runtime.block_on(run(cli, started)));
    // The runtime (its signal handlers, its sockets) goes before an exec.
    drop(runtime);
    // Whatever a panic or an early return left of a scratch PostgreSQL (normally nothing).
    schemagate::schema::scratch::cleanup_all();
    match outcome {
        Ok(Ok(Finish::Exit)) => finished(started, 0, format),
        Ok(Ok(Finish::Exec(command))) => {
            // The run is over; the process goes on as CMD.
            finished(started, 0, format);
            exec(&command)
        }
        // Logging not started: nothing to log on.
        Ok(Err(Failed::Early(code))) => ExitCode::from(code as u8),
        Ok(Err(Failed::Logged(code))) => finished(started, code, format),
        // The panic hook printed it.
        Err(_) => finished(started, 1, format),
    }
}

/// The last log line of every run: `run.finished` with its exit code. Machines (JSON)
/// get it at info; people (text) have the shell's exit code and the lines before it, and
/// a read-only command stays quiet on stderr, so for them it is a debug line.
fn finished(started: Instant, code: i32, format: LogFormat) -> ExitCode {
    let (applied, reverted) = output::tally();
    let took = started.elapsed();
    macro_rules! finished_at {
        ($level:expr) => {
            tracing::event!(
                $level,
                event = event::RUN_FINISHED,
                exit_code = code,
                duration_ms = took.as_millis() as u64,
                applied,
                reverted,
                "run finished with exit code {code} in {}",
                schemagate::text::duration(took)
            )
        };
    }
    match format {
        LogFormat::Json => finished_at!(tracing::Level::INFO),
        LogFormat::Text => finished_at!(tracing::Level::DEBUG),
    }
    ExitCode::from(code as u8)
}

/// How a run failed: before logging started (nothing to finish), or logged.
enum Failed {
    Early(i32),
    Logged(i32),
}

/// `up --exec -- CMD ARGS`: becomes CMD, as `exec` in a shell would. Returns only when
/// CMD cannot be started.
fn exec(command: &[OsString]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        tracing::error!(
            event = event::EXEC_FAILED,
            exit_code = 2,
            "--exec needs a command after `--`"
        );
        return ExitCode::from(2);
    };
    let shown = program.to_string_lossy();
    tracing::info!(event = event::EXEC, program = %shown, "exec {shown}");
    let error = std::process::Command::new(program).args(args).exec();
    tracing::error!(
        event = event::EXEC_FAILED,
        program = %shown,
        exit_code = 2,
        "cannot run {shown}: {error}; --exec needs a program on PATH or a path to one"
    );
    ExitCode::from(2)
}

/// Runs the command; `Err` is the exit code of a failure, already logged.
async fn run(cli: Cli, started: Instant) -> Result<Finish, Failed> {
    let env = |name: &str| std::env::var(name).ok();
    // Known before logging starts, so no log line can ever show it.
    let secret = schemagate::cli::config::secret(&cli.global, &env);
    let color = output::color(output::stderr_is_terminal(), &env);
    if let Err(e) = output::init(
        cli.global.log_format,
        &cli.global.log_level,
        secret.clone(),
        color,
    ) {
        output::print_error(&format!(
            "error: {}",
            output::redact(&e.to_string(), secret.as_deref())
        ));
        return Err(Failed::Early(e.exit_code()));
    }
    install_panic_hook();
    let interrupt = match Interrupt::install() {
        Ok(interrupt) => interrupt,
        Err(e) => {
            tracing::error!(
                event = event::RUN_FAILED,
                "cannot install signal handlers: {e}"
            );
            return Err(Failed::Logged(1));
        }
    };
    let watchdog = interrupt.clone();
    let format = cli.global.log_format;
    tokio::spawn(async move {
        let signal = watchdog.wait().await;
        tokio::time::sleep(SIGNAL_GRACE).await;
        let code = Error::Interrupted(signal).exit_code();
        tracing::error!(
            event = event::RUN_INTERRUPTED,
            "still busy {} after the signal: exiting now",
            schemagate::text::duration(SIGNAL_GRACE)
        );
        finished(started, code, format);
        // exit skips destructors: the scratch PostgreSQL's cluster and databases go here.
        schemagate::schema::scratch::cleanup_all();
        std::process::exit(code);
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
                _ => log_error(&e),
            }
            Err(Failed::Logged(e.exit_code()))
        }
    }
}

/// The error that ends a run, once, with its event and fields.
fn log_error(e: &Error) {
    let code = e.exit_code();
    match e {
        Error::Interrupted(_) => tracing::warn!(
            event = event::RUN_INTERRUPTED,
            exit_code = code,
            "{e}: stopped, rolled back and released the lock"
        ),
        Error::Stopped { .. } => {
            tracing::warn!(event = event::RUN_INTERRUPTED, exit_code = code, "{e}")
        }
        Error::Pending(_) => tracing::warn!(event = event::CHECK_PENDING, exit_code = code, "{e}"),
        Error::MigrationFailed(f) => tracing::error!(
            event = event::MIGRATION_FAILED,
            revision = %f.revision,
            file = %f.file,
            line = f.line.map(|l| l as u64),
            sqlstate = %f.sqlstate,
            reverting = f.reverting,
            exit_code = code,
            "{e}"
        ),
        Error::InvalidFiles(problems) => {
            let one = match problems.as_slice() {
                [p] => Some(p),
                _ => None,
            };
            tracing::error!(
                event = event::FILES_INVALID,
                file = one.map(|p| p.file.as_str()),
                line = one.and_then(|p| p.line).map(|l| l as u64),
                problems = problems.len() as u64,
                exit_code = code,
                "{e}"
            )
        }
        Error::NoMigrations(_) => {
            tracing::error!(event = event::FILES_INVALID, exit_code = code, "{e}")
        }
        Error::Unreachable { waited, last } => tracing::error!(
            event = event::WAIT_TIMEOUT,
            duration_ms = waited.as_millis() as u64,
            error = %last,
            exit_code = code,
            "{e}"
        ),
        Error::Refused(reason) => tracing::error!(
            event = event::CONNECTION_REFUSED,
            error = %reason,
            exit_code = code,
            "{e}"
        ),
        Error::LockTimeout { waited, holder } => tracing::error!(
            event = event::LOCK_TIMEOUT,
            duration_ms = waited.as_millis() as u64,
            holder = holder.as_deref(),
            exit_code = code,
            "{e}"
        ),
        Error::Blocked {
            waited, blockers, ..
        } => tracing::error!(
            event = event::STATEMENT_BLOCKED,
            duration_ms = waited.as_millis() as u64,
            blocker = blockers.as_deref(),
            exit_code = code,
            "{e}"
        ),
        Error::Conflict(_) => {
            tracing::error!(event = event::STATE_CONFLICT, exit_code = code, "{e}")
        }
        _ => tracing::error!(event = event::RUN_FAILED, exit_code = code, "{e}"),
    }
}

/// Every password known by then is redacted: the configured one (given to `output::init`)
/// and a fleet's targets', added as they are read.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let text = output::redact_known(&info.to_string());
        output::print_error(&format!(
            "error: internal error (a bug in schemagate, please report it): {text}"
        ));
    }));
}
