//! The sync test catches the two classic ways a system breaks lockstep without any
//! peer noticing until a rejoin: state kept in the system, and randomly seeded hashing.
// Test helpers may unwrap: a failure here is a failed test, not a caller's input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytemuck::{Pod, Zeroable};
use std::collections::HashMap;
use std::sync::Arc;
use tickstep_engine::{
    Entity, Frame, FrameError, Game, PlayerId, Rng, Schema, Simulation, System, SystemResult,
    TickInputs,
};
use tickstep_snapshot::{SyncTest, SyncTestError};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Score(u64);

#[derive(Clone, Copy, Default, Pod, Zeroable)]
#[repr(C)]
struct Globals {
    rng: Rng,
}

/// Which flaw the game's one system has.
#[derive(Clone, Copy)]
enum Flaw {
    None,
    /// Counts ticks in a field of the system.
    StateInSystem,
    /// Hands out RNG draws in a `HashMap`'s iteration order.
    RandomHashOrder,
}

struct Scoring {
    flaw: Flaw,
    ticks_seen: u64,
}

impl System<Globals, u8> for Scoring {
    fn run(&mut self, frame: &mut Frame<Globals>, inputs: &TickInputs<u8>) -> SystemResult {
        self.ticks_seen += 1;
        let bonus = u64::from(inputs.get(PlayerId(0)).copied().unwrap_or(0));
        let (globals, world) = frame.split_mut();
        let entities: Vec<Entity> = world.query::<&Score>()?.map(|(e, _)| e).collect();
        let order: Vec<Entity> = match self.flaw {
            Flaw::RandomHashOrder => {
                let by_entity: HashMap<Entity, ()> = entities.iter().map(|&e| (e, ())).collect();
                by_entity.into_keys().collect()
            }
            _ => entities,
        };
        for entity in order {
            let mut draw = u64::from(globals.rng.below(1000)) + bonus;
            if let Flaw::StateInSystem = self.flaw {
                draw += self.ticks_seen;
            }
            world.get_mut::<Score>(entity)?.0 += draw;
        }
        Ok(())
    }
}

struct Scores(Flaw);

impl Game for Scores {
    type Globals = Globals;
    type Input = u8;
    type Error = FrameError;

    fn schema(&self) -> Arc<Schema> {
        Schema::builder::<Globals>("scores", 1)
            .component::<Score>("score")
            .build()
            .expect("valid schema")
    }

    fn initial_frame(&self) -> Result<Frame<Globals>, FrameError> {
        let globals = Globals { rng: Rng::new(7) };
        let mut frame = Frame::new(self.schema(), 16, globals)?;
        for _ in 0..8 {
            frame
                .world_mut()
                .spawn_with((Score(0),))
                .expect("room for 8");
        }
        Ok(frame)
    }

    fn simulation(&self) -> Simulation<Globals, u8> {
        Simulation::new().with_system(Scoring {
            flaw: self.0,
            ticks_seen: 0,
        })
    }
}

fn first_divergence(flaw: Flaw) -> Option<(u64, String)> {
    let mut test = SyncTest::new(Scores(flaw), 1).expect("setup");
    match test.run_to(300, |_, frame| Some((frame.tick() % 3) as u8)) {
        Ok(()) => None,
        Err(SyncTestError::Diverged {
            tick, differences, ..
        }) => Some((tick, format!("{:?}", differences.differences[0]))),
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn a_pure_game_passes_a_whole_run() {
    assert_eq!(first_divergence(Flaw::None), None);
}

#[test]
fn state_kept_in_a_system_is_caught_on_the_second_tick_with_the_field() {
    let (tick, first) = first_divergence(Flaw::StateInSystem).expect("caught");
    // Tick 1's fresh system has seen one tick, like the running one; at tick 2 they part.
    assert_eq!(tick, 2);
    assert!(first.contains("score"), "{first}");
}

#[test]
fn iterating_a_randomly_seeded_hash_map_is_caught_within_a_few_ticks() {
    let (tick, first) = first_divergence(Flaw::RandomHashOrder).expect("caught");
    assert!(tick <= 3, "caught only at tick {tick}");
    assert!(first.contains("score"), "{first}");
}
