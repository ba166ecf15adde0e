//! World behaviours best shown one at a time. The model-based property test of random
//! operation sequences lives in `tickstep::fuzzing::check_frame_ops` (run by
//! `tests/fuzz_twins.rs` and the `frame_ops` fuzz target).
// Test helpers may unwrap: a failure here is a failed test, not a caller's input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytemuck::{Pod, Zeroable};
use tickstep_engine::{Entity, Frame, Schema, With, Without, World, WorldError, checksum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct A(u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct B(u64, u16, u16, u32);

fn new_frame(capacity: u32) -> Frame<u64> {
    let schema = Schema::builder::<u64>("ops", 1)
        .component::<A>("a")
        .component::<B>("b")
        .build()
        .unwrap();
    Frame::new(schema, capacity, 0).unwrap()
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
    for (_, (a, b)) in world.query_mut::<(&mut A, &B)>().unwrap() {
        a.0 += 10 + b.3;
    }
    assert_eq!(world.get::<A>(both), Ok(&A(11)));
    assert_eq!(world.get::<A>(only_a), Ok(&A(1)));
}

#[test]
fn query_naming_a_component_twice_is_an_error() {
    let mut frame = new_frame(8);
    let world = frame.world_mut();
    assert!(matches!(
        world.query_mut::<(&mut A, &A)>(),
        Err(WorldError::QueryAliases)
    ));
    assert!(matches!(
        world.query_mut::<(Option<&mut A>, &B, &A)>(),
        Err(WorldError::QueryAliases)
    ));
    // Reading one type twice is fine.
    assert!(world.query::<(&A, &A)>().is_ok());
}

#[test]
fn queries_of_unregistered_types_are_errors() {
    let mut frame = new_frame(8);
    frame.world_mut().spawn_with((A(1),)).unwrap();
    let world = frame.world_mut();
    let unregistered = |e| matches!(e, Err(WorldError::UnregisteredComponent("u16")));
    assert!(unregistered(world.query::<&u16>().map(|_| ())));
    assert!(unregistered(
        world.query::<(&A, Option<&u16>)>().map(|_| ())
    ));
    assert!(unregistered(
        world.query_filtered::<&A, With<u16>>().map(|_| ())
    ));
    assert!(unregistered(
        world
            .query_filtered_mut::<&mut A, Without<u16>>()
            .map(|_| ())
    ));
}

/// One entity of each kind: neither, only A, only B, both; returns them in slot order.
fn one_of_each(world: &mut World) -> [Entity; 4] {
    [
        world.spawn().unwrap(),
        world.spawn_with((A(1),)).unwrap(),
        world.spawn_with((B(2, 0, 0, 0),)).unwrap(),
        world.spawn_with((A(3), B(4, 0, 0, 0))).unwrap(),
    ]
}

#[test]
fn filters_and_optional_components_select_exactly_the_matching_entities() {
    let mut frame = new_frame(8);
    let world = frame.world_mut();
    let [none, a, b, ab] = one_of_each(world);
    let gone = world.spawn_with((A(9), B(9, 0, 0, 0))).unwrap();
    world.despawn(gone).unwrap();
    let entities = |iter: &mut dyn Iterator<Item = Entity>| iter.collect::<Vec<_>>();

    let with_b = entities(
        &mut world
            .query_filtered::<&A, With<B>>()
            .unwrap()
            .map(|(e, _)| e),
    );
    assert_eq!(with_b, [ab]);
    let without_b = entities(
        &mut world
            .query_filtered::<&A, Without<B>>()
            .unwrap()
            .map(|(e, _)| e),
    );
    assert_eq!(without_b, [a]);
    let neither = world
        .query_filtered::<Option<&A>, (Without<A>, Without<B>)>()
        .unwrap()
        .map(|(e, _)| e)
        .collect::<Vec<_>>();
    assert_eq!(
        neither,
        [none],
        "live entities only, never the despawned slot"
    );

    let optional: Vec<_> = world
        .query::<(Option<&A>, Option<&B>)>()
        .unwrap()
        .map(|(e, (a, b))| (e, a.map(|a| a.0), b.map(|b| b.0)))
        .collect();
    assert_eq!(
        optional,
        [
            (none, None, None),
            (a, Some(1), None),
            (b, None, Some(2)),
            (ab, Some(3), Some(4))
        ]
    );

    for (_, (a, b)) in world.query_mut::<(&mut A, Option<&mut B>)>().unwrap() {
        if let Some(b) = b {
            b.0 += u64::from(a.0);
        }
        a.0 *= 10;
    }
    assert_eq!(world.get::<A>(a), Ok(&A(10)));
    assert_eq!(world.get::<B>(b), Ok(&B(2, 0, 0, 0)));
    assert_eq!(world.get::<B>(ab), Ok(&B(7, 0, 0, 0)));
}

#[test]
fn an_excluding_filter_does_not_skip_its_test_when_every_slot_is_full() {
    let mut frame = new_frame(4);
    let world = frame.world_mut();
    world.spawn_with((A(1), B(0, 0, 0, 0))).unwrap();
    world.spawn_with((A(2),)).unwrap();
    let count = world.query_filtered::<&A, Without<B>>().unwrap().count();
    assert_eq!(count, 1);
    let count = world.query_filtered::<&A, With<A>>().unwrap().count();
    assert_eq!(count, 2);
}

#[test]
fn get_many_mut_borrows_distinct_entities_and_refuses_aliases() {
    let mut frame = new_frame(8);
    let world = frame.world_mut();
    let [none, a, _, ab] = one_of_each(world);
    let [x, y] = world.get_many_mut::<A, 2>([ab, a]).unwrap();
    std::mem::swap(x, y);
    assert_eq!(
        (world.get::<A>(a), world.get::<A>(ab)),
        (Ok(&A(3)), Ok(&A(1)))
    );
    assert_eq!(
        world.get_many_mut::<A, 2>([a, a]).map(|_| ()),
        Err(WorldError::SameEntityTwice(a))
    );
    assert!(matches!(
        world.get_many_mut::<A, 2>([a, none]),
        Err(WorldError::MissingComponent { .. })
    ));
    world.despawn(a).unwrap();
    assert_eq!(
        world.get_many_mut::<A, 1>([a]).map(|_| ()),
        Err(WorldError::NoSuchEntity(a))
    );
}
