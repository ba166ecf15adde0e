//! `ServerStats`: what a server has done since it started and what it holds now, for
//! an operator's metrics. Counters move as the rooms' events are collected (one place),
//! gauges are read from the rooms when asked.

use crate::Refusal;
use crate::protocol::Entry;
use crate::room::{LET_GO_AFTER_THE_END, RoomEvent};

/// What a server has done (counters, since it started) and holds (gauges, now).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Rooms open (not closed): in their lobby, playing, or ended with players left.
    pub rooms_open: u64,
    /// Rooms whose game is running.
    pub rooms_playing: u64,
    /// Connections the transport announced and the server holds.
    pub connections: u64,
    /// Players connected to a room (connections that said hello and hold a seat).
    pub players_connected: u64,
    /// Connections watching a room without a seat.
    pub watchers_connected: u64,
    /// The server is draining: it starts no new games.
    pub draining: bool,
    /// Bytes the rooms' input histories hold (what a long game's room grows by).
    pub input_history_bytes: u64,
    /// Ticks verified, all rooms together.
    pub ticks: u64,
    /// Of those, ticks finalised more than a tick period late (the server fell behind).
    pub late_ticks: u64,
    /// Of those, ticks with some slot's input filled in (late or absent player).
    pub filled_ticks: u64,
    /// Games started.
    pub games_started: u64,
    /// Games that reached their end tick.
    pub games_ended: u64,
    /// Players seated, first time in a room.
    pub joins: u64,
    /// Players seated again in the slot they held.
    pub rejoins: u64,
    /// Connections taken in as watchers.
    pub watches: u64,
    /// Players whose connection ended while they held a slot (not a quit).
    pub drops: u64,
    /// Players who entered a running game from a snapshot or from its start after a
    /// drop, and so caught up.
    pub catch_ups: u64,
    /// Snapshots sent to joiners.
    pub snapshot_transfers: u64,
    /// Their bytes.
    pub snapshot_bytes: u64,
    /// Buddy snapshots that did not match the peers' checksums.
    pub buddy_snapshots_rejected: u64,
    /// Desyncs found (ticks at which players disagreed).
    pub desyncs: u64,
    /// Connections and hellos refused, for any reason.
    pub refusals: u64,
    /// Of those, refused by a limit (connections in all or per address, seats per
    /// address, watchers per room or address).
    pub refused_by_limit: u64,
}

impl ServerStats {
    /// Adds `other`'s figures to these (several servers' stats as one: a sharded
    /// host's). Draining if either is.
    pub fn merge(&mut self, other: &ServerStats) {
        let ServerStats {
            rooms_open,
            rooms_playing,
            connections,
            players_connected,
            watchers_connected,
            draining,
            input_history_bytes,
            ticks,
            late_ticks,
            filled_ticks,
            games_started,
            games_ended,
            joins,
            rejoins,
            watches,
            drops,
            catch_ups,
            snapshot_transfers,
            snapshot_bytes,
            buddy_snapshots_rejected,
            desyncs,
            refusals,
            refused_by_limit,
        } = other;
        self.rooms_open += rooms_open;
        self.rooms_playing += rooms_playing;
        self.connections += connections;
        self.players_connected += players_connected;
        self.watchers_connected += watchers_connected;
        self.draining |= draining;
        self.input_history_bytes += input_history_bytes;
        self.ticks += ticks;
        self.late_ticks += late_ticks;
        self.filled_ticks += filled_ticks;
        self.games_started += games_started;
        self.games_ended += games_ended;
        self.joins += joins;
        self.rejoins += rejoins;
        self.watches += watches;
        self.drops += drops;
        self.catch_ups += catch_ups;
        self.snapshot_transfers += snapshot_transfers;
        self.snapshot_bytes += snapshot_bytes;
        self.buddy_snapshots_rejected += buddy_snapshots_rejected;
        self.desyncs += desyncs;
        self.refusals += refusals;
        self.refused_by_limit += refused_by_limit;
    }

    /// Counts what `event` says happened.
    pub(super) fn count_event(&mut self, event: &RoomEvent) {
        match event {
            RoomEvent::PlayerJoined {
                rejoined, entry, ..
            } => {
                if *rejoined {
                    self.rejoins += 1;
                } else {
                    self.joins += 1;
                }
                let catches_up = match entry {
                    Entry::LocalSnapshot { .. } | Entry::AwaitSnapshot => true,
                    Entry::FromStart => *rejoined,
                    Entry::Lobby => false,
                };
                self.catch_ups += u64::from(catches_up);
            }
            // Kicked, or let go after the end: not a drop.
            RoomEvent::PlayerLeft {
                reason: Some(reason),
                ..
            } if reason != "kicked" && reason != LET_GO_AFTER_THE_END => self.drops += 1,
            RoomEvent::GameStarted { .. } => self.games_started += 1,
            RoomEvent::GameEnded { .. } => self.games_ended += 1,
            RoomEvent::SnapshotSent { bytes, .. } => {
                self.snapshot_transfers += 1;
                self.snapshot_bytes += bytes;
            }
            RoomEvent::BuddySnapshotRejected { .. } => self.buddy_snapshots_rejected += 1,
            RoomEvent::Desync { .. } => self.desyncs += 1,
            RoomEvent::WatcherJoined { .. } => self.watches += 1,
            RoomEvent::PlayerLeft { .. }
            | RoomEvent::WatcherLeft { .. }
            | RoomEvent::SlotFreed { .. }
            | RoomEvent::BuddyAsked { .. }
            | RoomEvent::Evidence { .. }
            | RoomEvent::RoomClosed => {}
        }
    }

    /// Counts a refusal.
    pub(super) fn count_refusal(&mut self, refusal: &Refusal) {
        self.refusals += 1;
        if matches!(
            refusal,
            Refusal::TooManyConnections
                | Refusal::TooManySeatsFromAddress
                | Refusal::TooManyWatchers
        ) {
            self.refused_by_limit += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickstep_engine::PlayerId;

    #[test]
    fn a_drop_is_a_player_lost_not_one_kicked_or_let_go_after_the_end() {
        let mut stats = ServerStats::default();
        for reason in [
            None,
            Some("lost"),
            Some("kicked"),
            Some(LET_GO_AFTER_THE_END),
        ] {
            stats.count_event(&RoomEvent::PlayerLeft {
                player: PlayerId(0),
                reason: reason.map(str::to_string),
            });
        }
        assert_eq!(stats.drops, 1, "only the one lost");
    }
}
