use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = firedrill::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firedrill: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(firedrill::cli::main(cli)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(e) => {
            eprintln!("firedrill: {e:#}");
            ExitCode::from(2)
        }
    }
}
