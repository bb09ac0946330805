//! Tracing: watching transactions through revm's inspector hook.
//!
//! A tracer implements [`Tracer`] and is handed to [`crate::exec::execute`]. Before each
//! transaction the run asks [`Tracer::inspector`] for a fresh revm [`Inspector`] (the hook
//! geth's tracers map onto: opcode steps, calls and creations, logs); `None` runs that
//! transaction unwatched at full speed, as a `debug_traceTransaction` would replay the ones
//! before its target. Once a watched transaction has run to its end on complete data, the
//! run gives the inspector back with revm's result (and the state it changed, not yet
//! committed) through [`Tracer::finish`]. A transaction that met a miss is redone after the
//! load with a new inspector, so a tracer never sees a run on incomplete data; a finish may
//! itself read more of the state the transaction ran on (geth's prestate tracer shows the code
//! of an account the transaction only asked the balance of), and if that misses the finish
//! does not count and the transaction is redone too. revm-inspectors' `TracingInspector`
//! plugs in exactly as its `AccessListInspector` does in [`AccessLists`] ([`GethTraces`]:
//! geth's struct logs, call and prestate tracers); to offer a tracer to Python, add a variant
//! to `python::Tracing`, accept its name in `Engine.begin` and return what it found from a
//! `Run` method (as `Run.access_lists` and `Run.geth_traces` do).

use crate::exec::RunContext;
use crate::state::{NoError, OverlayDb};
use alloy_rpc_types_trace::geth::{
    CallConfig, DefaultFrame, GethDebugBuiltInTracerType, GethDebugTracerType,
    GethDebugTracingOptions, GethDefaultTracingOptions, PreStateConfig,
};
use revm::bytecode::Bytecode;
use revm::context::result::ResultAndState;
use revm::context::TxEnv;
use revm::context_interface::transaction::AccessList;
use revm::database_interface::{Database, DatabaseRef};
use revm::inspector::NoOpInspector;
use revm::primitives::{Address, StorageKey, StorageValue, B256};
use revm::state::AccountInfo;
use revm::Inspector;
use revm_inspectors::access_list::AccessListInspector;
use revm_inspectors::tracing::{TracingInspector, TracingInspectorConfig};
use serde_json::Value;
use std::cell::RefCell;

/// Watches a run's transactions; see the module docstring.
pub trait Tracer {
    /// What watches one transaction (`Default` only fills the EVM's slot between them).
    type Inspector: for<'a> Inspector<RunContext<'a>> + Default;

    /// A fresh inspector for the transaction at `position`, or `None` to run it unwatched.
    fn inspector(&mut self, position: usize, tx: &TxEnv) -> Option<Self::Inspector>;

    /// The transaction `tx` at `position` ran to its end on complete data, watched by
    /// `inspector`: `done` is revm's result and the state it changed, `before` the state it ran
    /// on. Reading `before` may miss (recorded in `before.misses`): then this finish does not
    /// count, and the tracer must keep nothing of it (see the module docstring).
    fn finish(
        &mut self,
        position: usize,
        inspector: Self::Inspector,
        tx: &TxEnv,
        done: &ResultAndState,
        before: &mut OverlayDb<'_>,
    );
}

/// No tracing: blocks and plain calls.
pub struct NoTracer;

impl Tracer for NoTracer {
    type Inspector = NoOpInspector;

    fn inspector(&mut self, _: usize, _: &TxEnv) -> Option<NoOpInspector> {
        None
    }

    fn finish(
        &mut self,
        _: usize,
        _: NoOpInspector,
        _: &TxEnv,
        _: &ResultAndState,
        _: &mut OverlayDb<'_>,
    ) {
    }
}

/// `eth_createAccessList`'s tracer: the addresses and slots each transaction touched, with
/// geth's rules (the sender, the recipient or created address and the precompiles are left
/// out unless their slots were read or written), its own access list included.
#[derive(Debug, Default)]
pub struct AccessLists {
    /// (position, access list sorted by address and slot) of each finished transaction.
    pub found: Vec<(usize, AccessList)>,
}

impl Tracer for AccessLists {
    type Inspector = AccessListInspector;

    fn inspector(&mut self, _: usize, tx: &TxEnv) -> Option<AccessListInspector> {
        Some(AccessListInspector::new(tx.access_list.clone()))
    }

    fn finish(
        &mut self,
        position: usize,
        inspector: AccessListInspector,
        _: &TxEnv,
        _: &ResultAndState,
        _: &mut OverlayDb<'_>,
    ) {
        self.found.push((position, inspector.into_access_list()));
    }
}

/// geth's tracers of `debug_trace*`, as reth and anvil build them (revm-inspectors'
/// `TracingInspector` and `GethTraceBuilder`): the struct logger (no `tracer`), `callTracer`
/// and `prestateTracer`, with geth's options.
#[derive(Debug)]
pub struct GethTraces {
    tracer: GethTracer,
    first: usize,
    /// (position, the trace as geth's JSON) of each finished transaction from `first` on.
    pub found: Vec<(usize, String)>,
}

#[derive(Debug)]
enum GethTracer {
    StructLogs(GethDefaultTracingOptions),
    Calls(CallConfig),
    Prestate(PreStateConfig),
}

impl GethTraces {
    /// The tracer geth's tracing `options` (its JSON object) name, watching the transactions
    /// from position `first` on; Err: options geth would refuse, or a tracer not offered.
    pub fn new(options: &str, first: usize) -> Result<Self, String> {
        let options: GethDebugTracingOptions =
            serde_json::from_str(options).map_err(|e| format!("invalid tracing options: {e}"))?;
        let config = options.tracer_config;
        let bad_config = |e: serde_json::Error| format!("invalid tracerConfig: {e}");
        let tracer = match options.tracer {
            None => GethTracer::StructLogs(options.config),
            Some(GethDebugTracerType::BuiltInTracer(GethDebugBuiltInTracerType::CallTracer)) => {
                GethTracer::Calls(config.into_call_config().map_err(bad_config)?)
            }
            Some(GethDebugTracerType::BuiltInTracer(
                GethDebugBuiltInTracerType::PreStateTracer,
            )) => GethTracer::Prestate(config.into_pre_state_config().map_err(bad_config)?),
            Some(other) => {
                return Err(format!(
                    "tracer {:?} is not offered: callTracer, prestateTracer, or no tracer \
                     for geth's struct logger",
                    other.as_str()
                ))
            }
        };
        Ok(GethTraces {
            tracer,
            first,
            found: Vec::new(),
        })
    }
}

impl Tracer for GethTraces {
    type Inspector = TracingInspector;

    fn inspector(&mut self, position: usize, _: &TxEnv) -> Option<TracingInspector> {
        let config = match &self.tracer {
            GethTracer::StructLogs(options) => TracingInspectorConfig::from_geth_config(options),
            GethTracer::Calls(config) => TracingInspectorConfig::from_geth_call_config(config),
            GethTracer::Prestate(config) => {
                TracingInspectorConfig::from_geth_prestate_config(config)
            }
        };
        (position >= self.first).then(|| TracingInspector::new(config))
    }

    fn finish(
        &mut self,
        position: usize,
        inspector: TracingInspector,
        tx: &TxEnv,
        done: &ResultAndState,
        before: &mut OverlayDb<'_>,
    ) {
        // geth's top call frame has the transaction's gas, not what is left after intrinsic gas.
        let builder = inspector
            .with_transaction_gas_limit(tx.gas_limit)
            .into_geth_builder();
        let gas_used = done.result.tx_gas_used();
        let json = match &self.tracer {
            GethTracer::StructLogs(options) => {
                let output = done.result.output().cloned().unwrap_or_default();
                geths_struct_logs(builder.geth_traces(gas_used, output, *options))
            }
            GethTracer::Calls(config) => {
                serde_json::to_string(&builder.geth_call_traces(*config, gas_used))
            }
            GethTracer::Prestate(config) => {
                let before = Before(RefCell::new(before));
                let Ok(frame) = builder.geth_prestate_traces(done, config, &before);
                if !before.0.borrow().misses.is_empty() {
                    return;
                }
                serde_json::to_string(&frame)
            }
        };
        self.found
            .push((position, json.expect("geth's frames serialize")));
    }
}

/// A step's halt as geth's struct logger words it (core/vm/errors.go): revm-inspectors writes
/// the status in Rust's debug form, `Some(OutOfGas)`.
fn geths_halt(status: &str, op: &str) -> String {
    let name = status
        .strip_prefix("Some(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(status);
    match name {
        "OutOfGas" | "MemoryOOG" | "MemoryLimitOOG" | "PrecompileOOG" | "InvalidOperandOOG" => {
            "out of gas".into()
        }
        "OpcodeNotFound" | "NotActivated" => format!("invalid opcode: {op}"),
        "InvalidFEOpcode" => "invalid opcode: INVALID".into(),
        "StackUnderflow" => "stack underflow".into(),
        "StackOverflow" => "stack limit reached".into(),
        "InvalidJump" => "invalid jump destination".into(),
        "StateChangeDuringStaticCall" => "write protection".into(),
        "CallTooDeep" => "max call depth exceeded".into(),
        "OutOfFunds" => "insufficient balance for transfer".into(),
        "OutOfOffset" => "return data out of bounds".into(),
        "CreateCollision" => "contract address collision".into(),
        "NonceOverflow" => "nonce uint64 overflow".into(),
        "CreateContractSizeLimit" => "max code size exceeded".into(),
        "CreateInitCodeSizeLimit" => "max initcode size exceeded".into(),
        "CreateContractStartingWithEF" => "invalid code: must not begin with 0xef".into(),
        "OverflowPayment" => "gas uint64 overflow".into(),
        "Revert" => "execution reverted".into(),
        // Any other status, in words: "InvalidEXTCALLTarget" -> "invalid e x t c a l l target"
        // would be worse than the name itself, so the name is kept.
        other => other.into(),
    }
}

/// The struct logger's frame as geth writes it (its `toLegacyJSON`): memory and storage words
/// in bare hex, where revm-inspectors writes them with `0x`, no empty memory or return data,
/// nor a refund counter of 0, and halts in geth's words.
fn geths_struct_logs(mut frame: DefaultFrame) -> serde_json::Result<String> {
    let bare = |word: &str| word.trim_start_matches("0x").to_owned();
    for log in &mut frame.struct_logs {
        if let Some(error) = &mut log.error {
            *error = geths_halt(error, &log.op);
        }
        log.refund_counter = log.refund_counter.filter(|refund| *refund != 0);
        log.return_data = log.return_data.take().filter(|data| !data.is_empty());
        log.memory = log.memory.take().filter(|memory| !memory.is_empty());
        if let Some(memory) = &mut log.memory {
            memory.iter_mut().for_each(|word| *word = bare(word));
        }
    }
    let mut json = serde_json::to_value(frame)?;
    for log in json["structLogs"].as_array_mut().into_iter().flatten() {
        if let Some(storage) = log.get_mut("storage").and_then(Value::as_object_mut) {
            *storage = std::mem::take(storage)
                .into_iter()
                .map(|(slot, value)| (bare(&slot), bare(value.as_str().unwrap_or_default()).into()))
                .collect();
        }
    }
    serde_json::to_string(&json)
}

/// The state a transaction ran on, read as revm-inspectors' prestate builder reads it (by
/// shared reference); a miss is recorded in the run's database as the EVM's would be.
struct Before<'d, 'h>(RefCell<&'d mut OverlayDb<'h>>);

impl DatabaseRef for Before<'_, '_> {
    type Error = NoError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, NoError> {
        self.0.borrow_mut().basic(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, NoError> {
        self.0.borrow_mut().code_by_hash(code_hash)
    }

    fn storage_ref(&self, address: Address, index: StorageKey) -> Result<StorageValue, NoError> {
        self.0.borrow_mut().storage(address, index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, NoError> {
        self.0.borrow_mut().block_hash(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{execute, BlockRun, Env, Mode, Rules, Stop};
    use crate::state::{AccountRecord, ContractStorage, Head, Miss};
    use revm::bytecode::Bytecode;
    use revm::primitives::hardfork::SpecId;
    use revm::primitives::{keccak256, Address, Bytes, TxKind, B256, KECCAK_EMPTY, U256};

    const CALLER: Address = Address::repeat_byte(0xca);
    const CONTRACT: Address = Address::repeat_byte(0xc0);
    const OTHER: Address = Address::repeat_byte(0x0d);

    /// SLOAD 1, SLOAD 2, BALANCE of OTHER, of the caller and of the precompile 0x01.
    fn code() -> Bytecode {
        let mut code = vec![0x60, 1, 0x54, 0x50, 0x60, 2, 0x54, 0x50];
        for address in [OTHER, CALLER] {
            code.push(0x73);
            code.extend_from_slice(address.as_slice());
            code.extend_from_slice(&[0x31, 0x50]);
        }
        code.extend_from_slice(&[0x60, 1, 0x31, 0x50, 0x00]);
        Bytecode::new_raw(Bytes::from(code))
    }

    /// Code with a hash: what OTHER runs (it never does: the contract only reads its balance).
    const OTHER_CODE: [u8; 1] = [0x00];

    /// The caller, the contract (its slots 1 and 2 hold 5 and 6) and OTHER (balance 7, code);
    /// `complete`: a node's head holding them all, else a view holding only the caller and
    /// the contract's code.
    fn head(complete: bool) -> Head {
        let mut head = if complete {
            Head::complete()
        } else {
            Head::default()
        };
        let caller = AccountRecord {
            nonce: 0,
            balance: U256::from(10u64.pow(18)),
            code_hash: KECCAK_EMPTY,
            storage_root: crate::trie::EMPTY_ROOT,
        };
        head.put_account(CALLER, Some(caller));
        let code = code();
        let code_hash = keccak256(code.original_byte_slice());
        head.code.insert(code_hash, code);
        if complete {
            let storage = ContractStorage::complete([
                (U256::from(1), U256::from(5)),
                (U256::from(2), U256::from(6)),
            ]);
            let contract = AccountRecord {
                nonce: 1,
                balance: U256::ZERO,
                code_hash,
                storage_root: storage.trie.root(),
            };
            head.put_account(CONTRACT, Some(contract));
            head.storage.insert(CONTRACT, storage);
            let other = Bytecode::new_raw(Bytes::from_static(&OTHER_CODE));
            let other_hash = keccak256(OTHER_CODE);
            head.code.insert(other_hash, other);
            let other = AccountRecord {
                nonce: 0,
                balance: U256::from(7),
                code_hash: other_hash,
                storage_root: crate::trie::EMPTY_ROOT,
            };
            head.put_account(OTHER, Some(other));
        }
        head
    }

    /// Answer a view's misses from the full head, as the node's storage does.
    fn load(view: &mut Head, full: &Head, misses: Vec<Miss>) {
        for miss in misses {
            match miss {
                Miss::Account(a) => match full.accounts.get(&a) {
                    Some(record) => view.put_account(a, Some(*record)),
                    None => _ = view.absent.insert(a),
                },
                Miss::Storage(a, Some(slot)) => {
                    let value = full.storage[&a].slots[&slot];
                    view.storage.entry(a).or_default().slots.insert(slot, value);
                }
                Miss::Code(hash) => _ = view.code.insert(hash, full.code[&hash].clone()),
                other => panic!("unexpected miss {other:?}"),
            }
        }
    }

    fn call_run(count: usize) -> BlockRun {
        let env = Env {
            number: 1,
            timestamp: 1,
            coinbase: Address::ZERO,
            gas_limit: 30_000_000,
            base_fee: 0,
            prev_randao: B256::ZERO,
            excess_blob_gas: 0,
        };
        let tx = TxEnv {
            caller: CALLER,
            kind: TxKind::Call(CONTRACT),
            gas_limit: 100_000,
            chain_id: Some(1),
            ..Default::default()
        };
        BlockRun::new(env, vec![Some(tx); count], false, Mode::CallWithoutBaseFee)
    }

    fn rules() -> Rules {
        Rules {
            spec: SpecId::CANCUN,
            chain_id: 1,
        }
    }

    fn expected() -> AccessList {
        use revm::context_interface::transaction::AccessListItem;
        AccessList(vec![
            AccessListItem {
                address: OTHER,
                storage_keys: vec![],
            },
            AccessListItem {
                address: CONTRACT,
                storage_keys: vec![B256::with_last_byte(1), B256::with_last_byte(2)],
            },
        ])
    }

    #[test]
    fn access_lists_follow_geths_rules() {
        let head = head(true);
        let mut run = call_run(1);
        let mut tracer = AccessLists::default();
        assert!(matches!(
            execute(&head, &rules(), &mut run, &mut tracer),
            Stop::Done
        ));
        assert!(run.outcomes[0].1.status);
        assert_eq!(tracer.found, vec![(0, expected())]);
    }

    #[test]
    fn a_transaction_redone_after_a_miss_is_watched_afresh() {
        let full = head(true);
        let mut view = head(false);
        let mut run = call_run(1);
        let mut tracer = AccessLists::default();
        let mut rounds = 0;
        while let Stop::Missing(misses) = execute(&view, &rules(), &mut run, &mut tracer) {
            assert!(tracer.found.is_empty());
            rounds += 1;
            load(&mut view, &full, misses);
        }
        assert!(
            rounds > 1,
            "the contract, then its slots and the accounts it reads"
        );
        assert_eq!(tracer.found, vec![(0, expected())]);
    }

    /// Watches only the transaction at one position.
    struct Only(usize, Vec<usize>);

    impl Tracer for Only {
        type Inspector = AccessListInspector;

        fn inspector(&mut self, position: usize, _: &TxEnv) -> Option<AccessListInspector> {
            (position == self.0).then(AccessListInspector::default)
        }

        fn finish(
            &mut self,
            position: usize,
            _: AccessListInspector,
            _: &TxEnv,
            done: &ResultAndState,
            _: &mut OverlayDb<'_>,
        ) {
            assert!(done.result.is_success());
            self.1.push(position);
        }
    }

    #[test]
    fn unwatched_transactions_are_not_finished() {
        let head = head(true);
        let mut run = call_run(3);
        let mut tracer = Only(1, Vec::new());
        assert!(matches!(
            execute(&head, &rules(), &mut run, &mut tracer),
            Stop::Done
        ));
        assert_eq!(run.outcomes.len(), 3);
        assert_eq!(tracer.1, vec![1]);
    }

    /// `run` traced by geth's tracer with these `options` from position `first`, on the
    /// complete head; -> the traces as JSON values.
    fn geth(options: &str, first: usize, run: &mut BlockRun) -> Vec<(usize, serde_json::Value)> {
        let mut tracer = GethTraces::new(options, first).expect("valid options");
        assert!(matches!(
            execute(&head(true), &rules(), run, &mut tracer),
            Stop::Done
        ));
        let parse = |(p, json): (usize, String)| (p, serde_json::from_str(&json).expect("json"));
        tracer.found.into_iter().map(parse).collect()
    }

    fn hex(value: impl std::fmt::LowerHex) -> serde_json::Value {
        format!("{value:#x}").into()
    }

    #[test]
    fn the_call_tracer_shows_the_transaction_as_geths_top_frame() {
        let mut run = call_run(1);
        let traces = geth(r#"{"tracer": "callTracer"}"#, 0, &mut run);
        let gas_used = run.outcomes[0].1.gas_used;
        assert_eq!(
            traces,
            vec![(
                0,
                serde_json::json!({
                    "from": CALLER, "to": CONTRACT, "gas": hex(100_000), "gasUsed": hex(gas_used),
                    "input": "0x", "value": "0x0", "type": "CALL",
                })
            )]
        );
    }

    #[test]
    fn the_struct_logger_steps_through_the_code_with_its_gas() {
        let mut run = call_run(1);
        let traces = geth("{}", 0, &mut run);
        let trace = &traces[0].1;
        assert_eq!(trace["gas"], run.outcomes[0].1.gas_used);
        assert_eq!(
            (&trace["failed"], &trace["returnValue"]),
            (&false.into(), &"0x".into())
        );
        let logs = trace["structLogs"].as_array().expect("steps");
        let ops: Vec<_> = logs.iter().map(|l| l["op"].as_str().expect("op")).collect();
        assert_eq!(&ops[..4], ["PUSH1", "SLOAD", "POP", "PUSH1"]);
        assert_eq!(ops.last(), Some(&"STOP"));
        // 100,000 gas less the 21,000 intrinsic at the first step, each next one less its cost.
        assert_eq!(logs[0]["gas"], 79_000);
        for pair in logs.windows(2) {
            let cost = pair[0]["gasCost"].as_u64().expect("cost");
            assert_eq!(pair[0]["gas"].as_u64().expect("gas") - cost, pair[1]["gas"]);
        }
        assert!(logs.iter().all(|l| l["depth"] == 1));
        // SLOAD 1: the stack holds the slot, storage shows what it read.
        assert_eq!(logs[1]["stack"], serde_json::json!(["0x1"]));
        let slot = format!("{:064x}", 1);
        assert_eq!(logs[1]["storage"][&slot], format!("{:064x}", 5));
        assert!(logs
            .iter()
            .all(|l| l.get("refund").is_none() && l.get("memory").is_none()));
        let quiet = geth(
            r#"{"disableStack": true, "disableStorage": true}"#,
            0,
            &mut call_run(1),
        );
        let step = &quiet[0].1["structLogs"][1];
        assert!(step.get("stack").is_none() && step.get("storage").is_none());
        // The code never touches memory, and geth leaves an empty memory out.
        let memory = geth(r#"{"enableMemory": true}"#, 0, &mut call_run(1));
        assert!(memory[0].1["structLogs"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|l| l.get("memory").is_none()));
    }

    #[test]
    fn halts_are_written_in_geths_words() {
        assert_eq!(geths_halt("Some(OutOfGas)", "SSTORE"), "out of gas");
        assert_eq!(geths_halt("Some(MemoryOOG)", "MSTORE"), "out of gas");
        assert_eq!(
            geths_halt("Some(OpcodeNotFound)", "opcode 0xc0"),
            "invalid opcode: opcode 0xc0"
        );
        assert_eq!(
            geths_halt("Some(InvalidFEOpcode)", "INVALID"),
            "invalid opcode: INVALID"
        );
        assert_eq!(geths_halt("Some(StackUnderflow)", "ADD"), "stack underflow");
        assert_eq!(
            geths_halt("Some(InvalidJump)", "JUMP"),
            "invalid jump destination"
        );
    }

    #[test]
    fn only_the_transactions_from_the_first_traced_are_traced() {
        let mut run = call_run(3);
        let traces = geth(r#"{"tracer": "callTracer"}"#, 2, &mut run);
        assert_eq!(run.outcomes.len(), 3);
        assert_eq!(traces.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn the_prestate_tracer_reads_the_code_the_run_did_not_load() {
        let full = head(true);
        let mut view = head(false);
        let mut run = call_run(1);
        let options = r#"{"tracer": "prestateTracer"}"#;
        let mut tracer = GethTraces::new(options, 0).expect("valid options");
        let mut last = Vec::new();
        while let Stop::Missing(misses) = execute(&view, &rules(), &mut run, &mut tracer) {
            assert!(tracer.found.is_empty());
            last.clone_from(&misses);
            load(&mut view, &full, misses);
        }
        // BALANCE does not load OTHER's code; geth's prestate shows it, so it is loaded after.
        assert_eq!(last, vec![Miss::Code(keccak256(OTHER_CODE))]);
        let (position, json) = &tracer.found[0];
        let prestate: serde_json::Value = serde_json::from_str(json).expect("json");
        let word = |n: u8| format!("0x{n:064x}");
        assert_eq!(*position, 0);
        assert_eq!(
            prestate[OTHER.to_string().to_lowercase()],
            serde_json::json!({"balance": "0x7", "code": "0x00"})
        );
        assert_eq!(
            prestate[CONTRACT.to_string().to_lowercase()]["storage"],
            serde_json::json!({word(1): word(5), word(2): word(6)})
        );
        assert_eq!(
            prestate[CALLER.to_string().to_lowercase()],
            serde_json::json!({"balance": hex(10u64.pow(18))})
        );
    }

    #[test]
    fn options_geth_refuses_and_tracers_not_offered_are_errors() {
        let error = |options: &str| GethTraces::new(options, 0).expect_err("refused");
        assert!(error(r#"{"tracer": "4byteTracer"}"#).contains("\"4byteTracer\" is not offered"));
        assert!(error(r#"{"tracer": "{step: function() {}}"}"#).contains("not offered"));
        let config = r#"{"tracer": "callTracer", "tracerConfig": {"onlyTopCall": "yes"}}"#;
        assert!(error(config).starts_with("invalid tracerConfig"));
        assert!(error("[]").starts_with("invalid tracing options"));
    }
}
