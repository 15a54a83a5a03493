//! The `weightbench` executable: the GUI with no subcommand, headless commands otherwise.

use std::process::ExitCode;

use clap::Parser;
use weightbench::cli::{self, Cli};

fn main() -> ExitCode {
    let args = Cli::parse();
    let result = match &args.command {
        Some(command) => cli::run(command, args.backend, &mut std::io::stdout().lock()),
        None => {
            let startup = weightbench::app::Startup { view: args.view, select: args.select.clone(), run: args.run };
            weightbench::app::run_native(args.path.or_else(cli::demo_checkpoint_path), args.backend, startup)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `weightbench info | head` closes the pipe early: not an error worth a message.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
