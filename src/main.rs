//! The `weightbench` executable: the window with no subcommand, headless commands otherwise.
//! The top-level parser lives here, so that the engine's command module knows nothing of the
//! window and the window nothing of the commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use weightbench::app::{self, Startup};
use weightbench::cli::{self, Command};
use weightbench::compute::select::BackendChoice;

/// weightbench: look inside neural-network checkpoints and compress them.
///
/// With no argument, opens the window on the bundled demo checkpoint; with a PATH, opens that
/// file or folder. Subcommands run the same engine without a window.
#[derive(Debug, Parser)]
#[command(name = "weightbench", version)]
struct Cli {
    /// Checkpoint to open in the window: a .safetensors or .gguf file, a
    /// *.safetensors.index.json, or a folder holding one (Hugging Face layout).
    path: Option<PathBuf>,

    #[command(flatten)]
    startup: Startup,

    /// Where kernels run: the GPU when a hardware adapter exists (auto), the CPU, or the GPU on
    /// any adapter including software Vulkan. A GPU failure falls back to the CPU, and every
    /// result says where it was computed. Accepted before or after the subcommand.
    #[arg(long, global = true, default_value = "auto", value_parser = cli::backend_parser())]
    backend: BackendChoice,

    /// A headless command.
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let result = match &args.command {
        Some(command) => {
            if args.path.is_some() || !args.startup.is_empty() {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "a checkpoint path and the window's options (--view, --select, --run) come without a \
                         subcommand; subcommands take their own PATH",
                    )
                    .exit();
            }
            cli::run(command, args.backend, &mut std::io::stdout().lock())
        }
        None => match app::display_problem() {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => app::run_native(args.path.or_else(app::demo_checkpoint_path), args.backend, args.startup),
        },
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
