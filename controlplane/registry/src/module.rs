//! `plugin.wasm` checked against the plugin ABI before anything compiles
//! it: the WebAssembly features a plugin may use, its one exported memory,
//! the ABI's exports and imports with their exact signatures, and no start
//! function.
//!
//! The structural checks run first, on the parsed sections, so the common
//! mistakes get a message naming the export or import at fault; the full
//! validator (with the plugin feature set) then refuses everything else
//! that is not a valid module.

use ms_plugin_abi::{export, import};
use std::fmt;
use wasmparser::types::{CoreTypeId, EntityType, Types};
use wasmparser::ValType::{I32, I64};
use wasmparser::{Encoding, MemoryType, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures};

/// Largest module accepted. The examples are a few KiB, a plugin with a
/// parsing library a few hundred; compile time grows with size.
pub const MODULE_BYTES_MAX: usize = 8 << 20;
/// Bytes in a WebAssembly page.
const PAGE_BYTES: u64 = 64 << 10;
/// Tables a plugin may have: the host's pooling allocator reserves one
/// per instance (`ms_plugin_host::engine`).
const TABLES_MAX: u32 = 1;

/// The WebAssembly features a plugin may use: WebAssembly 1.0 and the
/// proposals rustc's wasm32-unknown-unknown output uses by default
/// (mutable-global, sign-ext, saturating float-to-int, bulk-memory,
/// multi-value, reference-types for `call_indirect`'s table immediate).
///
/// Refused: threads and shared memory (a plugin instance runs on one core
/// and must not share state), memory64 and multi-memory (the ABI has one
/// 32-bit memory), GC and its reference types beyond `funcref`, exceptions,
/// tail calls, the component model, stack switching, and SIMD. SIMD is
/// refused in ABI v1 because rustc emits it only when asked
/// (`+simd128`), so no SDK-built plugin needs it, and it is the largest
/// and most bug-prone part of the compiler's lowering; allowing it later
/// refuses no module accepted today, while the reverse would.
pub fn features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::FLOATS
}

/// What validation learned about a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The module's size in bytes.
    pub len: usize,
    /// Its memory's initial size, in bytes.
    pub memory_min_bytes: u64,
    /// Its memory's declared maximum, in bytes, if any.
    pub memory_max_bytes: Option<u64>,
    /// The host functions it imports (names in `ms_plugin_abi::import`).
    pub imports: Vec<String>,
}

/// Why a module is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// Over [`MODULE_BYTES_MAX`].
    #[error(
        "the module is {len} bytes; a plugin module is at most {max}: build it with the release (or `plugin`) \
         profile and strip debug information"
    )]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a WebAssembly binary, or a damaged one.
    #[error(
        "the module cannot be read as WebAssembly: {message} (at byte {offset}); is plugin.wasm a wasm32 build output?"
    )]
    Malformed {
        /// The parser's reason.
        message: String,
        /// Where, in bytes from the start.
        offset: usize,
    },
    /// A component rather than a core module.
    #[error(
        "the module is a WebAssembly component; plugins are core modules: build for wasm32-unknown-unknown \
         without wasm-tools component new"
    )]
    Component,
    /// Valid WebAssembly that uses what plugins may not, or invalid.
    #[error(
        "the module is not valid for a plugin: {message} (at byte {offset}); plugins are WebAssembly 1.0 with \
         mutable-global, sign-ext, saturating float-to-int, bulk-memory, multi-value and reference-types \
         (no SIMD, threads, memory64, GC or exceptions): build with ms-plugin-sdk for wasm32-unknown-unknown \
         without extra target features"
    )]
    Invalid {
        /// The validator's reason.
        message: String,
        /// Where, in bytes from the start.
        offset: usize,
    },
    /// Not exactly one memory.
    #[error("the module has {count} memories; a plugin has exactly one, exported as \"{}\"", export::MEMORY)]
    MemoryCount {
        /// How many it has (defined and imported).
        count: u32,
    },
    /// A shared memory (threads).
    #[error("the module's memory is shared (threads); a plugin instance runs on one core: build without +atomics")]
    SharedMemory,
    /// A 64-bit memory.
    #[error("the module's memory is 64-bit (memory64); the plugin ABI uses a 32-bit memory: build for wasm32")]
    Memory64,
    /// The memory is not exported under the ABI's name.
    #[error(
        "the module does not export its memory as \"{}\"; the host reaches the shared buffer through it",
        export::MEMORY
    )]
    MemoryNotExported,
    /// An ABI function is not exported.
    #[error(
        "the module does not export {name} {signature}, which plugin ABI 1 requires: use ms_plugin_sdk::export_plugin!"
    )]
    MissingExport {
        /// The export's name.
        name: &'static str,
        /// Its signature.
        signature: AbiSignature,
    },
    /// An ABI name is exported as something else than the thing the ABI says.
    #[error("the module exports {name} as {found}; plugin ABI 1 needs {expected}")]
    WrongExportKind {
        /// The export's name.
        name: &'static str,
        /// What it is.
        found: &'static str,
        /// What it should be.
        expected: String,
    },
    /// An ABI export or import with another signature.
    #[error("{what} {name} has the signature {found}; plugin ABI 1 defines it as {expected}: rebuild against ms-plugin-abi 1")]
    WrongSignature {
        /// "export" or "import".
        what: &'static str,
        /// The function's name.
        name: String,
        /// The module's signature.
        found: String,
        /// The ABI's.
        expected: AbiSignature,
    },
    /// An import the host does not offer.
    #[error(
        "the module imports {kind} \"{module}\".\"{name}\", which the host does not offer; a plugin may import only \
         the functions \"{}\".{{{}}}: remove the import (WASI and JavaScript glue do not exist here)",
        import::MODULE,
        import::FUNCTIONS.join(", ")
    )]
    ImportNotAllowed {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
        /// What it imports ("function", "memory", ...).
        kind: &'static str,
    },
    /// A start function.
    #[error(
        "the module has a start function (function {index}); a plugin runs only through its ABI exports: \
         move that work into ms_init"
    )]
    StartFunction {
        /// The start function's index.
        index: u32,
    },
    /// More tables than the host reserves.
    #[error("the module has {count} tables; the host gives a plugin at most {TABLES_MAX}")]
    Tables {
        /// How many it has.
        count: u32,
    },
}

/// A function signature of the ABI: parameter and result types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiSignature {
    params: &'static [ValType],
    results: &'static [ValType],
}

impl fmt::Display for AbiSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&signature_text(self.params, self.results))
    }
}

const fn sig(params: &'static [ValType], results: &'static [ValType]) -> AbiSignature {
    AbiSignature { params, results }
}

/// The ABI's exports with their signatures (documented in
/// `ms_plugin_abi::export`); a test keeps it equal to `export::FUNCTIONS`.
pub(crate) const EXPORTS: &[(&str, AbiSignature)] = &[
    (export::ABI_VERSION, sig(&[], &[I32])),
    (export::BUFFER, sig(&[], &[I32])),
    (export::INIT, sig(&[I32], &[I32])),
    (export::START, sig(&[], &[I32])),
    (export::ON_BATCH, sig(&[I32], &[I32])),
    (export::ON_CONFIG, sig(&[I32], &[I32])),
    (export::DRAIN, sig(&[], &[I32])),
    (export::SNAPSHOT, sig(&[], &[I32])),
    (export::RESTORE, sig(&[I32], &[I32])),
    (export::STOP, sig(&[], &[I32])),
];

/// The host's imports with their signatures (documented in
/// `ms_plugin_abi::import`); a test keeps it equal to `import::FUNCTIONS`.
pub(crate) const IMPORTS: &[(&str, AbiSignature)] = &[
    (import::EMIT, sig(&[I64, I32, I32, I32], &[I32])),
    (import::LOG, sig(&[I32, I32, I32], &[])),
    (import::COUNTER_ADD, sig(&[I32, I64], &[])),
    (import::NOW, sig(&[], &[I64])),
];

/// Checks `wasm` against the plugin ABI; what it learned, or why not.
pub fn validate_module(wasm: &[u8]) -> Result<ModuleInfo, ModuleError> {
    if wasm.len() > MODULE_BYTES_MAX {
        return Err(ModuleError::TooLarge { len: wasm.len(), max: MODULE_BYTES_MAX });
    }
    let memory = structure(wasm)?;
    let types = Validator::new_with_features(features())
        .validate_all(wasm)
        .map_err(|e| ModuleError::Invalid { message: e.message().to_string(), offset: e.offset() })?;
    check_tables(&types)?;
    check_exports(&types)?;
    let imports = check_imports(&types)?;
    Ok(ModuleInfo {
        len: wasm.len(),
        memory_min_bytes: memory.initial.saturating_mul(PAGE_BYTES),
        memory_max_bytes: memory.maximum.map(|m| m.saturating_mul(PAGE_BYTES)),
        imports,
    })
}

/// The checks on the sections themselves: a core module, imports from the
/// host only, one 32-bit unshared memory, no start function. Returns the
/// memory's type.
fn structure(wasm: &[u8]) -> Result<MemoryType, ModuleError> {
    let mut memories = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::Version { encoding: Encoding::Component, .. } => return Err(ModuleError::Component),
            Payload::ImportSection(reader) => {
                for i in reader.into_imports() {
                    let i = i.map_err(malformed)?;
                    allowed_import(i.module, i.name, &i.ty)?;
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    memories.push(m.map_err(malformed)?);
                }
            }
            Payload::StartSection { func, .. } => return Err(ModuleError::StartFunction { index: func }),
            _ => {}
        }
    }
    one_memory(&memories)
}

fn malformed(e: wasmparser::BinaryReaderError) -> ModuleError {
    ModuleError::Malformed { message: e.message().to_string(), offset: e.offset() }
}

/// Refuses an import the host does not offer, naming it. Its signature is
/// checked after validation, when the types are known.
fn allowed_import(module: &str, name: &str, ty: &TypeRef) -> Result<(), ModuleError> {
    let kind = match ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => "function",
        TypeRef::Table(_) => "table",
        TypeRef::Memory(_) => "memory",
        TypeRef::Global(_) => "global",
        TypeRef::Tag(_) => "tag",
    };
    let offered = module == import::MODULE && import::FUNCTIONS.contains(&name) && kind == "function";
    if offered {
        return Ok(());
    }
    Err(ModuleError::ImportNotAllowed { module: module.to_string(), name: name.to_string(), kind })
}

fn one_memory(memories: &[MemoryType]) -> Result<MemoryType, ModuleError> {
    // Imported memories were refused as imports, so these are all of them.
    let [memory] = memories else {
        return Err(ModuleError::MemoryCount { count: u32::try_from(memories.len()).unwrap_or(u32::MAX) });
    };
    if memory.shared {
        return Err(ModuleError::SharedMemory);
    }
    if memory.memory64 {
        return Err(ModuleError::Memory64);
    }
    Ok(*memory)
}

fn check_tables(types: &Types) -> Result<(), ModuleError> {
    let count = types.as_ref().table_count();
    if count > TABLES_MAX {
        return Err(ModuleError::Tables { count });
    }
    Ok(())
}

/// The memory export and every ABI function export, each with its
/// signature. Other exports (`__data_end`, helpers) are left alone: the
/// host calls only the ABI's.
fn check_exports(types: &Types) -> Result<(), ModuleError> {
    let t = types.as_ref();
    let exports: Vec<(&str, EntityType)> = t.core_exports().map(Iterator::collect).unwrap_or_default();
    let find = |name: &str| exports.iter().find(|(n, _)| *n == name).map(|(_, e)| *e);
    match find(export::MEMORY) {
        Some(EntityType::Memory(_)) => {}
        Some(other) => {
            let expected = "the module's memory".to_string();
            return Err(ModuleError::WrongExportKind { name: export::MEMORY, found: kind(&other), expected });
        }
        None => return Err(ModuleError::MemoryNotExported),
    }
    for &(name, signature) in EXPORTS {
        match find(name) {
            Some(EntityType::Func(id) | EntityType::FuncExact(id)) => {
                check_signature("export", name, func_type(types, id), signature)?
            }
            Some(other) => {
                let expected = format!("a function {signature}");
                return Err(ModuleError::WrongExportKind { name, found: kind(&other), expected });
            }
            None => return Err(ModuleError::MissingExport { name, signature }),
        }
    }
    Ok(())
}

/// Every import's signature (their names were checked in `structure`);
/// the ABI names the module imports, sorted.
fn check_imports(types: &Types) -> Result<Vec<String>, ModuleError> {
    let t = types.as_ref();
    let mut used = Vec::new();
    for (module, name, entity) in t.core_imports().into_iter().flatten() {
        let expected = IMPORTS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
        let (EntityType::Func(id) | EntityType::FuncExact(id), Some(expected)) = (entity, expected) else {
            // Unreachable after `structure`, kept so this check stands alone.
            let kind = kind(&entity);
            return Err(ModuleError::ImportNotAllowed { module: module.into(), name: name.into(), kind });
        };
        check_signature("import", &format!("{module}.{name}"), func_type(types, id), expected)?;
        used.push(name.to_string());
    }
    used.sort();
    used.dedup();
    Ok(used)
}

/// A function type's parameters and results; `None` when the id is not a
/// function type (which validation rules out for functions).
fn func_type(types: &Types, id: CoreTypeId) -> Option<(Vec<ValType>, Vec<ValType>)> {
    let sub = types.as_ref().get(id)?;
    match &sub.composite_type.inner {
        wasmparser::CompositeInnerType::Func(f) => Some((f.params().to_vec(), f.results().to_vec())),
        _ => None,
    }
}

fn check_signature(
    what: &'static str,
    name: &str,
    found: Option<(Vec<ValType>, Vec<ValType>)>,
    expected: AbiSignature,
) -> Result<(), ModuleError> {
    match found {
        Some((p, r)) if p == expected.params && r == expected.results => Ok(()),
        found => Err(ModuleError::WrongSignature {
            what,
            name: name.to_string(),
            found: found.map_or_else(|| "(not a function type)".into(), |(p, r)| signature_text(&p, &r)),
            expected,
        }),
    }
}

/// `(i32, i64) -> i32`, `() -> ()`.
fn signature_text(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match results {
        [one] => format!("({}) -> {one}", list(params)),
        _ => format!("({}) -> ({})", list(params), list(results)),
    }
}

fn kind(e: &EntityType) -> &'static str {
    match e {
        EntityType::Func(_) | EntityType::FuncExact(_) => "a function",
        EntityType::Table(_) => "a table",
        EntityType::Memory(_) => "a memory",
        EntityType::Global(_) => "a global",
        EntityType::Tag(_) => "a tag",
    }
}
