//! `Schema`: which component types a frame stores, in which order, and its stable hash.

use bytemuck::Pod;
use std::any::TypeId;
use std::sync::Arc;

use crate::{Field, SchemaHash};

/// Most component types one schema may register (a frame keeps a 64-bit mask per entity).
pub const MAX_COMPONENTS: usize = 64;
/// Largest component alignment supported (columns are 16-byte aligned).
pub const MAX_ALIGN: usize = 16;

/// Layout of one registered component type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The name given at registration; part of the schema hash.
    pub name: &'static str,
    /// `size_of` the type in bytes (never 0).
    pub size: usize,
    /// `align_of` the type.
    pub align: usize,
    /// Named fields, for diffs; empty when none were registered.
    pub fields: &'static [Field],
    type_id: TypeId,
}

/// The registered component types of a game, in a fixed order, plus its globals type.
///
/// Every frame, snapshot and replay carries the schema's [`SchemaHash`], so builds that
/// disagree about the data layout refuse each other instead of desyncing.
#[derive(Debug)]
pub struct Schema {
    game: &'static str,
    version: u32,
    globals_size: usize,
    globals_fields: &'static [Field],
    globals_type: TypeId,
    components: Vec<ComponentInfo>,
    hash: SchemaHash,
}

/// Why a schema could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// More than [`MAX_COMPONENTS`] component types.
    #[error("a schema holds at most {MAX_COMPONENTS} component types; merge some components")]
    TooManyComponents,
    /// The same type or the same name was registered twice.
    #[error("component {0:?} is registered twice; register each type once under a unique name")]
    DuplicateComponent(&'static str),
    /// A zero-sized type: columns store bytes, so give marker components one byte.
    #[error("component {0:?} has size 0; give marker components a field, e.g. `struct Dead(u8)`")]
    ZeroSizedComponent(&'static str),
    /// A field description reaches past the end of its struct.
    #[error("field {field:?} of {owner:?} ends at byte {end}, beyond the struct's {size} bytes")]
    FieldOutOfBounds {
        /// The component's name, or "globals".
        owner: &'static str,
        /// The field's name.
        field: &'static str,
        /// Where the field ends.
        end: usize,
        /// The struct's size.
        size: usize,
    },
    /// Alignment above [`MAX_ALIGN`].
    #[error("component {name:?} needs alignment {align}; at most {MAX_ALIGN} is supported")]
    AlignmentTooLarge {
        /// The component's name.
        name: &'static str,
        /// Its alignment.
        align: usize,
    },
}

/// Builds a [`Schema`]; see [`Schema::builder`].
#[derive(Debug)]
pub struct SchemaBuilder {
    schema: Schema,
    error: Option<SchemaError>,
}

impl Schema {
    /// Starts a schema for the game `game` at data `version`, whose frames hold globals of
    /// type `G`. Bump `version` whenever the meaning of a component changes without its
    /// layout changing, so old snapshots and replays are refused.
    pub fn builder<G: Pod>(game: &'static str, version: u32) -> SchemaBuilder {
        SchemaBuilder {
            schema: Schema {
                game,
                version,
                globals_size: size_of::<G>(),
                globals_fields: &[],
                globals_type: TypeId::of::<G>(),
                components: Vec::new(),
                hash: SchemaHash::default(),
            },
            error: None,
        }
    }

    /// The game name given to [`Schema::builder`].
    pub fn game(&self) -> &'static str {
        self.game
    }

    /// The data version given to [`Schema::builder`].
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The registered components in registration order (column order).
    pub fn components(&self) -> &[ComponentInfo] {
        &self.components
    }

    /// `size_of` the globals type.
    pub fn globals_size(&self) -> usize {
        self.globals_size
    }

    /// Named fields of the globals, for diffs.
    pub fn globals_fields(&self) -> &'static [Field] {
        self.globals_fields
    }

    /// The stable hash of what decides a frame's bytes: the game's name and version, the
    /// globals' size and fields, and each component's name, size and fields, in order.
    /// Nothing that varies by target (alignment, pointer width) goes in, so a snapshot,
    /// replay or session of an x86_64 host is valid on i686 and wasm32: `Pod` types
    /// have no padding, so equal sizes and fields mean equal bytes.
    pub fn hash(&self) -> SchemaHash {
        self.hash
    }

    /// The column index of component type `T`, if registered.
    pub fn component_index<T: 'static>(&self) -> Option<usize> {
        let id = TypeId::of::<T>();
        self.components.iter().position(|info| info.type_id == id)
    }

    /// True when `G` is this schema's globals type.
    pub fn has_globals<G: 'static>(&self) -> bool {
        self.globals_type == TypeId::of::<G>()
    }

    fn compute_hash(&self) -> SchemaHash {
        let mut hasher = blake3::Hasher::new();
        let mut put = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        put(b"tickstep-schema-2");
        put(self.game.as_bytes());
        put(&self.version.to_le_bytes());
        put(&(self.globals_size as u64).to_le_bytes());
        put_fields(&mut put, self.globals_fields);
        for info in &self.components {
            put(info.name.as_bytes());
            put(&(info.size as u64).to_le_bytes());
            put_fields(&mut put, info.fields);
        }
        hasher.finalize().into()
    }
}

/// Feeds a field layout to the schema hash: count, then each name, offset and kind.
fn put_fields(put: &mut impl FnMut(&[u8]), fields: &[Field]) {
    put(&(fields.len() as u64).to_le_bytes());
    for field in fields {
        put(field.name.as_bytes());
        put(&(field.offset as u64).to_le_bytes());
        put(&[field.kind.code()]);
    }
}

fn check_fields(owner: &'static str, fields: &[Field], size: usize) -> Result<(), SchemaError> {
    match fields.iter().find(|f| f.range().end > size) {
        Some(field) => Err(SchemaError::FieldOutOfBounds {
            owner,
            field: field.name,
            end: field.range().end,
            size,
        }),
        None => Ok(()),
    }
}

impl SchemaBuilder {
    /// Registers component type `T` under `name` (its column comes after those before it).
    pub fn component<T: Pod>(self, name: &'static str) -> SchemaBuilder {
        self.component_with_fields::<T>(name, &[])
    }

    /// Registers component type `T` under `name` with a description of its fields, so
    /// desync diffs name fields and show values. Fields are not part of the schema hash:
    /// they describe the bytes, they do not change them.
    pub fn component_with_fields<T: Pod>(
        mut self,
        name: &'static str,
        fields: &'static [Field],
    ) -> SchemaBuilder {
        if self.error.is_none() {
            self.error = self
                .check::<T>(name)
                .and_then(|()| check_fields(name, fields, size_of::<T>()))
                .err();
        }
        if self.error.is_none() {
            self.schema.components.push(ComponentInfo {
                name,
                size: size_of::<T>(),
                align: align_of::<T>(),
                fields,
                type_id: TypeId::of::<T>(),
            });
        }
        self
    }

    /// Describes the globals' fields, for diffs.
    pub fn globals_fields(mut self, fields: &'static [Field]) -> SchemaBuilder {
        if self.error.is_none() {
            self.error = check_fields("globals", fields, self.schema.globals_size).err();
        }
        self.schema.globals_fields = fields;
        self
    }

    fn check<T: Pod>(&self, name: &'static str) -> Result<(), SchemaError> {
        let components = &self.schema.components;
        if components.len() == MAX_COMPONENTS {
            return Err(SchemaError::TooManyComponents);
        }
        let id = TypeId::of::<T>();
        if components.iter().any(|c| c.type_id == id || c.name == name) {
            return Err(SchemaError::DuplicateComponent(name));
        }
        if size_of::<T>() == 0 {
            return Err(SchemaError::ZeroSizedComponent(name));
        }
        if align_of::<T>() > MAX_ALIGN {
            let align = align_of::<T>();
            return Err(SchemaError::AlignmentTooLarge { name, align });
        }
        Ok(())
    }

    /// The finished schema, shared by every frame of the game.
    pub fn build(self) -> Result<Arc<Schema>, SchemaError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut schema = self.schema;
        schema.hash = schema.compute_hash();
        Ok(Arc::new(schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct A(u32);
    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct B(u64);
    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct Empty;

    /// Same size as `B` but aligned to 1: on i686 a `u64` aligns to 4, on x86_64 to 8,
    /// and the bytes of a frame are the same either way.
    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct Bytes8([u8; 8]);

    #[test]
    fn hash_ignores_alignment_and_covers_field_layouts() {
        let with = |fields: &'static [Field]| {
            Schema::builder::<u64>("g", 1)
                .component_with_fields::<B>("b", fields)
                .build()
                .unwrap()
                .hash()
        };
        let unaligned = Schema::builder::<u64>("g", 1)
            .component::<Bytes8>("b")
            .build()
            .unwrap()
            .hash();
        assert_eq!(
            with(&[]),
            unaligned,
            "alignment is not part of the identity"
        );
        use crate::FieldKind;
        const AS_U64: &[Field] = &[Field::new("v", 0, FieldKind::U64)];
        const AS_FP: &[Field] = &[Field::new("v", 0, FieldKind::Fp)];
        assert_ne!(with(AS_U64), with(&[]));
        assert_ne!(with(AS_U64), with(AS_FP));
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_order_names_and_version() {
        let ab = || {
            Schema::builder::<u64>("g", 1)
                .component::<A>("a")
                .component::<B>("b")
        };
        let h = ab().build().unwrap().hash();
        assert_eq!(h, ab().build().unwrap().hash());
        let ba = Schema::builder::<u64>("g", 1)
            .component::<B>("b")
            .component::<A>("a");
        assert_ne!(h, ba.build().unwrap().hash());
        let renamed = Schema::builder::<u64>("g", 1)
            .component::<A>("a")
            .component::<B>("c");
        assert_ne!(h, renamed.build().unwrap().hash());
        let v2 = Schema::builder::<u64>("g", 2)
            .component::<A>("a")
            .component::<B>("b");
        assert_ne!(h, v2.build().unwrap().hash());
        let globals = Schema::builder::<u32>("g", 1)
            .component::<A>("a")
            .component::<B>("b");
        assert_ne!(h, globals.build().unwrap().hash());
    }

    #[test]
    fn bad_registrations_are_errors() {
        let dup = Schema::builder::<u64>("g", 1)
            .component::<A>("a")
            .component::<A>("b");
        assert_eq!(
            dup.build().unwrap_err(),
            SchemaError::DuplicateComponent("b")
        );
        let same_name = Schema::builder::<u64>("g", 1)
            .component::<A>("a")
            .component::<B>("a");
        assert_eq!(
            same_name.build().unwrap_err(),
            SchemaError::DuplicateComponent("a")
        );
        let empty = Schema::builder::<u64>("g", 1).component::<Empty>("e");
        assert_eq!(
            empty.build().unwrap_err(),
            SchemaError::ZeroSizedComponent("e")
        );
    }

    #[test]
    fn fields_must_fit_inside_their_struct() {
        use crate::FieldKind;
        static GOOD: [Field; 1] = [Field::new("x", 0, FieldKind::U32)];
        static BAD: [Field; 1] = [Field::new("y", 4, FieldKind::U32)];
        let ok = Schema::builder::<u64>("g", 1).component_with_fields::<A>("a", &GOOD);
        assert_eq!(ok.build().unwrap().components()[0].fields, &GOOD);
        let bad = Schema::builder::<u64>("g", 1).component_with_fields::<A>("a", &BAD);
        assert!(matches!(
            bad.build(),
            Err(SchemaError::FieldOutOfBounds { end: 8, .. })
        ));
        let globals = Schema::builder::<u32>("g", 1).globals_fields(&BAD);
        assert!(globals.build().is_err());
    }

    #[test]
    fn lookup_by_type() {
        let s = Schema::builder::<u64>("g", 1)
            .component::<A>("a")
            .component::<B>("b");
        let s = s.build().unwrap();
        assert_eq!(s.component_index::<B>(), Some(1));
        assert_eq!(s.component_index::<u8>(), None);
        assert!(s.has_globals::<u64>() && !s.has_globals::<u32>());
    }
}
