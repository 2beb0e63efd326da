//! `krrish`: the operator's and developer's command line.
//!
//! - `krrish scenario run [PATH…]` — run scenario files (or directories of
//!   them) in the simulated world; one line per scenario, then
//!   `N passed, M failed`.
//! - `krrish scenario check [PATH…]` — load and validate only.
//! - `krrish plan spares …` — what each spare-pool size buys ([`plan`]).

mod plan;
mod scenario;
mod swarm;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "krrish",
    version,
    about = "krrish: IaaS control plane, simulator and HA test harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run or check scenario files.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCmd),
    /// Capacity planning.
    #[command(subcommand)]
    Plan(plan::PlanCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Top::Scenario(cmd) => scenario::main(cmd),
        Top::Plan(cmd) => plan::main(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
