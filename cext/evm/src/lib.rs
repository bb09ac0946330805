//! `alys_fast._cext.evm`: revm adapted to alys-fast's engine, and the state trie.
//!
//! Thin glue: revm runs the EVM; [`exec`] feeds it a block's transactions over the engine's
//! state ([`state`]) and computes the new state root ([`trie`]); a run can be watched by a
//! tracer through revm's inspector hook ([`trace`]). The Python face
//! (`alys_fast/engine/revm.py`) owns everything else: storage (RocksDB is owned by the node's
//! storage actor; this crate never opens it), the miss protocol's loads, history, JSON-RPC.
//! Execution runs with the GIL released: no Python runs per opcode or per storage read.

pub mod exec;
pub mod state;
pub mod trace;
pub mod trie;

#[cfg(feature = "python")]
mod python;
