//! `zoneprof-synth`: writes a synthetic recording of a large host for `cargo xtask bench`
//! (built only with the `synth` feature, so `zoneprof` itself does not carry it). Exit
//! status: 0 success, 1 error (one line on stderr), 2 usage error.
use std::process::ExitCode;

use clap::Parser;
use zoneprof::model::synth::{SynthArgs, run};

#[derive(Parser)]
#[command(
    name = "zoneprof-synth",
    version,
    about = "Write a synthetic recording of a large host (benchmark input)"
)]
struct Cli {
    #[command(flatten)]
    args: SynthArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zoneprof-synth: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
