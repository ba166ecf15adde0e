//! Player input: `PlayerId` and `TickInputs`, the verified input of one tick.

use bytemuck::Pod;

use crate::Tick;

/// Most players one game may have (presence is a 64-bit mask).
pub const MAX_PLAYERS: usize = 64;

/// A player slot number, `0..players`.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct PlayerId(pub u8);

/// Why an input could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The player number is outside this game's player slots.
    #[error("player {player} does not exist in a game of {players} players")]
    NoSuchPlayer {
        /// The player asked for.
        player: u8,
        /// The game's player count.
        players: usize,
    },
    /// More than [`MAX_PLAYERS`] player slots.
    #[error("{0} players asked for; at most {MAX_PLAYERS} are supported")]
    TooManyPlayers(usize),
}

/// Every player's verified input for one tick, and which players are present.
///
/// An absent player's input reads as `None`; the game decides what that means (a ship
/// that drifts, a unit that holds). The buffer is reused from tick to tick by the caller,
/// so stepping allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickInputs<I> {
    tick: Tick,
    present: u64,
    inputs: Vec<I>,
}

impl<I: Pod> TickInputs<I> {
    /// Input for `players` slots, all absent, for tick 0.
    pub fn new(players: usize) -> Result<TickInputs<I>, InputError> {
        if players > MAX_PLAYERS {
            return Err(InputError::TooManyPlayers(players));
        }
        Ok(TickInputs {
            tick: 0,
            present: 0,
            inputs: vec![I::zeroed(); players],
        })
    }

    /// The tick this input is for.
    pub fn tick(&self) -> Tick {
        self.tick
    }

    /// Readies the buffer for `tick`: every player absent, every input zeroed.
    pub fn reset(&mut self, tick: Tick) {
        self.tick = tick;
        self.present = 0;
        self.inputs.fill(I::zeroed());
    }

    /// Number of player slots.
    pub fn players(&self) -> usize {
        self.inputs.len()
    }

    /// Bit `p` set when player `p` is present.
    pub fn present_mask(&self) -> u64 {
        self.present
    }

    /// Records `player`'s input and marks them present.
    pub fn set(&mut self, player: PlayerId, input: I) -> Result<(), InputError> {
        let players = self.inputs.len();
        let slot = self
            .inputs
            .get_mut(player.0 as usize)
            .ok_or(InputError::NoSuchPlayer {
                player: player.0,
                players,
            })?;
        *slot = input;
        self.present |= 1 << player.0;
        Ok(())
    }

    /// Marks `player` absent for this tick (their input reads as `None`, stored zeroed).
    pub fn set_absent(&mut self, player: PlayerId) {
        if let Some(slot) = self.inputs.get_mut(player.0 as usize) {
            *slot = I::zeroed();
            self.present &= !(1 << player.0);
        }
    }

    /// `player`'s input, or `None` when absent (or no such player).
    pub fn get(&self, player: PlayerId) -> Option<&I> {
        let present = (player.0 as usize) < MAX_PLAYERS && self.present & (1 << player.0) != 0;
        present.then(|| &self.inputs[player.0 as usize])
    }

    /// Every slot's input as stored, absent players zeroed (for logs and checksums).
    pub fn raw(&self) -> &[I] {
        &self.inputs
    }

    /// Present players and their input, in player order.
    pub fn iter(&self) -> impl Iterator<Item = (PlayerId, &I)> {
        self.inputs
            .iter()
            .enumerate()
            .filter(|(p, _)| self.present & (1 << p) != 0)
            .map(|(p, input)| (PlayerId(p as u8), input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_set_get_and_reset() {
        let mut inputs = TickInputs::<u32>::new(3).unwrap();
        inputs.reset(5);
        inputs.set(PlayerId(2), 9).unwrap();
        assert_eq!(inputs.get(PlayerId(2)), Some(&9));
        assert_eq!(inputs.get(PlayerId(0)), None);
        assert_eq!(inputs.get(PlayerId(200)), None);
        assert_eq!(inputs.iter().collect::<Vec<_>>(), vec![(PlayerId(2), &9)]);
        assert!(inputs.set(PlayerId(3), 1).is_err());
        inputs.set_absent(PlayerId(2));
        assert_eq!((inputs.get(PlayerId(2)), inputs.raw()[2]), (None, 0));
        inputs.set_absent(PlayerId(9));
        inputs.reset(6);
        assert_eq!(
            (inputs.tick(), inputs.present_mask(), inputs.raw()),
            (6, 0, &[0, 0, 0][..])
        );
        assert!(TickInputs::<u32>::new(65).is_err());
    }
}
