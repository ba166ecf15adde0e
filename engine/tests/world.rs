//! World behaviours best shown one at a time. The model-based property test of random
//! operation sequences lives in `tickstep::fuzzing::check_frame_ops` (run by
//! `tests/fuzz_twins.rs` and the `frame_ops` fuzz target).

use bytemuck::{Pod, Zeroable};
use tickstep_engine::{Frame, Schema, WorldError, checksum};

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
