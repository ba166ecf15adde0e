//! tickstep-web: the browser client. The arena and the sans-IO session client run in
//! wasm32; the page (`web/page`) owns the WebSocket, the clock and the keyboard, and
//! calls in: [`WebClient::receive`] what arrives, [`WebClient::update`] every animation
//! frame, [`WebClient::next_transmit`] for what to do on the network, and the getters
//! for what to draw and show. Nothing here reads a clock or spawns a thread: time is
//! what the page passes in, and it never reaches a step.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod keys;
mod player;
mod timeline;
mod view;

pub use keys::Keys;
pub use player::{GameSetup, Player, Transmit};
pub use view::{EntityKind, VIEW_STRIDE};

use std::time::Duration;
use wasm_bindgen::prelude::*;

/// Milliseconds from the page's clock (`performance.now()`) as session time.
fn session_time(ms: f64) -> Duration {
    Duration::from_micros((ms.max(0.0) * 1000.0) as u64)
}

/// The page's handle on one player (or one that lost its seat for good).
#[wasm_bindgen]
pub struct WebClient(Player);

/// What the page should do on the network next.
#[wasm_bindgen]
pub struct PageTransmit(Transmit);

#[wasm_bindgen]
impl PageTransmit {
    /// `"connect"` (open a fresh WebSocket, closing any old one), `"send"`, `"close"`
    /// (with a goodbye) or `"cut"` (without one).
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        match &self.0 {
            Transmit::Connect => "connect",
            Transmit::Send(_) => "send",
            Transmit::Close => "close",
            Transmit::Cut => "cut",
        }
        .into()
    }

    /// The message to send (empty unless the kind is `"send"`).
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> Vec<u8> {
        match &self.0 {
            Transmit::Send(bytes) => bytes.clone(),
            _ => Vec::new(),
        }
    }
}

#[wasm_bindgen]
impl WebClient {
    /// A player (or, with `watch`, a watcher without a seat) for `room` of the arena
    /// with `units` units, `players` slots and `seed` (decimal), speaking
    /// `app_version`, whose server is silent for at most `timeout_ms`; a fresh client
    /// id is drawn from the browser's random source.
    #[wasm_bindgen(constructor)]
    pub fn new(
        room: &str,
        units: u32,
        players: u8,
        seed: &str,
        app_version: &str,
        timeout_ms: u32,
        watch: bool,
    ) -> Result<WebClient, JsError> {
        let seed = seed
            .parse()
            .map_err(|_| JsError::new(&format!("seed {seed:?} is not a number")))?;
        let setup = GameSetup {
            room: room.into(),
            units,
            players,
            seed,
            app_version: app_version.into(),
            timeout: Duration::from_millis(timeout_ms.into()),
            watch,
        };
        Player::new(&setup)
            .map(WebClient)
            .map_err(|e| JsError::new(&e))
    }

    /// Starts joining.
    pub fn connect(&mut self, now_ms: f64) {
        self.0.connect(session_time(now_ms));
    }

    /// Hands over a message that arrived on the WebSocket.
    pub fn receive(&mut self, now_ms: f64, bytes: &[u8]) {
        self.0.receive(session_time(now_ms), bytes);
    }

    /// The WebSocket closed: `why` as the page read it (`goodbye` when the server
    /// closed it on purpose, with that reason).
    pub fn connection_lost(&mut self, now_ms: f64, why: &str, goodbye: bool) {
        self.0.connection_lost(session_time(now_ms), why, goodbye);
    }

    /// The keys held now ([`Keys`] bits).
    pub fn set_keys(&mut self, keys: u32) {
        self.0.set_keys(Keys::from_bits(keys));
    }

    /// Runs timers, steps what is verified (a catch-up in slices), sends input for the
    /// ticks that want it; returns whether stepping was cut short (call again soon).
    pub fn update(&mut self, now_ms: f64) -> bool {
        self.0.update(session_time(now_ms))
    }

    /// What to do on the network next, oldest first.
    pub fn next_transmit(&mut self) -> Option<PageTransmit> {
        self.0.next_transmit().map(PageTransmit)
    }

    /// The next line of the timeline (joins, drops, snapshots, catch-ups), oldest
    /// first.
    pub fn next_timeline(&mut self) -> Option<String> {
        self.0.next_timeline()
    }

    /// The frame's tick.
    pub fn tick(&self) -> f64 {
        self.0.tick() as f64
    }

    /// The frame's checksum, 64 hex digits.
    pub fn checksum(&mut self) -> String {
        self.0.checksum()
    }

    /// Where the client stands: `idle`, `connecting`, `lobby`, `waiting`,
    /// `catching-up`, `running`, `reconnecting`, `ended` or `stopped`.
    pub fn state(&self) -> String {
        self.0.state().into()
    }

    /// Why the client stopped, once it has (empty before).
    pub fn stopped_because(&self) -> String {
        self.0.stopped_because()
    }

    /// The slot held, or -1.
    pub fn player(&self) -> i32 {
        self.0.player().map_or(-1, |p| p.0.into())
    }

    /// The round trip now, in milliseconds.
    pub fn rtt_ms(&self) -> f64 {
        self.0.stats().rtt.as_secs_f64() * 1000.0
    }

    /// How many ticks ahead of the room this player stamps its input.
    pub fn input_lead(&self) -> u32 {
        self.0.stats().input_lead.min(u32::MAX.into()) as u32
    }

    /// The arena's side, in 256ths of a unit.
    pub fn arena_size(&self) -> i32 {
        self.0.arena_size()
    }

    /// Everything to draw, [`VIEW_STRIDE`] numbers each: entity index, generation,
    /// [`EntityKind`], x and y in 256ths of a unit, player (ships; else -1).
    pub fn view(&self) -> Vec<i32> {
        self.0.view()
    }
}
