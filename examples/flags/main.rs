//! Flags: a small capture-the-flag game on tickstep, the model for the README's
//! "Embedding" section. Two runners race for a banner in the middle of the field; the
//! one carrying it scores by bringing it to its home edge; touching the carrier steals
//! it; boosts appear now and then and double a runner's speed for a while.
//!
//! It shows the engine's tools for game code: query filters (`With`, `Without`),
//! optional components, `get_many_mut`, deferred commands to spawn and despawn while a
//! query runs, fallible systems, the `Game` trait, and bots that steer by what they see.
//!
//! Run it with `cargo run --example flags`; its tests (offline, through a snapshot, the
//! sync test, and over a simulated network with a drop and a rejoin) run with
//! `cargo test --example flags`, and with `cargo test --workspace`.

use std::sync::Arc;
use tickstep_engine::{
    BuildError, Entity, Fp, Frame, Game, OfflineRun, Parts, PlayerId, Pod, Rng, Schema, Simulation,
    SystemResult, TickInputs, Vec2, With, Without, Zeroable,
};

#[cfg(test)]
mod tests;

/// Where something is on the field.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Pos(pub Vec2);

/// A player's runner. Fields go largest first, with explicit padding: `Pod` allows none
/// hidden.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Runner {
    pub speed: Fp,
    pub player: u8,
    pub _pad: [u8; 7],
}

/// Something to pick up; `kind` is an enum stored as its number.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Item {
    pub kind: u8,
}

impl Item {
    pub const BANNER: Item = Item { kind: 0 };
    pub const BOOST: Item = Item { kind: 1 };
}

/// On a runner that carries the banner.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Carrying {
    pub since: u32,
}

/// On a runner that picked up a boost: ticks left.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Boosted {
    pub ticks: u32,
}

/// The match: scores, and the RNG that places boosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Match {
    pub rng: Rng,
    pub scores: [u32; 2],
}

/// A player's input for one tick: which way to run (-1, 0 or 1 on each axis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "tickstep_engine::bytemuck")]
#[repr(C)]
pub struct Steer {
    pub x: i8,
    pub y: i8,
}

/// The field is `SIDE` × `SIDE`; player 0 scores at x = 0, player 1 at x = `SIDE`.
const SIDE: i64 = 40;
/// Touching distance (squared).
const REACH_SQ: i64 = 4;
/// Ticks between boosts, and how long one lasts.
const BOOST_EVERY: u64 = 150;
const BOOST_TICKS: u32 = 90;

/// The game: its seed picks where boosts appear.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    pub seed: u64,
}

impl Game for Flags {
    type Globals = Match;
    type Input = Steer;
    type Error = BuildError;

    fn schema(&self) -> Arc<Schema> {
        Schema::builder::<Match>("flags", 1)
            .component::<Pos>("pos")
            .component::<Runner>("runner")
            .component::<Item>("item")
            .component::<Carrying>("carrying")
            .component::<Boosted>("boosted")
            .build()
            .expect("the flags schema is valid")
    }

    fn initial_frame(&self) -> Result<Frame<Match>, BuildError> {
        let globals = Match {
            rng: Rng::new(self.seed),
            scores: [0; 2],
        };
        let mut frame = Frame::new(self.schema(), 16, globals)?;
        let world = frame.world_mut();
        for (player, x) in [(0u8, 4), (1, SIDE - 4)] {
            let speed = Fp::from_ratio(1, 2);
            let runner = Runner {
                speed,
                player,
                _pad: [0; 7],
            };
            world.spawn_with((Pos(Vec2::from_ints(x, SIDE / 2)), runner))?;
        }
        world.spawn_with((Pos(center()), Item::BANNER))?;
        Ok(frame)
    }

    fn simulation(&self) -> Simulation<Match, Steer> {
        Simulation::new()
            .with_system(run)
            .with_system(pick_up)
            .with_system(tag)
            .with_system(score)
            .with_system(place_boost)
    }
}

fn center() -> Vec2 {
    Vec2::from_ints(SIDE / 2, SIDE / 2)
}

fn touching(a: Vec2, b: Vec2) -> bool {
    (a - b).length_squared() <= Fp::from_int(REACH_SQ)
}

/// Each runner moves as its player steers, twice as fast while boosted.
fn run(frame: &mut Frame<Match>, inputs: &TickInputs<Steer>) -> SystemResult {
    let Parts {
        world, commands, ..
    } = frame.parts();
    let field = Vec2::from_ints(SIDE, SIDE);
    for (entity, (pos, runner, boost)) in
        world.query_mut::<(&mut Pos, &Runner, Option<&mut Boosted>)>()?
    {
        let steer = inputs
            .get(PlayerId(runner.player))
            .copied()
            .unwrap_or_default();
        let mut speed = runner.speed;
        if let Some(boost) = boost {
            speed = speed.mul_int(2);
            boost.ticks -= 1;
            if boost.ticks == 0 {
                commands.remove::<Boosted>(entity);
            }
        }
        let way = Vec2::from_ints(steer.x.signum().into(), steer.y.signum().into());
        pos.0 = (pos.0 + way.normalize_or_zero() * speed).clamp(Vec2::ZERO, field);
    }
    Ok(())
}

/// A runner that touches an item takes it: the banner (if it carries nothing yet) or a
/// boost. The first runner in slot order wins a tie.
fn pick_up(frame: &mut Frame<Match>, _: &TickInputs<Steer>) -> SystemResult {
    let tick = frame.tick() as u32;
    let Parts {
        world, commands, ..
    } = frame.parts();
    let mut taken = Vec::new();
    for (runner, (at, carrying)) in
        world.query_filtered::<(&Pos, Option<&Carrying>), With<Runner>>()?
    {
        for (item, (pos, kind)) in world.query::<(&Pos, &Item)>()? {
            if taken.contains(&item) || !touching(at.0, pos.0) {
                continue;
            }
            if *kind == Item::BOOST {
                commands.insert(runner, Boosted { ticks: BOOST_TICKS });
            } else if carrying.is_none() {
                commands.insert(runner, Carrying { since: tick });
            } else {
                continue;
            }
            commands.despawn(item);
            taken.push(item);
        }
    }
    Ok(())
}

/// A runner touching the carrier steals the banner; both bounce apart.
fn tag(frame: &mut Frame<Match>, _: &TickInputs<Steer>) -> SystemResult {
    let tick = frame.tick() as u32;
    let Parts {
        world, commands, ..
    } = frame.parts();
    let Some((carrier, since)) = world
        .query::<&Carrying>()?
        .map(|(e, c)| (e, c.since))
        .next()
    else {
        return Ok(());
    };
    let chasers: Vec<Entity> = world
        .query_filtered::<&Runner, Without<Carrying>>()?
        .map(|(e, _)| e)
        .collect();
    for chaser in chasers {
        let [held, free] = world.get_many_mut::<Pos, 2>([carrier, chaser])?;
        // A fresh carrier gets a moment's grace so the banner does not flicker.
        if tick > since + 30 && touching(held.0, free.0) {
            let apart = (free.0 - held.0).normalize_or_zero() * Fp::from_int(3);
            free.0 += apart;
            held.0 -= apart;
            commands.remove::<Carrying>(carrier);
            commands.insert(chaser, Carrying { since: tick });
            break;
        }
    }
    Ok(())
}

/// A carrier at its home edge scores; the banner goes back to the middle.
fn score(frame: &mut Frame<Match>, _: &TickInputs<Steer>) -> SystemResult {
    let Parts {
        globals,
        world,
        commands,
    } = frame.parts();
    for (runner, (pos, who)) in world.query_filtered::<(&Pos, &Runner), With<Carrying>>()? {
        if (pos.0.x - home(who.player)).clamp(-Fp::ONE, Fp::ONE) == pos.0.x - home(who.player) {
            globals.scores[usize::from(who.player & 1)] += 1;
            commands.remove::<Carrying>(runner);
            commands.spawn((Pos(center()), Item::BANNER));
        }
    }
    Ok(())
}

/// Every `BOOST_EVERY` ticks a boost appears at a random place, if none is out.
fn place_boost(frame: &mut Frame<Match>, _: &TickInputs<Steer>) -> SystemResult {
    if !frame.tick().is_multiple_of(BOOST_EVERY) {
        return Ok(());
    }
    let Parts {
        globals,
        world,
        commands,
    } = frame.parts();
    if world
        .query::<&Item>()?
        .any(|(_, item)| *item == Item::BOOST)
    {
        return Ok(());
    }
    let side = Fp::from_int(SIDE);
    let at = Vec2::new(
        globals.rng.range(Fp::ZERO, side),
        globals.rng.range(Fp::ZERO, side),
    );
    commands.spawn((Pos(at), Item::BOOST));
    Ok(())
}

/// The x of a player's home edge.
fn home(player: u8) -> Fp {
    Fp::from_int(if player == 0 { 0 } else { SIDE })
}

/// A bot's steer, from what it sees: to the banner, or home with it, or after the
/// carrier; it grabs a boost when one is nearer than its goal.
pub fn bot(player: PlayerId, frame: &Frame<Match>) -> Option<Steer> {
    let world = frame.world();
    let mut me = None;
    let mut carrier = None;
    for (entity, (pos, runner)) in world.query::<(&Pos, &Runner)>().ok()? {
        if runner.player == player.0 {
            me = Some((entity, pos.0));
        }
        if world.has::<Carrying>(entity) {
            carrier = Some(pos.0);
        }
    }
    let (me, at) = me?;
    let banner = world
        .query::<(&Pos, &Item)>()
        .ok()?
        .find(|(_, (_, i))| **i == Item::BANNER);
    let boost = world
        .query::<(&Pos, &Item)>()
        .ok()?
        .find(|(_, (_, i))| **i == Item::BOOST);
    let mut goal = match (world.has::<Carrying>(me), banner, carrier) {
        (true, _, _) => Vec2::new(home(player.0), at.y),
        (false, Some((_, (pos, _))), _) => pos.0,
        (false, None, Some(carrier)) => carrier,
        (false, None, None) => center(),
    };
    if let Some((_, (pos, _))) = boost
        && (pos.0 - at).length_squared() < (goal - at).length_squared()
    {
        goal = pos.0;
    }
    let axis = |d: Fp| {
        if d > Fp::HALF {
            1
        } else if d < -Fp::HALF {
            -1
        } else {
            0
        }
    };
    Some(Steer {
        x: axis(goal.x - at.x),
        y: axis(goal.y - at.y),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let game = Flags { seed: 7 };
    let mut offline = OfflineRun::for_game(&game, 2)?;
    offline.run_to(3600, bot)?;
    let frame = offline.frame();
    println!(
        "a minute of flags: score {} : {}, tick {} checksum {}",
        frame.globals().scores[0],
        frame.globals().scores[1],
        frame.tick(),
        tickstep_engine::checksum(frame)
    );
    Ok(())
}
