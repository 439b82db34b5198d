use std::process::ExitCode;

use twamp::cli::Cli;
use twamp::config::Mode;

fn main() -> ExitCode {
    let cli = Cli::from_env(); // clap prints usage and exits 2 on its own
    match Mode::from_cli(&cli) {
        Ok(mode) => ExitCode::from(twamp::app::run(mode)),
        Err(e) => {
            eprintln!("twamp: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
