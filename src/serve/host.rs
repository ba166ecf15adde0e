//! What `tickstep serve` does with what happens in its rooms: log it (tracing), save
//! desync evidence as snapshot files, open again a lobby that closed before its game
//! started, and under Agones tell the lifecycle when the first game starts and when
//! the last room has closed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tickstep_arena::ArenaInput;
use tickstep_net::ServerHost;
use tickstep_net::agones::Lifecycle;
use tickstep_session::{RoomConfig, RoomEvent, Server, ServerEvent};
use tokio::sync::mpsc;

/// Logs one shard's rooms' events; opens again a lobby that closed empty (a room's
/// players all left before its game started: EmptyRoomTTL), unless the server is
/// draining; tells `lifecycle` (when run under Agones) of the first game and of the
/// last room (of every shard) closing.
pub struct RoomsHost {
    /// The shard's rooms whose game has not started, by name, with their settings.
    pub lobbies: BTreeMap<String, RoomConfig>,
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
                    self.lobbies.remove(&room);
                    self.tell(Lifecycle::Allocated);
                }
                RoomEvent::RoomClosed => {
                    tracing::info!(room, ?event);
                    // A lobby everyone left holds no game: anyone could otherwise close
                    // a room for good by joining it and leaving.
                    if let Some(config) = self.lobbies.get(&room)
                        && server.open_room(&room, config.clone()).is_ok()
                    {
                        tracing::info!(room, "lobby opened again");
                        continue;
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use tickstep_arena::ArenaConfig;
    use tickstep_session::{ClientId, ClientMessage, ConnId, Hello, RoomPhase, ServerConfig};

    const TTL: Duration = Duration::from_secs(1);

    /// A server with room "r" (a 2-player arena) and a host that knows it as a lobby.
    fn lobby() -> (Server<ArenaInput>, RoomsHost, Hello) {
        let game = ArenaConfig {
            units: 10,
            players: 2,
            seed: 1,
        };
        let frame = tickstep_arena::new_frame(&game).unwrap();
        let mut config = RoomConfig::new(2, "t", &frame);
        config.empty_room_ttl = TTL;
        let mut server = Server::new(ServerConfig::default());
        server.open_room("r", config.clone()).unwrap();
        let host = RoomsHost {
            lobbies: BTreeMap::from([("r".to_string(), config)]),
            rooms_open: Arc::new(AtomicUsize::new(1)),
            lifecycle: None,
            evidence_dir: None,
        };
        let hello = Hello::new("t", &frame, "r", ClientId::from_seed(1));
        (server, host, hello)
    }

    /// A visitor joins the lobby and leaves; EmptyRoomTTL later, the room closes.
    fn visit_and_wait(server: &mut Server<ArenaInput>, hello: Hello) -> Duration {
        let conn = ConnId(1);
        let address = IpAddr::from([10, 0, 0, 1]);
        server
            .handle_connection(Duration::ZERO, conn, address)
            .unwrap();
        server.handle_message(Duration::ZERO, conn, ClientMessage::Hello(Box::new(hello)));
        server.handle_disconnect(Duration::ZERO, conn);
        let later = 2 * TTL;
        server.handle_timeout(later);
        later
    }

    #[test]
    fn a_lobby_closed_by_a_visitor_leaving_opens_again() {
        let (mut server, mut host, hello) = lobby();
        let later = visit_and_wait(&mut server, hello.clone());
        // Without the host the room would stay closed: it did close.
        assert_eq!(server.room_phase("r"), Some(RoomPhase::Closed));
        host.after_round(&mut server, later);
        assert_eq!(server.room_phase("r"), Some(RoomPhase::Lobby));
        assert_eq!(host.rooms_open.load(Ordering::Relaxed), 1);
        // And it seats players again.
        let conn = ConnId(2);
        let address = IpAddr::from([10, 0, 0, 2]);
        server.handle_connection(later, conn, address).unwrap();
        server.handle_message(later, conn, ClientMessage::Hello(Box::new(hello)));
        host.after_round(&mut server, later);
        assert_eq!(server.room_slots("r").unwrap().iter().flatten().count(), 1);
    }

    #[test]
    fn a_draining_server_leaves_its_closed_lobbies_closed() {
        let (mut server, mut host, _) = lobby();
        server.drain();
        host.after_round(&mut server, Duration::ZERO);
        assert_eq!(server.room_phase("r"), Some(RoomPhase::Closed));
        assert_eq!(host.rooms_open.load(Ordering::Relaxed), 0);
    }
}
