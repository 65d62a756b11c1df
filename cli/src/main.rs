//! The `outbox` binary: parse, run, and turn any failure into one line on
//! stderr and a non-zero exit code.

use clap::error::ErrorKind;
use clap::Parser;
use outbox_cli::args::Cli;
use outbox_cli::exit;

fn main() {
    // A panic is a bug; still, say so in one line, without a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "outbox: internal error (a bug, please report it): {}{place}",
            outbox_cli::printable::strip_userinfo(&msg.replace('\n', " "))
        );
    }));

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(report_clap_error(e)),
    };
    let code = match outbox_cli::run(cli) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("outbox: {e}");
            e.code
        }
    };
    std::process::exit(code);
}

/// Help and version go out as clap writes them; a real error becomes one
/// line: clap's message without its usage block and tips.
fn report_clap_error(e: clap::Error) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            e.exit_code()
        }
        _ => {
            let rendered = e.render().to_string();
            let mut parts = Vec::new();
            for line in rendered.lines() {
                let line = line.trim();
                if line.starts_with("Usage:") || line.starts_with("For more information") {
                    break;
                }
                if line.is_empty() || line.starts_with("tip:") {
                    continue;
                }
                parts.push(line.trim_start_matches("error:").trim().to_string());
            }
            let message = parts.join(" ");
            // Point at the subcommand's help when there is one.
            let sub = std::env::args()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .filter(|a| {
                    use clap::CommandFactory;
                    Cli::command().find_subcommand(a).is_some()
                });
            let help = match sub {
                Some(sub) => format!("outbox {sub} --help"),
                None => "outbox --help".into(),
            };
            let message = outbox_cli::printable::strip_userinfo(&message);
            eprintln!("outbox: {message} (see '{help}')");
            exit::USAGE
        }
    }
}
