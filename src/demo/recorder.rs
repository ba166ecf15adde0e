//! Recording the verified input a demo room broadcast, as a replay file that
//! `tickstep replay verify` re-simulates.

use std::io::Write;
use tickstep_engine::{Frame, Tick, TickInputs};
use tickstep_replay::{ReplayHeader, ReplayWriter};

use super::{DEMO_ROOM, DemoOptions};
use tickstep_arena::{ArenaGlobals, ArenaInput};
use tickstep_session::Server;

/// Writes the room's verified input to a replay as the room makes it.
pub(crate) struct Recorder<W: Write> {
    writer: ReplayWriter<W, ArenaInput>,
    recorded: Tick,
    inputs: TickInputs<ArenaInput>,
}

impl<W: Write> Recorder<W> {
    /// Starts a replay of the demo game from `initial` into `out`.
    pub fn new(
        out: W,
        options: &DemoOptions,
        initial: &Frame<ArenaGlobals>,
    ) -> Result<Recorder<W>, String> {
        let game = &options.game;
        let header = ReplayHeader {
            schema_hash: initial.schema().hash(),
            tick_rate: options.tick_rate,
            players: game.players as u32,
            input_size: size_of::<ArenaInput>() as u32,
            checksum_every: 0,
            checkpoint_every: 0,
            config: serde_json::to_vec(game).unwrap_or_default(),
        };
        Ok(Recorder {
            writer: ReplayWriter::new(out, &header, initial).map_err(failed)?,
            recorded: 0,
            inputs: TickInputs::new(game.players as usize).map_err(|e| e.to_string())?,
        })
    }

    /// Records every tick the room verified since the last call.
    pub fn catch_up(&mut self, server: &Server<ArenaInput>) -> Result<(), String> {
        let Some(log) = server.room_inputs(DEMO_ROOM) else {
            return Ok(());
        };
        while self.recorded < log.newest().unwrap_or(0) {
            log.read(self.recorded + 1, &mut self.inputs)
                .map_err(|e| e.to_string())?;
            self.writer.record_input(&self.inputs).map_err(failed)?;
            self.recorded += 1;
        }
        Ok(())
    }

    /// Ends the replay and returns the output.
    pub fn finish(self) -> Result<W, String> {
        self.writer.finish(self.recorded).map_err(failed)
    }
}

fn failed(error: std::io::Error) -> String {
    format!("cannot write the recording: {error}")
}
