//! What `tickstep serve` does with what happens in its rooms: log it (tracing), save
//! desync evidence as snapshot files, and under Agones tell the lifecycle when the
//! first game starts and when the last room has closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tickstep_arena::ArenaInput;
use tickstep_net::ServerHost;
use tickstep_net::agones::Lifecycle;
use tickstep_session::{RoomEvent, Server, ServerEvent};
use tokio::sync::mpsc;

/// Logs one shard's rooms' events; tells `lifecycle` (when run under Agones) of the
/// first game and of the last room (of every shard) closing.
pub struct RoomsHost {
    /// Rooms not closed yet, every shard's.
    pub rooms_open: Arc<AtomicUsize>,
    /// Where Allocated and Finished go.
    pub lifecycle: Option<mpsc::UnboundedSender<Lifecycle>>,
    /// Where desync evidence is saved.
    pub evidence_dir: Option<PathBuf>,
}

impl RoomsHost {
    fn tell(&self, what: Lifecycle) {
        if let Some(lifecycle) = &self.lifecycle {
            let _ = lifecycle.send(what);
        }
    }
}

impl ServerHost<ArenaInput> for RoomsHost {
    fn after_round(&mut self, server: &mut Server<ArenaInput>, _now: Duration) {
        while let Some(ServerEvent { room, event }) = server.poll_event() {
            match event {
                RoomEvent::Evidence {
                    tick,
                    player,
                    snapshot,
                } => {
                    tracing::warn!(
                        room,
                        tick,
                        player = player.0,
                        bytes = snapshot.len(),
                        "desync evidence received"
                    );
                    if let Some(dir) = &self.evidence_dir {
                        let name =
                            format!("{}-tick{tick}-player{}.snap", file_safe(&room), player.0);
                        let path = dir.join(name);
                        match crate::files::write(&path, &snapshot) {
                            Ok(()) => tracing::info!(path = %path.display(), "evidence saved"),
                            Err(error) => tracing::warn!(error, "evidence not saved"),
                        }
                    }
                }
                RoomEvent::Desync { .. } | RoomEvent::BuddySnapshotRejected { .. } => {
                    tracing::warn!(room, ?event)
                }
                RoomEvent::GameStarted { .. } => {
                    tracing::info!(room, ?event);
                    self.tell(Lifecycle::Allocated);
                }
                RoomEvent::RoomClosed => {
                    tracing::info!(room, ?event);
                    if self.rooms_open.fetch_sub(1, Ordering::Relaxed) == 1 {
                        tracing::info!("every room has closed");
                        self.tell(Lifecycle::Finished);
                    }
                }
                event => tracing::info!(room, ?event),
            }
        }
    }

    fn connection_note(&mut self, conn: u64, note: &str) {
        tracing::info!(conn, note, "connection");
    }
}

/// `name` with every character but ASCII letters, digits, `-` and `_` made `_`, for
/// a file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}
