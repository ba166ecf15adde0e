//! The browser's player: a session client of the arena with what the page needs
//! around it — the transmits queued for the page's WebSocket, the timeline, the keys
//! turned into input, and the checksum of the tick shown.

use std::collections::VecDeque;
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaCommand, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_engine::{PlayerId, Tick, checksum};
use tickstep_session::{
    Client, ClientConfig, ClientId, ClientState, ClientStats, ClientTransmit, DisconnectReason,
    ReconnectInfo, ServerMessage, decode, encode,
};

use crate::keys::Keys;
use crate::timeline::Timeline;

/// Ticks stepped per update at most: a long catch-up is spread over animation frames
/// so the page stays responsive.
const STEP_BUDGET: u64 = 240;

/// The game a page joins: the room and the arena the server hosts there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GameSetup {
    /// The room's name.
    pub room: String,
    /// The arena's units.
    pub units: u32,
    /// The arena's player slots.
    pub players: u8,
    /// The arena's seed.
    pub seed: u64,
    /// The application version the room expects.
    pub app_version: String,
    /// The server is taken as lost after this silence.
    pub timeout: Duration,
    /// Watch without a seat instead of playing.
    pub watch: bool,
}

/// What the page's WebSocket should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open a fresh connection (closing any old one).
    Connect,
    /// Send these bytes on the current one.
    Send(Vec<u8>),
    /// Close the current one with a goodbye.
    Close,
    /// Drop the current one without a goodbye (it broke the protocol).
    Cut,
}

/// A player in a browser, or a watcher (who steps and draws the same game, and sends
/// no input).
pub struct Player {
    client: Client<ArenaGlobals, ArenaInput>,
    transmits: VecDeque<Transmit>,
    timeline: Timeline,
    keys: Keys,
    /// The nova key was held at the last input: a nova is sent once per press.
    nova_held: bool,
    aim: u8,
    /// The checksum of the frame at the tick it was taken (computed when asked).
    checksum: Option<(Tick, String)>,
    size: i32,
}

impl Player {
    /// A player for `setup`'s room with a fresh client id, not connected yet.
    pub fn new(setup: &GameSetup) -> Result<Player, String> {
        let config = ArenaConfig {
            units: setup.units,
            players: setup.players,
            seed: setup.seed,
        };
        let initial = arena::new_frame(&config).map_err(|e| e.to_string())?;
        let size = (initial.globals().size.x.to_bits() >> 8) as i32;
        let id = ClientId::generate().map_err(|e| e.to_string())?;
        let client_config = ClientConfig {
            app_version: setup.app_version.clone(),
            server_timeout: setup.timeout,
            watch: setup.watch,
            ..ClientConfig::default()
        };
        // The page connects to the server that served it: the address is the page's.
        let info = ReconnectInfo::new("", &setup.room, id);
        let client = Client::new(client_config, info, initial, arena::simulation());
        Ok(Player {
            client,
            transmits: VecDeque::new(),
            timeline: Timeline::default(),
            keys: Keys::default(),
            nova_held: false,
            aim: 0,
            checksum: None,
            size,
        })
    }

    /// The session client.
    pub fn client(&self) -> &Client<ArenaGlobals, ArenaInput> {
        &self.client
    }

    /// Starts joining.
    pub fn connect(&mut self, now: Duration) {
        self.client.connect(now);
        self.collect(now);
    }

    /// Hands over a message that arrived; one that does not decode ends the
    /// connection, as any transport's would.
    pub fn receive(&mut self, now: Duration, bytes: &[u8]) {
        match decode::<ServerMessage>(bytes) {
            Ok(message) => self.client.handle_message(now, message),
            Err(e) => {
                self.transmits.push_back(Transmit::Cut);
                let why = format!("malformed message: {e}");
                self.client.handle_connection_lost(now, &why);
            }
        }
        self.collect(now);
    }

    /// The connection ended: `why`, a goodbye from the server when `goodbye`.
    pub fn connection_lost(&mut self, now: Duration, why: &str, goodbye: bool) {
        let what = match goodbye {
            true => format!("the server closed the connection: {why}"),
            false => why.to_string(),
        };
        self.client.handle_connection_lost(now, &what);
        self.collect(now);
    }

    /// The keys held now.
    pub fn set_keys(&mut self, keys: Keys) {
        self.keys = keys;
    }

    /// Runs timers, steps at most `STEP_BUDGET` (240) verified ticks, sends input for
    /// every tick that wants it; returns whether stepping was cut short.
    pub fn update(&mut self, now: Duration) -> bool {
        self.client.handle_timeout(now);
        let stepped = self.client.advance(now, STEP_BUDGET);
        if self.client.player().is_some() {
            while let Some(_tick) = self.client.next_input_tick(now) {
                let input = self.keys.input(self.aim);
                self.aim = input.aim;
                self.client.send_input(now, input);
                let nova = self.keys.held(Keys::NOVA);
                if nova && !self.nova_held {
                    // Refused only with a backlog the room has not confirmed: that
                    // press is lost, as on any client.
                    let command = ArenaCommand::NOVA;
                    let _ = self.client.send_command(now, bytemuck::bytes_of(&command));
                }
                self.nova_held = nova;
            }
        }
        self.collect(now);
        stepped == STEP_BUDGET
    }

    /// Moves what the client asked of the transport and told its host into the
    /// page's queues.
    fn collect(&mut self, now: Duration) {
        while let Some(transmit) = self.client.poll_transmit(now) {
            self.transmits.push_back(match transmit {
                ClientTransmit::Connect => Transmit::Connect,
                ClientTransmit::Send(message) => Transmit::Send(encode(&message)),
                ClientTransmit::Close => Transmit::Close,
            });
        }
        while let Some(event) = self.client.poll_event() {
            self.timeline.record(now, &event);
        }
    }

    /// What to do on the network next.
    pub fn next_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next timeline line.
    pub fn next_timeline(&mut self) -> Option<String> {
        self.timeline.next_line()
    }

    /// The frame's tick.
    pub fn tick(&self) -> Tick {
        self.client.frame().tick()
    }

    /// The frame's checksum in hex (hashed once per tick shown).
    pub fn checksum(&mut self) -> String {
        let tick = self.tick();
        match &self.checksum {
            Some((at, hex)) if *at == tick => hex.clone(),
            _ => {
                let hex = checksum(self.client.frame()).to_hex();
                self.checksum = Some((tick, hex.clone()));
                hex
            }
        }
    }

    /// Where the client stands, in one word.
    pub fn state(&self) -> &'static str {
        match self.client.state() {
            ClientState::Idle => "idle",
            ClientState::Connecting { .. } => "connecting",
            ClientState::Lobby => "lobby",
            ClientState::WaitingForSnapshot { .. } => "waiting",
            ClientState::CatchingUp { .. } => "catching-up",
            ClientState::Running => "running",
            ClientState::Reconnecting { .. } => "reconnecting",
            ClientState::Disconnected(DisconnectReason::GameEnded) => "ended",
            ClientState::Disconnected(_) => "stopped",
        }
    }

    /// Why the client stopped for good (empty while it has not).
    pub fn stopped_because(&self) -> String {
        match self.client.state() {
            ClientState::Disconnected(reason) => reason.to_string(),
            _ => String::new(),
        }
    }

    /// The slot held.
    pub fn player(&self) -> Option<PlayerId> {
        self.client.player()
    }

    /// What the client measured.
    pub fn stats(&self) -> ClientStats {
        self.client.stats()
    }

    /// The arena's side, in 256ths of a unit.
    pub fn arena_size(&self) -> i32 {
        self.size
    }

    /// What to draw (see [`crate::WebClient::view`]).
    pub fn view(&self) -> Vec<i32> {
        crate::view::view(self.client.frame())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{EntityKind, VIEW_STRIDE};
    use tickstep_session::ClientMessage;

    fn player() -> Player {
        client(false)
    }

    fn client(watch: bool) -> Player {
        Player::new(&GameSetup {
            room: "arena-7".into(),
            units: 30,
            players: 3,
            seed: 9,
            app_version: "test".into(),
            timeout: Duration::from_secs(3),
            watch,
        })
        .unwrap()
    }

    /// The hello the page's client says first.
    fn first_hello(player: &mut Player) -> tickstep_session::Hello {
        player.connect(Duration::ZERO);
        assert_eq!(player.next_transmit(), Some(Transmit::Connect));
        let Some(Transmit::Send(bytes)) = player.next_transmit() else {
            panic!("a hello follows the connect");
        };
        match decode::<ClientMessage>(&bytes).unwrap() {
            ClientMessage::Hello(hello) => *hello,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_watching_page_asks_to_watch_and_a_playing_one_to_play() {
        assert!(first_hello(&mut client(true)).watch);
        assert!(!first_hello(&mut client(false)).watch);
    }

    #[test]
    fn connecting_asks_for_a_socket_then_says_hello_to_the_room() {
        let mut player = player();
        assert_eq!(player.state(), "idle");
        assert_eq!(first_hello(&mut player).room, "arena-7");
        assert_eq!(player.state(), "connecting");
        // A message that does not decode ends the connection: the page closes it and
        // the client retries.
        player.receive(Duration::from_millis(5), &[0xff; 3]);
        assert_eq!(player.next_transmit(), Some(Transmit::Cut));
        assert_eq!(player.state(), "reconnecting");
        let line = player.next_timeline().unwrap();
        assert!(
            line.contains("was lost") && line.contains("reconnect attempt 1"),
            "{line}"
        );
    }

    #[test]
    fn the_view_holds_every_unit_and_ship_of_the_frame() {
        let mut player = player();
        let view = player.view();
        assert_eq!(view.len(), (30 + 3) * VIEW_STRIDE);
        let kinds: Vec<i32> = view.chunks(VIEW_STRIDE).map(|e| e[2]).collect();
        let count = |kind: EntityKind| kinds.iter().filter(|k| **k == kind as i32).count();
        assert_eq!((count(EntityKind::Unit), count(EntityKind::Ship)), (30, 3));
        let size = player.arena_size();
        for entity in view.chunks(VIEW_STRIDE) {
            assert!((0..size).contains(&entity[3]) && (0..size).contains(&entity[4]));
        }
        let players: Vec<i32> = view
            .chunks(VIEW_STRIDE)
            .map(|e| e[5])
            .filter(|p| *p >= 0)
            .collect();
        assert_eq!(players, [0, 1, 2]);
        assert_eq!(player.checksum().len(), 64);
    }
}
