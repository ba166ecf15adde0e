//! The `tickstep` command-line tool. Each subcommand lives in its own module; this file
//! parses arguments and turns every failure into one line on stderr and a non-zero exit.
#![forbid(unsafe_code)]

mod bench;
mod bots;
mod demo;
mod files;
mod game_args;
mod load;
mod net_args;
mod output;
mod play;
mod record;
mod replay;
mod run;
mod serve;
mod snapshot;
mod threads;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// tickstep: deterministic lockstep simulation with snapshot resync.
#[derive(Parser)]
#[command(name = "tickstep", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play the arena in a room of bot clients over a network, dropping and rejoining
    /// players, and check that every client ends on the same checksum.
    Demo(demo::DemoArgs),
    /// Run the arena sample game offline and print the final checksum.
    Run(run::RunArgs),
    /// Host arena rooms over QUIC until stopped (Ctrl-C or SIGTERM drain it).
    Serve(serve::ServeArgs),
    /// Join a room over QUIC as a bot player; reconnect on unexpected loss.
    Play(play::PlayArgs),
    /// Fill a server's rooms with players that send input but simulate nothing (a
    /// load generator).
    Load(load::LoadArgs),
    /// Play the arena with bots and write a replay file.
    Record(record::RecordArgs),
    /// Examine, verify (re-simulate) or seek replay files.
    #[command(subcommand)]
    Replay(replay::ReplayCommand),
    /// Verify, inspect or diff snapshot files.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Measure tickstep against baselines measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Bare `tickstep`: the help is the most useful answer.
            let _ = error.print();
            return ExitCode::from(2);
        }
        Err(error) if error.use_stderr() => {
            // One line: clap's first line names the problem; usage is in --help.
            let text = error.to_string();
            let first = text.lines().next().unwrap_or("error: invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Play(args) => play::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Snapshot(command) => snapshot::run(&command),
        Command::Record(args) => record::run(&args),
        Command::Replay(command) => replay::run(&command),
        Command::Bench(command) => bench::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
