//! A deterministic, seeded in-memory network that drives a [`Server`] and its
//! [`Client`]s in virtual time: per-link latency, jitter, loss and duplication (jitter
//! reorders), connections cut or links taken offline on command, no real sleeping.
//! Every message crosses it encoded, so the wire codec is exercised too. The same seed
//! and the same commands give the same run, event for event.

use bytemuck::Pod;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};
use tickstep_engine::Input;
use tickstep_engine::{Frame, PlayerId, Rng, Tick};

use super::protocol::{decode, encode};
use super::{
    Client, ClientEvent, ClientMessage, ClientState, ClientTransmit, ConnId, Server, ServerEvent,
    ServerMessage, ServerTransmit,
};

/// How one client's link to the server behaves (both directions alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per message (reorders messages).
    pub jitter: Duration,
    /// Percent of messages lost.
    pub loss_percent: u8,
    /// Percent of messages delivered twice.
    pub duplicate_percent: u8,
}

impl Default for LinkConfig {
    /// 20 ms each way, no jitter, loss or duplication.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            loss_percent: 0,
            duplicate_percent: 0,
        }
    }
}

/// How long a connection attempt to an unreachable server takes to fail.
const CONNECT_FAILS_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    ToServer {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    ToClient {
        client: usize,
        conn: ConnId,
        bytes: Vec<u8>,
    },
    ServerLost {
        conn: ConnId,
    },
    ClientLost {
        client: usize,
        conn: ConnId,
        what: &'static str,
    },
}

/// Rewrites what a client sends: gets (client index, message) and returns what reaches
/// the network instead (nothing, the same, or other messages). Tests forge with it.
pub type Tamper = Box<dyn FnMut(usize, ClientMessage) -> Vec<ClientMessage>>;

/// What a simulated player does for one tick: its input, and a command when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Play<I> {
    /// The input for the tick.
    pub input: I,
    /// A command to send with it.
    pub command: Option<Vec<u8>>,
}

impl<I> Play<I> {
    /// Just input.
    pub fn input(input: I) -> Play<I> {
        Play {
            input,
            command: None,
        }
    }
}

/// Gives a client's play for a tick: (client index, player, tick, the client's frame
/// as it is when the input is asked for, so a player can react to what it sees).
pub type InputSource<G, I> = Box<dyn FnMut(usize, PlayerId, Tick, &Frame<G>) -> Play<I>>;

/// A server, its clients and the simulated network between them.
pub struct SimNet<G, I> {
    /// The server.
    pub server: Server<I>,
    clients: Vec<Client<G, I>>,
    links: Vec<LinkConfig>,
    online: Vec<bool>,
    /// Each client's current connection.
    current: Vec<Option<ConnId>>,
    /// Open connections: owner and the latest delivery time scheduled on them (a close
    /// is delivered after everything sent before it).
    open: BTreeMap<ConnId, (usize, Duration)>,
    /// Connections the server closed.
    closed_by_server: BTreeSet<ConnId>,
    next_conn: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, Delivery)>>,
    sequence: u64,
    rng: Rng,
    now: Duration,
    inputs: InputSource<G, I>,
    tamper: Option<Tamper>,
    /// Extra loss by message kind.
    kind_loss: Vec<(&'static str, u8)>,
    /// Every input each client accepted to send, with its tick, in order.
    pub handed: Vec<Vec<(Tick, I)>>,
    /// Events every client raised, with the time.
    pub client_events: Vec<Vec<(Duration, ClientEvent)>>,
    /// Events the server raised, with the time.
    pub server_events: Vec<(Duration, ServerEvent)>,
    /// Wall-clock time each client spent simulating during each catch-up it finished,
    /// in order (measured around [`Client::advance`]; it never affects the run).
    pub catch_up_walls: Vec<Vec<Duration>>,
    catching: Vec<Duration>,
    /// Every (tick, checksum) each client reported, in tick order.
    pub reported: Vec<Vec<(Tick, tickstep_engine::Checksum)>>,
    /// Bytes of encoded messages sent.
    pub bytes_sent: u64,
    /// Messages the receiver could not decode (a codec bug if ever non-zero).
    pub undecodable: u64,
}

impl<G: Pod, I: Input> SimNet<G, I> {
    /// A network around `server`, its randomness seeded with `seed`, clients' input
    /// taken from `inputs`.
    pub fn new(server: Server<I>, seed: u64, inputs: InputSource<G, I>) -> SimNet<G, I> {
        SimNet {
            server,
            clients: Vec::new(),
            links: Vec::new(),
            online: Vec::new(),
            current: Vec::new(),
            open: BTreeMap::new(),
            closed_by_server: BTreeSet::new(),
            next_conn: 1,
            queue: BinaryHeap::new(),
            sequence: 0,
            rng: Rng::new(seed),
            now: Duration::ZERO,
            inputs,
            tamper: None,
            kind_loss: Vec::new(),
            handed: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            catch_up_walls: Vec::new(),
            catching: Vec::new(),
            reported: Vec::new(),
            bytes_sent: 0,
            undecodable: 0,
        }
    }

    /// Virtual time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Adds a client on a link (it does nothing until [`SimNet::connect`]); returns its index.
    pub fn add_client(&mut self, client: Client<G, I>, link: LinkConfig) -> usize {
        self.clients.push(client);
        self.links.push(link);
        self.online.push(true);
        self.current.push(None);
        self.client_events.push(Vec::new());
        self.catch_up_walls.push(Vec::new());
        self.catching.push(Duration::ZERO);
        self.reported.push(Vec::new());
        self.handed.push(Vec::new());
        self.clients.len() - 1
    }

    /// Client `i`.
    pub fn client(&self, i: usize) -> &Client<G, I> {
        &self.clients[i]
    }

    /// Client `i`, to call its methods; effects are routed on the next run.
    pub fn client_mut(&mut self, i: usize) -> &mut Client<G, I> {
        &mut self.clients[i]
    }

    /// How many clients were added.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Tells client `i` to start joining now.
    pub fn connect(&mut self, i: usize) {
        let now = self.now;
        self.clients[i].connect(now);
        self.pump();
    }

    /// Changes client `i`'s link.
    pub fn set_link(&mut self, i: usize, link: LinkConfig) {
        self.links[i] = link;
    }

    /// Installs a hook that sees (and may change or drop) every client message.
    pub fn set_tamper(&mut self, tamper: Tamper) {
        self.tamper = Some(tamper);
    }

    /// Cuts client `i`'s connection: both ends learn of it after the link's latency
    /// (a reset, not silence). The client stays reachable unless also taken offline.
    pub fn cut(&mut self, i: usize) {
        if let Some(conn) = self.current[i] {
            self.open.remove(&conn);
            let at = self.now + self.links[i].latency;
            self.schedule(at, Delivery::ServerLost { conn });
            let what = "connection reset";
            self.schedule(
                at,
                Delivery::ClientLost {
                    client: i,
                    conn,
                    what,
                },
            );
        }
    }

    /// Takes client `i`'s link down or brings it back. While down every message is lost
    /// silently (timeouts find out) and connection attempts fail.
    pub fn set_online(&mut self, i: usize, online: bool) {
        self.online[i] = online;
    }

    /// Replaces client `i` (an app restart): the old client's connection goes away
    /// unnoticed by the server until it times out, like a killed process behind NAT.
    pub fn replace_client(&mut self, i: usize, client: Client<G, I>) -> Client<G, I> {
        if let Some(conn) = self.current[i].take() {
            self.open.remove(&conn);
        }
        std::mem::replace(&mut self.clients[i], client)
    }

    fn schedule(&mut self, at: Duration, delivery: Delivery) {
        self.sequence += 1;
        self.queue.push(Reverse((at, self.sequence, delivery)));
    }

    fn delay(&mut self, i: usize) -> Duration {
        let link = self.links[i];
        let jitter = link.jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            self.rng.next_u64() % (jitter + 1)
        };
        link.latency + Duration::from_micros(extra)
    }

    /// Copies of a message the link delivers (0 when lost, 2 when duplicated).
    /// Copies of a message of `kind` the link delivers (0 when lost, 2 when duplicated).
    fn copies(&mut self, i: usize, kind: &str) -> usize {
        let link = self.links[i];
        let extra = self
            .kind_loss
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, percent)| *percent);
        if !self.online[i]
            || self.rng.below(100) < link.loss_percent as u32
            || self.rng.below(100) < extra as u32
        {
            return 0;
        }
        1 + (self.rng.below(100) < link.duplicate_percent as u32) as usize
    }

    /// Makes every message of `kind` (a `ClientMessage::kind` or `ServerMessage::kind`
    /// name) on every link also lost `percent`% of the time: a way to aim loss at one
    /// step of a protocol (the welcome, the snapshot chunks).
    pub fn set_kind_loss(&mut self, kind: &'static str, percent: u8) {
        self.kind_loss.retain(|(k, _)| *k != kind);
        self.kind_loss.push((kind, percent));
    }

    fn send_on(
        &mut self,
        i: usize,
        conn: ConnId,
        kind: &str,
        make: impl Fn() -> Delivery,
        len: usize,
    ) {
        self.bytes_sent += len as u64;
        for _ in 0..self.copies(i, kind) {
            let at = self.now + self.delay(i);
            if let Some((_, last)) = self.open.get_mut(&conn) {
                *last = (*last).max(at);
            }
            self.schedule(at, make());
        }
    }

    /// Routes everything the server and clients want sent, and records their events.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let now = self.now;
            for i in 0..self.clients.len() {
                while let Some(transmit) = self.clients[i].poll_transmit(now) {
                    moved = true;
                    self.client_transmit(i, transmit);
                }
                while let Some(event) = self.clients[i].poll_event() {
                    match event {
                        ClientEvent::CaughtUp { .. } => {
                            self.catch_up_walls[i].push(std::mem::take(&mut self.catching[i]))
                        }
                        ClientEvent::Started | ClientEvent::Resynced { .. } => {
                            self.catching[i] = Duration::ZERO
                        }
                        _ => {}
                    }
                    self.client_events[i].push((self.now, event));
                }
            }
            while let Some(transmit) = self.server.poll_transmit() {
                moved = true;
                self.server_transmit(transmit);
            }
            while let Some(event) = self.server.poll_event() {
                self.server_events.push((self.now, event));
            }
            if !moved {
                return;
            }
        }
    }

    fn client_transmit(&mut self, i: usize, transmit: ClientTransmit) {
        match transmit {
            ClientTransmit::Connect => {
                self.close_client_conn(i);
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.current[i] = Some(conn);
                if self.online[i] {
                    self.open.insert(conn, (i, self.now));
                } else {
                    let what = "server unreachable";
                    self.schedule(
                        self.now + CONNECT_FAILS_AFTER,
                        Delivery::ClientLost {
                            client: i,
                            conn,
                            what,
                        },
                    );
                }
            }
            ClientTransmit::Send(message) => {
                let Some(conn) = self.current[i].filter(|c| self.open.contains_key(c)) else {
                    return;
                };
                if let ClientMessage::Update { checksums, .. } = &message {
                    let log = &mut self.reported[i];
                    for &(tick, sum) in checksums.iter().rev() {
                        if log.last().is_none_or(|&(last, _)| tick > last) {
                            log.push((tick, sum));
                        }
                    }
                }
                let messages = match self.tamper.as_mut() {
                    Some(tamper) => tamper(i, message),
                    None => vec![message],
                };
                for message in messages {
                    let bytes = encode(&message);
                    let len = bytes.len();
                    self.send_on(
                        i,
                        conn,
                        message.kind(),
                        || Delivery::ToServer {
                            conn,
                            bytes: bytes.clone(),
                        },
                        len,
                    );
                }
            }
            ClientTransmit::Close => self.close_client_conn(i),
        }
    }

    /// The client closes its connection; the server hears of it after what was sent.
    fn close_client_conn(&mut self, i: usize) {
        if let Some(conn) = self.current[i].take()
            && let Some((_, last)) = self.open.remove(&conn)
        {
            let at = last.max(self.now) + self.links[i].latency;
            self.schedule(at, Delivery::ServerLost { conn });
        }
    }

    /// Carries out `transmit`, then hands it back to the server to reuse (as the
    /// network loops do).
    fn server_transmit(&mut self, transmit: ServerTransmit) {
        self.carry_out(&transmit);
        self.server.recycle(transmit);
    }

    fn carry_out(&mut self, transmit: &ServerTransmit) {
        match *transmit {
            ServerTransmit::Send { to, ref message } => {
                let Some(&(client, _)) = self.open.get(&to) else {
                    return;
                };
                let bytes = encode(message);
                let len = bytes.len();
                self.send_on(
                    client,
                    to,
                    message.kind(),
                    || Delivery::ToClient {
                        client,
                        conn: to,
                        bytes: bytes.clone(),
                    },
                    len,
                );
            }
            ServerTransmit::Close { conn } => {
                self.closed_by_server.insert(conn);
                if let Some((client, last)) = self.open.remove(&conn) {
                    let at = last.max(self.now) + self.links[client].latency;
                    let what = "closed by the server";
                    self.schedule(at, Delivery::ClientLost { client, conn, what });
                }
            }
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now;
        match delivery {
            // What a client said after the server closed its connection no longer counts.
            Delivery::ToServer { conn, .. } if self.closed_by_server.contains(&conn) => {}
            Delivery::ToServer { conn, bytes } => match decode::<ClientMessage>(&bytes) {
                Ok(message) => self.server.handle_message(now, conn, message),
                Err(_) => self.undecodable += 1,
            },
            Delivery::ToClient {
                client,
                conn,
                bytes,
            } => {
                if self.current[client] != Some(conn) {
                    return;
                }
                match decode::<ServerMessage>(&bytes) {
                    Ok(message) => self.clients[client].handle_message(now, message),
                    Err(_) => self.undecodable += 1,
                }
            }
            Delivery::ServerLost { conn } => self.server.handle_disconnect(now, conn),
            Delivery::ClientLost { client, conn, what } => {
                if self.current[client] == Some(conn) {
                    self.current[client] = None;
                    self.open.remove(&conn);
                    self.clients[client].handle_connection_lost(now, what);
                }
            }
        }
    }

    /// Lets every client step what it holds and send the input that is due.
    fn play(&mut self) {
        let now = self.now;
        for i in 0..self.clients.len() {
            let client = &mut self.clients[i];
            let catching = matches!(client.state(), ClientState::CatchingUp { .. });
            let began = Instant::now();
            client.advance(now, u64::MAX);
            if catching {
                self.catching[i] += began.elapsed();
            }
            let Some(player) = client.player() else {
                continue;
            };
            while let Some(tick) = self.clients[i].next_input_tick(now) {
                let play = (self.inputs)(i, player, tick, self.clients[i].frame());
                if self.clients[i].send_input(now, play.input).is_some() {
                    self.handed[i].push((tick, play.input));
                }
                if let Some(command) = play.command {
                    // Refused only with a backlog the room has not confirmed: a bot
                    // loses that command, as a player pressing a key too often would.
                    let _ = self.clients[i].send_command(now, &command);
                }
            }
        }
    }

    fn next_time(&self) -> Option<Duration> {
        let queued = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let clients = self.clients.iter().filter_map(Client::poll_timeout);
        queued
            .into_iter()
            .chain(self.server.poll_timeout())
            .chain(clients)
            .min()
    }

    /// Runs until virtual time `until`, or until nothing is left to happen.
    pub fn run_until(&mut self, until: Duration) {
        self.run_while(until, |_| true);
    }

    /// Runs until `until` or until `keep_going` says stop (checked after every instant).
    pub fn run_while(
        &mut self,
        until: Duration,
        mut keep_going: impl FnMut(&SimNet<G, I>) -> bool,
    ) {
        self.play();
        self.pump();
        while let Some(next) = self.next_time() {
            // A timer already due was handled at `now`: move time on regardless.
            let next = next.max(self.now + Duration::from_micros(1)).min(until);
            if next <= self.now {
                break;
            }
            self.now = next;
            while let Some(Reverse((at, _, _))) = self.queue.peek()
                && *at <= self.now
            {
                let Some(Reverse((_, _, delivery))) = self.queue.pop() else {
                    break;
                };
                self.deliver(delivery);
                self.pump();
            }
            let now = self.now;
            self.server.handle_timeout(now);
            for client in &mut self.clients {
                client.handle_timeout(now);
            }
            self.play();
            self.pump();
            if !keep_going(self) || self.now >= until {
                break;
            }
        }
        if self.now < until && self.next_time().is_none() {
            self.now = until;
        }
    }
}
