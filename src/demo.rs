//! `tickstep demo`: an arena room with bot players over a network, players dropped and
//! rejoined on a schedule; prints a timeline and whether every client converged.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use tickstep_arena::{ArenaConfig, MAX_ARENA_PLAYERS};
use tickstep_session::sim::LinkConfig;

mod over_quic;
mod over_sim;
mod plan;
mod recorder;
mod report;
mod shaper;

use over_quic::run_over_quic;
pub use over_sim::run_over_sim;
pub use plan::DemoOptions;
use plan::{Action, DEMO_ROOM, PlayerAt, Schedule, demo_client, demo_client_id, demo_room};
use std::io::Write as _;

use crate::files;
use crate::output::{emit, progress_bar};

/// Which network the demo runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Net {
    /// Real QUIC connections on loopback, in real time: a server (with a self-signed
    /// certificate its clients pin) and one client per player in this process.
    #[value(alias = "tcp")]
    Quic,
    /// The deterministic simulated network, in virtual time (reproducible from --seed,
    /// and done in about a second).
    Sim,
}

/// Arguments of `tickstep demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// The network to play over.
    #[arg(long, value_enum, default_value_t = Net::Quic)]
    net: Net,
    /// Players (one bot client each).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=MAX_ARENA_PLAYERS as i64))]
    players: u8,
    /// The game ends after this tick.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    ticks: u64,
    /// Autonomous units in the arena.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    entities: u32,
    /// Seed of the game, the bots and the simulated network.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cut player P's connection and take it offline at room tick TICK (repeatable).
    /// Without any --drop or --rejoin (and without --calm) the demo drops player 1 at
    /// 300 and brings it back at 600 (local snapshot), and drops player 2 at 600 and
    /// brings it back at 1500 (too old for its local snapshot: a buddy's).
    #[arg(long = "drop", value_name = "P@TICK")]
    drops: Vec<PlayerAt>,
    /// Bring player P back online at room tick TICK; it reconnects on its own (repeatable).
    #[arg(long = "rejoin", value_name = "P@TICK")]
    rejoins: Vec<PlayerAt>,
    /// Tear player P's client down at room tick TICK and rebuild it from the
    /// ReconnectInfo it last saved, as after an app restart (repeatable).
    #[arg(long = "restart", value_name = "P@TICK")]
    restarts: Vec<PlayerAt>,
    /// No default drops: every player stays connected.
    #[arg(long)]
    calm: bool,
    /// One-way latency of every link, in milliseconds (default: 20 on the simulated
    /// network; over QUIC, given with --jitter or --loss, a UDP relay shapes each
    /// link).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    latency: Option<u64>,
    /// Extra random delay per message, 0..=MS milliseconds (reorders messages).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    jitter: u64,
    /// Percent of messages lost.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=90))]
    loss: u8,
    /// Ticks per second.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    tick_rate: u32,
    /// Write the verified input the server broadcast as a replay file (check it with
    /// `tickstep replay verify`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Also serve the browser page at ADDR (host:port; port 0 picks one) showing the
    /// demo's room live, to watch without a seat while the demo runs; its address is
    /// printed on stderr. Needs --net quic. With watchers in, the demo waits up to 10
    /// s past the end for them to see it.
    #[arg(long, value_name = "ADDR")]
    web: Option<String>,
    /// Print one JSON object instead of the timeline.
    #[arg(long)]
    json: bool,
}

impl DemoArgs {
    fn options(&self) -> DemoOptions {
        let (mut drops, mut rejoins) = (self.drops.clone(), self.rejoins.clone());
        if drops.is_empty() && rejoins.is_empty() && self.restarts.is_empty() && !self.calm {
            let at = |player, tick| PlayerAt { player, tick };
            let default_ticks = [(1, 300, 600), (2, 600, 1500)];
            for (player, drop, rejoin) in default_ticks {
                if player < self.players && rejoin < self.ticks {
                    drops.push(at(player, drop));
                    rejoins.push(at(player, rejoin));
                }
            }
        }
        DemoOptions {
            game: ArenaConfig {
                units: self.entities,
                players: self.players,
                seed: self.seed,
            },
            ticks: self.ticks,
            tick_rate: self.tick_rate,
            link: LinkConfig {
                latency: Duration::from_millis(self.latency.unwrap_or(20)),
                jitter: Duration::from_millis(self.jitter),
                loss_percent: self.loss,
                duplicate_percent: 0,
            },
            shaped: self.latency.is_some() || self.jitter > 0 || self.loss > 0,
            drops,
            rejoins,
            restarts: self.restarts.clone(),
        }
    }
}

/// Runs this subcommand; an error is the one line `main` prints. Exits non-zero (via
/// the error) when the clients did not converge.
pub fn run(args: &DemoArgs) -> Result<(), String> {
    let options = args.options();
    if args.web.is_some() && args.net == Net::Sim {
        return Err(
            "--web shows the demo live: it needs --net quic (the simulated network runs in virtual time)"
                .into(),
        );
    }
    // The page's address goes out before the progress bar draws.
    let web = match &args.web {
        Some(at) => {
            let listener = crate::serve::std_tcp_listener(at, "the web page")?;
            let at = listener
                .local_addr()
                .map_err(|e| format!("the web page's address: {e}"))?;
            eprintln!("web page at http://{at}/?room={DEMO_ROOM}");
            if !crate::serve::web::client_built() {
                eprintln!("built without the browser client: run web/build, then build again");
            }
            let _ = std::io::stderr().flush();
            Some(listener)
        }
        None => None,
    };
    let bar = progress_bar(options.ticks, "playing");
    let mut recording = Vec::new();
    let record = args
        .record
        .as_ref()
        .map(|_| &mut recording as &mut dyn std::io::Write);
    let report = match args.net {
        Net::Sim => run_over_sim(&options, record, |tick| bar.set_position(tick))?,
        Net::Quic => run_over_quic(&options, record, web, |tick, catching| {
            bar.set_position(tick);
            bar.set_message(catching.unwrap_or_else(|| "playing".into()));
        })?,
    };
    bar.finish_and_clear();
    if let Some(path) = &args.record {
        files::write(path, &recording)?;
    }
    emit(args.json, &report, |r| r.to_text())?;
    if report.converged {
        Ok(())
    } else {
        Err("the clients did not converge (see the timeline)".into())
    }
}
