//! `diff`: the entities, components and fields that differ between two snapshots of
//! the same game: the evidence for diagnosing a desync.

use serde::Serialize;
use std::ops::Range;
use tickstep_engine::{Entity, Field, ImageHeader, ImageLayout, Schema, Section, Tick};

use crate::{SnapshotError, verify};

/// One difference between snapshot A and snapshot B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The entity it concerns (as `index v generation`), if any.
    pub entity: Option<String>,
    /// The component (or `globals`, or `frame` for the entity table), if any.
    pub component: Option<String>,
    /// The field name, or a byte range (`bytes 8..16`) where no field layout covers it.
    pub field: String,
    /// The value in A.
    pub a: String,
    /// The value in B.
    pub b: String,
}

/// Every difference between two snapshots, up to a limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameDiff {
    /// A's tick.
    pub tick_a: Tick,
    /// B's tick.
    pub tick_b: Tick,
    /// The differences found, in slot order, at most the limit given.
    pub differences: Vec<Difference>,
    /// How many differences there were in all.
    pub total: usize,
}

impl FrameDiff {
    /// True when the two frames are identical.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// A frame image cut into its sections.
struct Sections<'a> {
    header: ImageHeader,
    windows: Vec<Range<u32>>,
    globals: &'a [u8],
    generations: &'a [u8],
    masks: &'a [u8],
    free: &'a [u8],
    columns: Vec<&'a [u8]>,
}

fn sections<'a>(payload: &'a [u8], schema: &Schema, layout: &ImageLayout) -> Sections<'a> {
    let mut out = Sections {
        header: layout.header,
        windows: (0..schema.components().len())
            .map(|i| layout.window(i))
            .collect(),
        globals: &[],
        generations: &[],
        masks: &[],
        free: &[],
        columns: Vec::new(),
    };
    let mut rest = payload;
    for (section, len) in layout.sections(schema) {
        // verify() checked that the lengths add up to the payload.
        let (bytes, tail) = rest.split_at(len as usize);
        rest = tail;
        match section {
            Section::Header | Section::Windows => {}
            Section::Globals => out.globals = bytes,
            Section::Generations => out.generations = bytes,
            Section::Masks => out.masks = bytes,
            Section::FreeList => out.free = bytes,
            Section::Column(_) => out.columns.push(bytes),
        }
    }
    out
}

impl Sections<'_> {
    /// The bytes of component `index`'s value at `slot`. `verify` checked that every
    /// component lies inside its column's window; a miss reads as empty, never panics.
    fn value(&self, index: usize, slot: usize, size: usize) -> &[u8] {
        slot.checked_sub(self.windows[index].start as usize)
            .and_then(|within| self.columns[index].get(within * size..(within + 1) * size))
            .unwrap_or(&[])
    }
}

fn word<const N: usize>(bytes: &[u8], index: usize) -> Option<u64> {
    let chunk = bytes.get(index * N..index * N + N)?;
    let mut raw = [0u8; 8];
    raw[..N].copy_from_slice(chunk);
    Some(u64::from_le_bytes(raw))
}

struct Collector {
    limit: usize,
    found: Vec<Difference>,
    total: usize,
}

impl Collector {
    fn push(
        &mut self,
        entity: Option<Entity>,
        component: Option<&str>,
        field: String,
        a: String,
        b: String,
    ) {
        self.total += 1;
        if self.found.len() < self.limit {
            self.found.push(Difference {
                entity: entity.map(|e| e.to_string()),
                component: component.map(str::to_string),
                field,
                a,
                b,
            });
        }
    }

    /// Compares two values of one struct: field by field where `fields` describe them,
    /// and as runs of differing bytes elsewhere.
    fn values(
        &mut self,
        entity: Option<Entity>,
        owner: &str,
        fields: &[Field],
        a: &[u8],
        b: &[u8],
    ) {
        let mut covered = vec![false; a.len()];
        for field in fields {
            let range = field.range();
            covered[range.clone()].iter_mut().for_each(|c| *c = true);
            if a[range.clone()] != b[range.clone()] {
                let (va, vb) = (
                    field.kind.render(&a[range.clone()]),
                    field.kind.render(&b[range]),
                );
                self.push(entity, Some(owner), field.name.to_string(), va, vb);
            }
        }
        let mut at = 0;
        while at < a.len() {
            if covered[at] || a[at] == b[at] {
                at += 1;
                continue;
            }
            let start = at;
            while at < a.len() && !covered[at] && a[at] != b[at] {
                at += 1;
            }
            let hex = |bytes: &[u8]| tickstep_engine::Hex(bytes).to_string();
            let field = format!("bytes {start}..{at}");
            self.push(
                entity,
                Some(owner),
                field,
                hex(&a[start..at]),
                hex(&b[start..at]),
            );
        }
    }
}

/// Compares two snapshots of a game with `schema`, reporting at most `limit`
/// differences (and counting all of them). Both snapshots are verified first.
pub fn diff(a: &[u8], b: &[u8], schema: &Schema, limit: usize) -> Result<FrameDiff, SnapshotError> {
    let (va, vb) = (verify(a, schema)?, verify(b, schema)?);
    let (sa, sb) = (
        sections(va.payload, schema, &va.image),
        sections(vb.payload, schema, &vb.image),
    );
    let mut out = Collector {
        limit,
        found: Vec::new(),
        total: 0,
    };
    let frame = Some("frame");
    for (name, x, y) in [
        ("tick", sa.header.tick, sb.header.tick),
        (
            "capacity",
            sa.header.capacity.into(),
            sb.header.capacity.into(),
        ),
        ("slots", sa.header.slots.into(), sb.header.slots.into()),
    ] {
        if x != y {
            out.push(None, frame, name.to_string(), x.to_string(), y.to_string());
        }
    }
    if sa.free != sb.free {
        let list = |bytes: &[u8]| format!("{} free slots", bytes.len() / 4);
        out.push(
            None,
            frame,
            "free list".to_string(),
            list(sa.free),
            list(sb.free),
        );
    }
    out.values(
        None,
        "globals",
        schema.globals_fields(),
        sa.globals,
        sb.globals,
    );
    let slots = sa.header.slots.max(sb.header.slots) as usize;
    for slot in 0..slots {
        let (ga, gb) = (
            word::<4>(sa.generations, slot),
            word::<4>(sb.generations, slot),
        );
        let alive = |g: Option<u64>| g.filter(|g| g & 1 == 1);
        let entity = |g: u64| Entity::from_parts(slot as u32, g as u32);
        match (alive(ga), alive(gb)) {
            (None, None) => continue,
            (Some(g), None) | (None, Some(g)) if ga != gb => {
                let (a_state, b_state) = if alive(ga).is_some() {
                    ("alive", "absent")
                } else {
                    ("absent", "alive")
                };
                out.push(
                    Some(entity(g)),
                    None,
                    "exists".into(),
                    a_state.into(),
                    b_state.into(),
                );
                continue;
            }
            (Some(x), Some(y)) if x != y => {
                out.push(
                    Some(entity(x)),
                    None,
                    "generation".into(),
                    x.to_string(),
                    y.to_string(),
                );
                continue;
            }
            _ => {}
        }
        let Some(g) = alive(ga) else { continue };
        let who = Some(entity(g));
        let (ma, mb) = (
            word::<8>(sa.masks, slot).unwrap_or(0),
            word::<8>(sb.masks, slot).unwrap_or(0),
        );
        for (index, info) in schema.components().iter().enumerate() {
            let bit = 1u64 << index;
            match (ma & bit != 0, mb & bit != 0) {
                (false, false) => {}
                (true, true) => {
                    let ca = sa.value(index, slot, info.size);
                    let cb = sb.value(index, slot, info.size);
                    if ca != cb {
                        out.values(who, info.name, info.fields, ca, cb);
                    }
                }
                (has_a, _) => {
                    let show = |has: bool| if has { "present" } else { "absent" }.to_string();
                    out.push(
                        who,
                        Some(info.name),
                        "present".into(),
                        show(has_a),
                        show(!has_a),
                    );
                }
            }
        }
    }
    Ok(FrameDiff {
        tick_a: sa.header.tick,
        tick_b: sb.header.tick,
        differences: out.found,
        total: out.total,
    })
}
