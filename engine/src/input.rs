//! Player input: `PlayerId` and `TickInputs`, the verified input of one tick: each
//! player's input with how it came to be (the player's own, replaced by the room, or
//! absent), and the discrete commands that land on the tick.

use bytemuck::Pod;

use crate::Tick;

/// Most players one game may have (presence is a 64-bit mask).
pub const MAX_PLAYERS: usize = 64;

/// Longest command, in bytes.
pub const MAX_COMMAND_LEN: usize = 256;

/// Most commands one tick carries, all players together.
pub const MAX_COMMANDS_PER_TICK: usize = 64;

/// How a player's input for a tick came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputStatus {
    /// The player's own input.
    Own,
    /// The player was connected but its input missed the deadline: the room filled it
    /// in (the value is what the room chose).
    Replaced,
    /// The player was not there (disconnected, or the slot is empty): no input.
    Absent,
}

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
    /// A command longer than [`MAX_COMMAND_LEN`].
    #[error("a command of {0} bytes is longer than the {MAX_COMMAND_LEN} allowed")]
    CommandTooLong(usize),
    /// The tick already carries [`MAX_COMMANDS_PER_TICK`] commands.
    #[error("a tick carries at most {MAX_COMMANDS_PER_TICK} commands")]
    TooManyCommands,
}

/// Every player's verified input for one tick, which players are present, which
/// inputs the room replaced, and the tick's commands.
///
/// An absent player's input reads as `None`; the game decides what that means (a ship
/// that drifts, a unit that holds). A replaced input reads as the value the room filled
/// in; [`TickInputs::status`] tells the two apart from the player's own. Commands are
/// discrete actions (an order, a chat line) as bytes, in the order they landed. The
/// buffer is reused from tick to tick by the caller, so stepping allocates nothing once
/// it has held the largest tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickInputs<I> {
    tick: Tick,
    present: u64,
    replaced: u64,
    inputs: Vec<I>,
    /// The commands' bytes, one after another.
    command_bytes: Vec<u8>,
    /// Each command: who sent it and where its bytes end in `command_bytes`.
    commands: Vec<(PlayerId, u32)>,
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
            replaced: 0,
            inputs: vec![I::zeroed(); players],
            command_bytes: Vec::new(),
            commands: Vec::new(),
        })
    }

    /// The tick this input is for.
    pub fn tick(&self) -> Tick {
        self.tick
    }

    /// Readies the buffer for `tick`: every player absent, every input zeroed, no
    /// commands.
    pub fn reset(&mut self, tick: Tick) {
        self.tick = tick;
        self.present = 0;
        self.replaced = 0;
        self.inputs.fill(I::zeroed());
        self.command_bytes.clear();
        self.commands.clear();
    }

    /// Sets the input of each player for whom `input` returns one (the rest stay absent).
    pub fn set_each(
        &mut self,
        mut input: impl FnMut(PlayerId) -> Option<I>,
    ) -> Result<(), InputError> {
        for player in (0..self.players()).map(|p| PlayerId(p as u8)) {
            if let Some(value) = input(player) {
                self.set(player, value)?;
            }
        }
        Ok(())
    }

    /// Number of player slots.
    pub fn players(&self) -> usize {
        self.inputs.len()
    }

    /// Bit `p` set when player `p` is present.
    pub fn present_mask(&self) -> u64 {
        self.present
    }

    /// Bit `p` set when player `p`'s input was filled in by the room.
    pub fn replaced_mask(&self) -> u64 {
        self.replaced
    }

    /// How `player`'s input came to be (`Absent` also for no such player).
    pub fn status(&self, player: PlayerId) -> InputStatus {
        let bit = 1u64.checked_shl(player.0 as u32).unwrap_or(0);
        match (self.present & bit != 0, self.replaced & bit != 0) {
            (false, _) => InputStatus::Absent,
            (true, false) => InputStatus::Own,
            (true, true) => InputStatus::Replaced,
        }
    }

    /// Records `input` the room filled in for `player` (present, but not its own).
    pub fn set_replaced(&mut self, player: PlayerId, input: I) -> Result<(), InputError> {
        self.set(player, input)?;
        self.replaced |= 1 << player.0;
        Ok(())
    }

    /// Sets presence and replacement from masks, as read back from a log (bits past
    /// the slot count are ignored; a replaced player is present).
    pub fn set_masks(&mut self, present: u64, replaced: u64) {
        let slots = 1u64
            .checked_shl(self.inputs.len() as u32)
            .map_or(u64::MAX, |b| b - 1);
        self.present = present & slots;
        self.replaced = replaced & self.present;
    }

    /// Adds a command from `player` (after those already on the tick).
    pub fn push_command(&mut self, player: PlayerId, command: &[u8]) -> Result<(), InputError> {
        if (player.0 as usize) >= self.inputs.len() {
            return Err(InputError::NoSuchPlayer {
                player: player.0,
                players: self.inputs.len(),
            });
        }
        if command.len() > MAX_COMMAND_LEN {
            return Err(InputError::CommandTooLong(command.len()));
        }
        if self.commands.len() >= MAX_COMMANDS_PER_TICK {
            return Err(InputError::TooManyCommands);
        }
        self.command_bytes.extend_from_slice(command);
        self.commands
            .push((player, self.command_bytes.len() as u32));
        Ok(())
    }

    /// The tick's commands, in the order they landed: (who, bytes).
    pub fn commands(&self) -> impl Iterator<Item = (PlayerId, &[u8])> {
        let mut start = 0;
        self.commands.iter().map(move |&(player, end)| {
            let bytes = &self.command_bytes[start..end as usize];
            start = end as usize;
            (player, bytes)
        })
    }

    /// The tick's commands that are one `C` each (others are skipped), typed.
    pub fn commands_as<C: Pod>(&self) -> impl Iterator<Item = (PlayerId, C)> + '_ {
        self.commands()
            .filter(|(_, bytes)| bytes.len() == size_of::<C>())
            .map(|(player, bytes)| (player, bytemuck::pod_read_unaligned(bytes)))
    }

    /// How many commands the tick carries.
    pub fn command_count(&self) -> usize {
        self.commands.len()
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
            self.replaced &= !(1 << player.0);
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

    #[test]
    fn statuses_tell_own_replaced_and_absent_apart() {
        let mut inputs = TickInputs::<u32>::new(3).unwrap();
        inputs.set(PlayerId(0), 1).unwrap();
        inputs.set_replaced(PlayerId(1), 2).unwrap();
        assert_eq!(inputs.status(PlayerId(0)), InputStatus::Own);
        assert_eq!(inputs.status(PlayerId(1)), InputStatus::Replaced);
        assert_eq!(inputs.status(PlayerId(2)), InputStatus::Absent);
        assert_eq!(inputs.status(PlayerId(99)), InputStatus::Absent);
        assert_eq!(
            inputs.get(PlayerId(1)),
            Some(&2),
            "a replaced input still reads"
        );
        assert_eq!(inputs.replaced_mask(), 0b010);
        inputs.set_absent(PlayerId(1));
        assert_eq!(inputs.replaced_mask(), 0);
        inputs.set_masks(u64::MAX, 0b100);
        assert_eq!(
            (inputs.present_mask(), inputs.replaced_mask()),
            (0b111, 0b100)
        );
    }

    #[test]
    fn commands_keep_their_order_and_bounds() {
        let mut inputs = TickInputs::<u32>::new(2).unwrap();
        inputs.push_command(PlayerId(1), b"go").unwrap();
        inputs.push_command(PlayerId(0), &[7, 0]).unwrap();
        inputs.push_command(PlayerId(1), b"").unwrap();
        let seen: Vec<_> = inputs.commands().collect();
        assert_eq!(
            seen,
            vec![
                (PlayerId(1), &b"go"[..]),
                (PlayerId(0), &[7, 0][..]),
                (PlayerId(1), &[][..])
            ]
        );
        let typed: Vec<(PlayerId, u16)> = inputs.commands_as::<u16>().collect();
        assert_eq!(
            typed,
            vec![(PlayerId(1), u16::from_le_bytes(*b"go")), (PlayerId(0), 7)]
        );
        assert_eq!(
            inputs.push_command(PlayerId(2), b"x"),
            Err(InputError::NoSuchPlayer {
                player: 2,
                players: 2
            })
        );
        assert_eq!(
            inputs.push_command(PlayerId(0), &[0; MAX_COMMAND_LEN + 1]),
            Err(InputError::CommandTooLong(MAX_COMMAND_LEN + 1))
        );
        for _ in inputs.command_count()..MAX_COMMANDS_PER_TICK {
            inputs.push_command(PlayerId(0), b"").unwrap();
        }
        assert_eq!(
            inputs.push_command(PlayerId(0), b""),
            Err(InputError::TooManyCommands)
        );
        inputs.reset(2);
        assert_eq!(inputs.command_count(), 0);
    }
}
