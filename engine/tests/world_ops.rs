//! Property tests: random sequences of entity/component operations keep the entity
//! table's invariants, agree with a simple model, never alias a stale handle, and clone
//! to an equal frame.

use bytemuck::{Pod, Zeroable};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tickstep_engine::{Entity, Frame, Schema, WorldError, checksum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct A(u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct B(u64, u16, u16, u32);

#[derive(Clone, Copy, Debug)]
enum Op {
    Spawn,
    Despawn(usize),
    InsertA(usize, u32),
    InsertB(usize, u64),
    RemoveA(usize),
    RemoveB(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Spawn),
        2 => any::<usize>().prop_map(Op::Despawn),
        2 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::InsertA(i, v)),
        2 => (any::<usize>(), any::<u64>()).prop_map(|(i, v)| Op::InsertB(i, v)),
        1 => any::<usize>().prop_map(Op::RemoveA),
        1 => any::<usize>().prop_map(Op::RemoveB),
    ]
}

type Model = BTreeMap<Entity, (Option<A>, Option<B>)>;

fn new_frame(capacity: u32) -> Frame<u64> {
    let schema = Schema::builder::<u64>("ops", 1)
        .component::<A>("a")
        .component::<B>("b")
        .build()
        .unwrap();
    Frame::new(schema, capacity, 0).unwrap()
}

fn pick(issued: &[Entity], i: usize) -> Entity {
    if issued.is_empty() {
        Entity::NONE
    } else {
        issued[i % issued.len()]
    }
}

/// Applies `ops` to a frame and to the model, checking each result against the model.
fn run(ops: &[Op], capacity: u32) -> (Frame<u64>, Model, Vec<Entity>) {
    let mut frame = new_frame(capacity);
    let mut model = Model::new();
    // Every handle ever issued: ops pick from these, so stale handles are exercised.
    let mut issued: Vec<Entity> = Vec::new();
    for &op in ops {
        let world = frame.world_mut();
        match op {
            Op::Spawn => match world.spawn() {
                Ok(e) => {
                    assert!(!issued.contains(&e), "handle {e} issued twice: aliasing");
                    issued.push(e);
                    model.insert(e, (None, None));
                }
                Err(WorldError::CapacityExceeded { .. }) => {
                    assert_eq!(model.len(), capacity as usize)
                }
                Err(other) => panic!("unexpected {other}"),
            },
            Op::Despawn(i) => {
                let e = pick(&issued, i);
                assert_eq!(world.despawn(e).is_ok(), model.remove(&e).is_some());
            }
            Op::InsertA(i, v) => {
                let e = pick(&issued, i);
                assert_eq!(world.insert(e, A(v)).is_ok(), model.contains_key(&e));
                if let Some(entry) = model.get_mut(&e) {
                    entry.0 = Some(A(v));
                }
            }
            Op::InsertB(i, v) => {
                let e = pick(&issued, i);
                let b = B(v, v as u16, 7, v as u32);
                assert_eq!(world.insert(e, b).is_ok(), model.contains_key(&e));
                if let Some(entry) = model.get_mut(&e) {
                    entry.1 = Some(b);
                }
            }
            Op::RemoveA(i) => {
                let e = pick(&issued, i);
                let expected = model.get_mut(&e).and_then(|entry| entry.0.take());
                assert_eq!(world.remove::<A>(e).ok(), expected);
            }
            Op::RemoveB(i) => {
                let e = pick(&issued, i);
                let expected = model.get_mut(&e).and_then(|entry| entry.1.take());
                assert_eq!(world.remove::<B>(e).ok(), expected);
            }
        }
    }
    (frame, model, issued)
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
        assert_eq!(world.get::<A>(e).ok(), alive.and_then(|x| x.0.as_ref()));
        assert_eq!(world.get::<B>(e).ok(), alive.and_then(|x| x.1.as_ref()));
    }
    let with_a: Vec<(Entity, A)> = world.query::<&A>().map(|(e, a)| (e, *a)).collect();
    let mut model_a: Vec<(Entity, A)> = model
        .iter()
        .filter_map(|(e, (a, _))| a.map(|a| (*e, a)))
        .collect();
    model_a.sort_by_key(|(e, _)| e.index());
    assert_eq!(with_a, model_a);
    let both = world.query::<(&A, &B)>().count();
    let model_both = model.values().filter(|(a, b)| a.is_some() && b.is_some());
    assert_eq!(both, model_both.count());
}

proptest! {
    #[test]
    fn random_operations_agree_with_model_and_never_alias(
        ops in prop::collection::vec(op(), 0..300),
        capacity in 1u32..40,
    ) {
        let (frame, model, issued) = run(&ops, capacity);
        assert_matches_model(&frame, &model, &issued);
    }

    #[test]
    fn clone_and_clone_from_give_equal_frames(
        ops in prop::collection::vec(op(), 0..200),
        other in prop::collection::vec(op(), 0..200),
    ) {
        let (frame, model, issued) = run(&ops, 64);
        let copy = frame.clone();
        assert_matches_model(&copy, &model, &issued);
        prop_assert_eq!(checksum(&copy), checksum(&frame));
        // clone_from into a frame with a different history must erase that history.
        let (mut target, _, _) = run(&other, 64);
        target.clone_from(&frame);
        assert_matches_model(&target, &model, &issued);
        prop_assert_eq!(checksum(&target), checksum(&frame));
    }

    #[test]
    fn same_operations_same_checksum(ops in prop::collection::vec(op(), 1..200)) {
        prop_assert_eq!(checksum(&run(&ops, 64).0), checksum(&run(&ops, 64).0));
    }
}

#[test]
fn removed_components_leave_zero_bytes_behind() {
    // Same operations, different removed values: equal checksums prove the bytes were
    // zeroed (the column's window of slots, a pure function of the operations, matches).
    let removed_value = |b: B| {
        let mut frame = new_frame(8);
        let e = frame.world_mut().spawn_with((A(5),)).unwrap();
        frame.world_mut().insert(e, b).unwrap();
        frame.world_mut().remove::<B>(e).unwrap();
        checksum(&frame)
    };
    assert_eq!(removed_value(B(1, 2, 3, 4)), removed_value(B(9, 9, 9, 9)));
    let despawned_value = |a: A| {
        let mut frame = new_frame(8);
        let e = frame.world_mut().spawn_with((a, B(0, 0, 0, 1))).unwrap();
        frame.world_mut().despawn(e).unwrap();
        checksum(&frame)
    };
    assert_eq!(despawned_value(A(1)), despawned_value(A(2)));
}

#[test]
fn spawn_with_unregistered_type_creates_nothing() {
    let mut frame = new_frame(8);
    let result = frame.world_mut().spawn_with((A(1), 7u8));
    assert!(matches!(result, Err(WorldError::UnregisteredComponent(_))));
    assert!(frame.world().is_empty());
}

#[test]
fn mutable_query_writes_only_matching_entities() {
    let mut frame = new_frame(8);
    let world = frame.world_mut();
    let both = world.spawn_with((A(1), B(0, 0, 0, 0))).unwrap();
    let only_a = world.spawn_with((A(1),)).unwrap();
    for (_, (a, b)) in world.query_mut::<(&mut A, &B)>() {
        a.0 += 10 + b.3;
    }
    assert_eq!(world.get::<A>(both), Ok(&A(11)));
    assert_eq!(world.get::<A>(only_a), Ok(&A(1)));
}

#[test]
#[should_panic(expected = "same component twice")]
fn query_naming_a_component_twice_panics() {
    let mut frame = new_frame(8);
    frame.world_mut().query_mut::<(&mut A, &A)>().count();
}
