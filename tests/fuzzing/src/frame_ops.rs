//! Entity and component operations against a model: the entity table keeps its
//! invariants, agrees with a plain map, never hands out a handle twice, and a clone or a
//! snapshot round trip at any point changes nothing.

use bytemuck::{Pod, Zeroable};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tickstep_engine::{Entity, Frame, Schema, With, Without, WorldError, checksum};
use tickstep_snapshot as snapshot;

/// A small component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Small(u32);

/// A component whose size is not a multiple of 16 bytes (exercises word tails).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Wide(u64, u16, u16, u32);

/// One operation; entity operands pick among every handle ever issued (so stale ones
/// are exercised), by index modulo their count.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameOp {
    /// Spawn an empty entity.
    Spawn,
    /// Despawn the picked handle.
    Despawn(u16),
    /// Insert or replace the small component.
    InsertSmall(u16, u32),
    /// Insert or replace the wide component.
    InsertWide(u16, u64),
    /// Remove the small component.
    RemoveSmall(u16),
    /// Remove the wide component.
    RemoveWide(u16),
    /// Carry on with a clone of the frame.
    Clone,
    /// Carry on with a frame restored from a snapshot of the frame.
    SnapshotRoundTrip,
    /// Record despawning the picked handle in the frame's commands.
    DeferDespawn(u16),
    /// Record inserting the small component.
    DeferInsertSmall(u16, u32),
    /// Record removing the wide component.
    DeferRemoveWide(u16),
    /// Apply the recorded commands.
    ApplyCommands,
}

type Model = BTreeMap<Entity, (Option<Small>, Option<Wide>)>;

fn schema() -> Arc<Schema> {
    Schema::builder::<u64>("frame-ops", 1)
        .component::<Small>("small")
        .component::<Wide>("wide")
        .build()
        .expect("the frame-ops schema is valid")
}

fn pick(issued: &[Entity], i: u16) -> Entity {
    match issued.len() {
        0 => Entity::NONE,
        n => issued[i as usize % n],
    }
}

/// Applies `ops` to a frame of `capacity` (at least 1) and to a model, asserting after
/// every operation that both agree.
pub fn check_frame_ops(ops: &[FrameOp], capacity: u8) {
    let capacity = capacity.max(1) as u32;
    let mut frame = Frame::new(schema(), capacity, 0u64).expect("frame");
    let mut model = Model::new();
    let mut issued: Vec<Entity> = Vec::new();
    let mut pending: Vec<(FrameOp, Entity)> = Vec::new();
    for &op in ops {
        match op {
            FrameOp::DeferDespawn(i)
            | FrameOp::DeferInsertSmall(i, _)
            | FrameOp::DeferRemoveWide(i) => {
                let e = pick(&issued, i);
                let commands = frame.parts().commands;
                match op {
                    FrameOp::DeferDespawn(_) => commands.despawn(e),
                    FrameOp::DeferInsertSmall(_, v) => commands.insert(e, Small(v)),
                    _ => commands.remove::<Wide>(e),
                }
                pending.push((op, e));
            }
            FrameOp::ApplyCommands | FrameOp::Clone | FrameOp::SnapshotRoundTrip => {
                // A frame's copies never carry pending commands: apply them first.
                frame
                    .apply_commands()
                    .expect("commands of registered types apply");
                apply_deferred(&mut model, pending.drain(..));
                apply(&mut frame, &mut model, &mut issued, op, capacity);
            }
            _ => apply(&mut frame, &mut model, &mut issued, op, capacity),
        }
        assert_matches_model(&frame, &model, &issued);
    }
}

/// The model of applying commands: in order, skipping entities gone by then.
fn apply_deferred(model: &mut Model, pending: impl Iterator<Item = (FrameOp, Entity)>) {
    for (op, e) in pending {
        match op {
            FrameOp::DeferDespawn(_) => {
                model.remove(&e);
            }
            FrameOp::DeferInsertSmall(_, v) => {
                if let Some(entry) = model.get_mut(&e) {
                    entry.0 = Some(Small(v));
                }
            }
            _ => {
                if let Some(entry) = model.get_mut(&e) {
                    entry.1 = None;
                }
            }
        }
    }
}

fn apply(
    frame: &mut Frame<u64>,
    model: &mut Model,
    issued: &mut Vec<Entity>,
    op: FrameOp,
    capacity: u32,
) {
    let world = frame.world_mut();
    match op {
        FrameOp::Spawn => match world.spawn() {
            Ok(e) => {
                assert!(!issued.contains(&e), "handle {e} issued twice: aliasing");
                issued.push(e);
                model.insert(e, (None, None));
            }
            Err(WorldError::CapacityExceeded { .. }) => assert_eq!(model.len(), capacity as usize),
            Err(other) => panic!("unexpected {other}"),
        },
        FrameOp::Despawn(i) => {
            let e = pick(issued, i);
            assert_eq!(world.despawn(e).is_ok(), model.remove(&e).is_some());
        }
        FrameOp::InsertSmall(i, v) => {
            let e = pick(issued, i);
            assert_eq!(world.insert(e, Small(v)).is_ok(), model.contains_key(&e));
            if let Some(entry) = model.get_mut(&e) {
                entry.0 = Some(Small(v));
            }
        }
        FrameOp::InsertWide(i, v) => {
            let e = pick(issued, i);
            let wide = Wide(v, v as u16, 7, v as u32);
            assert_eq!(world.insert(e, wide).is_ok(), model.contains_key(&e));
            if let Some(entry) = model.get_mut(&e) {
                entry.1 = Some(wide);
            }
        }
        FrameOp::RemoveSmall(i) => {
            let e = pick(issued, i);
            let expected = model.get_mut(&e).and_then(|entry| entry.0.take());
            assert_eq!(world.remove::<Small>(e).ok(), expected);
        }
        FrameOp::RemoveWide(i) => {
            let e = pick(issued, i);
            let expected = model.get_mut(&e).and_then(|entry| entry.1.take());
            assert_eq!(world.remove::<Wide>(e).ok(), expected);
        }
        FrameOp::Clone => {
            let copy = frame.clone();
            assert_eq!(checksum(&copy), checksum(frame));
            *frame = copy;
        }
        FrameOp::SnapshotRoundTrip => {
            let mut bytes = Vec::new();
            let sum = snapshot::encode(frame, &mut bytes);
            let restored: Frame<u64> =
                snapshot::restore_new(&bytes, Arc::clone(frame.schema()), capacity)
                    .expect("own snapshot restores");
            assert_eq!(checksum(&restored), sum);
            *frame = restored;
        }
        _ => {}
    }
}

fn assert_matches_model(frame: &Frame<u64>, model: &Model, issued: &[Entity]) {
    let world = frame.world();
    assert_eq!(world.len() as usize, model.len());
    let live: Vec<Entity> = world.entities().collect();
    let mut expected: Vec<Entity> = model.keys().copied().collect();
    expected.sort_by_key(|e| e.index());
    assert_eq!(live, expected, "entities iterate in slot order");
    let slots: BTreeSet<u32> = live.iter().map(|e| e.index()).collect();
    assert_eq!(slots.len(), live.len(), "one live entity per slot");
    for &e in issued {
        let alive = model.get(&e);
        assert_eq!(
            world.contains(e),
            alive.is_some(),
            "stale handle {e} must be dead"
        );
        assert_eq!(world.get::<Small>(e).ok(), alive.and_then(|x| x.0.as_ref()));
        assert_eq!(world.get::<Wide>(e).ok(), alive.and_then(|x| x.1.as_ref()));
    }
    let small: Vec<(Entity, Small)> = world
        .query::<&Small>()
        .expect("registered")
        .map(|(e, s)| (e, *s))
        .collect();
    let mut model_small: Vec<(Entity, Small)> = model
        .iter()
        .filter_map(|(e, (s, _))| s.map(|s| (*e, s)))
        .collect();
    model_small.sort_by_key(|(e, _)| e.index());
    assert_eq!(small, model_small);
    let both = world
        .query::<(&Small, &Wide)>()
        .expect("registered")
        .count();
    let model_both = model.values().filter(|(s, w)| s.is_some() && w.is_some());
    assert_eq!(both, model_both.count());
    // Optional components: every live entity, with what it holds, in slot order.
    let optional: Vec<(Entity, Option<Small>, Option<Wide>)> = world
        .query::<(Option<&Small>, Option<&Wide>)>()
        .expect("registered")
        .map(|(e, (s, w))| (e, s.copied(), w.copied()))
        .collect();
    let mut model_all: Vec<_> = model.iter().map(|(e, (s, w))| (*e, *s, *w)).collect();
    model_all.sort_by_key(|(e, _, _)| e.index());
    assert_eq!(optional, model_all);
    // Filters: small without wide, wide with small.
    let small_only: Vec<Entity> = world
        .query_filtered::<&Small, Without<Wide>>()
        .expect("registered")
        .map(|(e, _)| e)
        .collect();
    let model_small_only: Vec<Entity> = model_all
        .iter()
        .filter(|(_, s, w)| s.is_some() && w.is_none())
        .map(|(e, _, _)| *e)
        .collect();
    assert_eq!(small_only, model_small_only);
    let wide_with_small = world
        .query_filtered::<&Wide, With<Small>>()
        .expect("registered")
        .count();
    assert_eq!(wide_with_small, both);
}
