//! Executing a block on the head: transactions through revm one by one into an [`Overlay`],
//! then the new state root on copies of the tries, installed only on commit.
//!
//! A block run is resumable: when a transaction meets a [`Miss`], the run keeps going
//! speculatively (without committing) to collect the misses of the following transactions
//! too, then stops at the first transaction that missed; the caller loads every miss in one
//! batch and calls [`execute`] again, which redoes that transaction on complete data.
//!
//! A run can be traced: a [`Tracer`] watches its transactions through revm's inspector hook
//! (see [`crate::trace`]).

use crate::state::{AccountRecord, ContractStorage, Head, Miss, Overlay, OverlayDb};
use crate::trace::Tracer;
use crate::trie::{
    rlp_bytes, rlp_bytes_len, rlp_header_len, rlp_list_header, trimmed, Trie, EMPTY_ROOT,
};
use revm::context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, Journal, Transaction, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::primitives::alloy_primitives::{Bloom, BloomInput};
use revm::primitives::eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{keccak256, Address, HashMap, HashSet, Log, B256, U256};
use revm::state::EvmState;
use revm::{Context, ExecuteEvm, InspectEvm, MainBuilder, MainContext};

/// Why a transaction whose fields do not fit the EVM's widths is invalid.
const UNFIT: &str = "field out of range: a value does not fit the EVM's widths";

/// How many transactions past the first miss a run goes on speculatively to find more.
const SPECULATION: usize = 512;

/// What revm executes a run's transactions in (and an inspector sees).
pub type RunContext<'a> =
    Context<BlockEnv, TxEnv, CfgEnv, OverlayDb<'a>, Journal<OverlayDb<'a>>, ()>;

/// The forks a chain spec may name.
pub fn spec_id(fork: &str) -> Option<SpecId> {
    match fork {
        "shanghai" => Some(SpecId::SHANGHAI),
        "cancun" => Some(SpecId::CANCUN),
        "prague" => Some(SpecId::PRAGUE),
        _ => None,
    }
}

/// The header fields execution reads.
#[derive(Clone, Debug)]
pub struct Env {
    pub number: u64,
    pub timestamp: u64,
    pub coinbase: Address,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub prev_randao: B256,
    pub excess_blob_gas: u64,
}

impl Env {
    pub fn block_env(&self, spec: SpecId) -> BlockEnv {
        let mut block = BlockEnv {
            number: U256::from(self.number),
            beneficiary: self.coinbase,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prev_randao),
            ..Default::default()
        };
        block.blob_excess_gas_and_price = if spec.is_enabled_in(SpecId::CANCUN) {
            let fraction = if spec.is_enabled_in(SpecId::PRAGUE) {
                revm::primitives::eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE
            } else {
                BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN
            };
            Some(BlobExcessGasAndPrice::new(self.excess_blob_gas, fraction))
        } else {
            None
        };
        block
    }
}

/// Engine-wide rules.
#[derive(Clone, Debug)]
pub struct Rules {
    pub spec: SpecId,
    pub chain_id: u64,
}

impl Rules {
    pub fn cfg(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(self.spec);
        cfg.chain_id = self.chain_id;
        cfg.max_blobs_per_tx = Some(if self.spec.is_enabled_in(SpecId::PRAGUE) {
            9
        } else {
            6
        });
        cfg
    }
}

/// One transaction's outcome.
#[derive(Clone, Debug)]
pub struct TxOutcome {
    pub tx_type: u8,
    pub status: bool,
    pub gas_used: u64,
    pub cumulative_gas_used: u64,
    /// What the sender paid per gas (revm's figure: the gas price, or for EIP-1559 and later
    /// types min(max fee, base fee + tip)).
    pub effective_gas_price: u128,
    pub logs: Vec<Log>,
    /// The bloom of `logs`.
    pub bloom: Bloom,
    pub contract_address: Option<Address>,
    pub output: Vec<u8>,
    /// Why it failed, in geth's words: "execution reverted", "out of gas", ...
    pub error: Option<String>,
}

/// How a run treats its transactions: as a block's, or as `eth_call`s (geth's rules for
/// those: no nonce check, senders may have code, no block gas cap, and without a gas price
/// no base fee either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Block,
    Call,
    CallWithoutBaseFee,
}

/// A block being executed; see the module docstring.
pub struct BlockRun {
    pub env: Env,
    /// The transactions; None for one whose fields do not fit the EVM's widths (invalid).
    pub txs: Vec<Option<TxEnv>>,
    pub skip_invalid: bool,
    pub mode: Mode,
    pub next: usize,
    pub overlay: Overlay,
    /// (position in `txs`, outcome) of the included transactions.
    pub outcomes: Vec<(usize, TxOutcome)>,
    /// (position in `txs`, reason) of the skipped ones (building only).
    pub skipped: Vec<(usize, String)>,
    pub gas_used: u64,
    /// The receipts root and logs bloom of a finished block run (not of `eth_call`s).
    pub commitment: Option<(B256, Bloom)>,
}

/// What stopped a run.
pub enum Stop {
    Done,
    Missing(Vec<Miss>),
    /// Importing: the transaction at this position cannot apply (geth's reason).
    Rejected(usize, String),
}

impl BlockRun {
    pub fn new(env: Env, txs: Vec<Option<TxEnv>>, skip_invalid: bool, mode: Mode) -> Self {
        BlockRun {
            env,
            txs,
            skip_invalid,
            mode,
            next: 0,
            overlay: Overlay::default(),
            outcomes: Vec::new(),
            skipped: Vec::new(),
            gas_used: 0,
            commitment: None,
        }
    }
}

/// geth's wording for a transaction that cannot apply, so clients see what geth would say.
pub fn reason(error: &InvalidTransaction) -> String {
    use InvalidTransaction as E;
    match error {
        E::NonceTooLow { tx, state } => format!("nonce too low: tx {tx}, state {state}"),
        E::NonceTooHigh { tx, state } => format!("nonce too high: tx {tx}, state {state}"),
        E::LackOfFundForMaxFee { fee, balance } => {
            format!("insufficient funds for gas * price + value: have {balance} want {fee}")
        }
        E::GasPriceLessThanBasefee => "max fee per gas less than block base fee".into(),
        E::RejectCallerWithCode => "sender not an eoa".into(),
        E::CallerGasLimitMoreThanBlock => "gas limit reached".into(),
        E::CallGasCostMoreThanGasLimit {
            initial_gas,
            gas_limit,
        } => {
            format!("intrinsic gas too low: have {gas_limit}, want {initial_gas}")
        }
        E::PriorityFeeGreaterThanMaxFee => {
            "max priority fee per gas higher than max fee per gas".into()
        }
        E::NonceOverflowInTransaction => "nonce has max value".into(),
        E::CreateInitCodeSizeLimit => "max initcode size exceeded".into(),
        E::InvalidChainId => "invalid chain id".into(),
        other => other.to_string(),
    }
}

fn record_of(info: &revm::state::AccountInfo, storage_root: B256) -> AccountRecord {
    AccountRecord {
        nonce: info.nonce,
        balance: info.balance,
        code_hash: info.code_hash,
        storage_root,
    }
}

/// Fold one transaction's state changes into the block's overlay (revm's commit semantics:
/// self-destructed accounts vanish with their storage, created ones start with empty storage,
/// touched empty accounts are deleted per EIP-161).
fn commit(overlay: &mut Overlay, state: EvmState, guarded: &HashSet<Address>) {
    for (address, mut account) in state {
        if !account.is_touched() {
            continue;
        }
        if guarded.contains(&address) {
            account.info.nonce = account.info.nonce.saturating_sub(1);
        }
        if account.is_selfdestructed() {
            overlay.accounts.insert(address, None);
            overlay.wiped.insert(address);
            overlay.storage.remove(&address);
            continue;
        }
        let created = account.is_created();
        if created {
            overlay.wiped.insert(address);
            overlay.storage.remove(&address);
        } else if account.is_empty() {
            overlay.accounts.insert(address, None);
            continue;
        }
        // Only a creation brings new code; a called contract's code is already stored.
        if let (true, Some(code)) = (created, &account.info.code) {
            if !code.is_empty() {
                overlay.code.insert(account.info.code_hash, code.clone());
            }
        }
        let mut changed = account
            .storage
            .iter()
            .filter(|(_, slot)| created || slot.is_changed())
            .peekable();
        if changed.peek().is_some() {
            let slots = overlay.storage.entry(address).or_default();
            for (key, slot) in changed {
                slots.insert(*key, slot.present_value());
            }
        }
        overlay
            .accounts
            .insert(address, Some(account.info.without_code()));
    }
}

/// Run `run` on `head` until it is done, rejected, or misses data (see the module docstring),
/// its transactions watched by `tracer`.
pub fn execute<T: Tracer>(head: &Head, rules: &Rules, run: &mut BlockRun, tracer: &mut T) -> Stop {
    let overlay = std::mem::take(&mut run.overlay);
    let db = OverlayDb::new(head, overlay);
    let mut cfg = rules.cfg();
    if run.mode != Mode::Block {
        cfg.disable_nonce_check = true;
        cfg.disable_eip3607 = true;
        cfg.disable_block_gas_limit = true;
        cfg.disable_base_fee = run.mode == Mode::CallWithoutBaseFee;
    }
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(run.env.block_env(rules.spec))
        .with_cfg(cfg)
        .build_mainnet_with_inspector(T::Inspector::default());
    let mut first_miss: Option<usize> = None;
    let mut bloom_hashes = BloomHashes::default();
    run.outcomes.reserve(run.txs.len() - run.next);
    let mut stop = Stop::Done;
    let mut position = run.next;
    while position < run.txs.len() {
        if let Some(first) = first_miss {
            if position - first > SPECULATION {
                break;
            }
        }
        let tx = run.txs[position].clone();
        // A creation names its address in the receipt even when it fails, as geth does.
        let creates = tx
            .as_ref()
            .and_then(|tx| tx.kind.is_create().then(|| tx.caller.create(tx.nonce)));
        let (tx_type, price) = tx.as_ref().map_or((0, 0), |tx| {
            let price = tx.effective_gas_price(u128::from(run.env.base_fee));
            (tx.tx_type, price)
        });
        let gas_left = run.env.gas_limit - run.gas_used;
        let mut watched = false;
        let result = match tx {
            None => Err(UNFIT.to_string()),
            Some(tx) if tx.gas_limit > gas_left && run.mode == Mode::Block => Err(format!(
                "gas limit reached: tx gas {}, block gas left {gas_left}",
                tx.gas_limit
            )),
            Some(tx) => match match tracer.inspector(position, &tx) {
                Some(inspector) => {
                    watched = true;
                    evm.set_inspector(inspector);
                    evm.inspect_tx(tx)
                }
                None => evm.transact(tx),
            } {
                Ok(done) => Ok(done),
                Err(EVMError::Transaction(error)) => Err(reason(&error)),
                Err(other) => Err(other.to_string()),
            },
        };
        let db = &mut evm.ctx.journaled_state.database;
        if !db.misses.is_empty() || first_miss.is_some() {
            // Speculating: nothing is committed, the misses are all that counts.
            first_miss.get_or_insert(position);
            position += 1;
            continue;
        }
        match result {
            Err(why) => {
                if !run.skip_invalid {
                    stop = Stop::Rejected(position, why);
                    break;
                }
                run.skipped.push((position, why));
            }
            Ok(done) => {
                if watched {
                    let inspector = std::mem::take(&mut evm.inspector);
                    let tx = run.txs[position].as_ref().expect("a run transaction fits");
                    tracer.finish(position, inspector, tx, &done, db);
                    if !db.misses.is_empty() {
                        // The tracer read state the transaction had not: redo it after the load.
                        first_miss = Some(position);
                        position += 1;
                        continue;
                    }
                }
                let gas_used = done.result.tx_gas_used();
                run.gas_used += gas_used;
                let outcome = outcome(
                    done.result,
                    &mut bloom_hashes,
                    (tx_type, creates),
                    (gas_used, run.gas_used),
                    price,
                );
                commit(&mut db.overlay, done.state, &db.guarded);
                run.outcomes.push((position, outcome));
            }
        }
        position += 1;
    }
    let db = &mut evm.ctx.journaled_state.database;
    run.overlay = std::mem::take(&mut db.overlay);
    if let Some(first) = first_miss {
        run.next = first;
        return Stop::Missing(std::mem::take(&mut db.misses));
    }
    run.next = position;
    if matches!(stop, Stop::Done) && run.mode == Mode::Block {
        run.commitment = Some(receipts_commitment(run));
    }
    stop
}

/// The Keccak-256 of log addresses and event signatures (first topics) seen in a run: within a
/// block they repeat (a token's Transfer events), and a bloom hashes each of its inputs.
#[derive(Default)]
struct BloomHashes {
    addresses: HashMap<Address, B256>,
    signatures: HashMap<B256, B256>,
}

impl BloomHashes {
    /// The bloom of `logs` (Yellow Paper 4.3.1).
    fn bloom(&mut self, logs: &[Log]) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for log in logs {
            let hash = *self
                .addresses
                .entry(log.address)
                .or_insert_with(|| keccak256(log.address));
            bloom.accrue(BloomInput::Hash(hash));
            for (i, topic) in log.topics().iter().enumerate() {
                let hash = if i == 0 {
                    *self
                        .signatures
                        .entry(*topic)
                        .or_insert_with(|| keccak256(topic))
                } else {
                    keccak256(topic)
                };
                bloom.accrue(BloomInput::Hash(hash));
            }
        }
        bloom
    }
}

fn outcome(
    result: ExecutionResult,
    bloom_hashes: &mut BloomHashes,
    (tx_type, contract_address): (u8, Option<Address>),
    (gas_used, cumulative): (u64, u64),
    effective_gas_price: u128,
) -> TxOutcome {
    let status = result.is_success();
    let error = match &result {
        ExecutionResult::Success { .. } => None,
        ExecutionResult::Revert { .. } => Some("execution reverted".to_string()),
        ExecutionResult::Halt { reason, .. } => Some(halt_reason(reason)),
    };
    let output = result.output().map(|o| o.to_vec()).unwrap_or_default();
    let bloom = bloom_hashes.bloom(result.logs());
    TxOutcome {
        tx_type,
        status,
        gas_used,
        cumulative_gas_used: cumulative,
        effective_gas_price,
        logs: result.into_logs(),
        bloom,
        contract_address,
        output,
        error,
    }
}

/// geth's text for an exceptional halt (core/vm/errors.go).
fn halt_reason(reason: &HaltReason) -> String {
    use HaltReason as H;
    match reason {
        H::OutOfGas(_) => "out of gas".into(),
        H::OpcodeNotFound | H::InvalidFEOpcode => "invalid opcode".into(),
        H::StackUnderflow => "stack underflow".into(),
        H::StackOverflow => "stack limit reached 1024 (1023)".into(),
        H::InvalidJump => "invalid jump destination".into(),
        H::StateChangeDuringStaticCall => "write protection".into(),
        H::CallTooDeep => "max call depth exceeded".into(),
        H::OutOfFunds => "insufficient balance for transfer".into(),
        H::CreateCollision => "contract address collision".into(),
        H::CreateContractSizeLimit => "max code size exceeded".into(),
        H::CreateContractStartingWithEF => "invalid code: must not begin with 0xef".into(),
        H::CreateInitCodeSizeLimit => "max initcode size exceeded".into(),
        H::NonceOverflow => "nonce uint64 overflow".into(),
        H::PrecompileError => "precompile failed".into(),
        other => format!("{other:?}"),
    }
}

/// Per changed contract: its address, whether its storage was wiped, and (slot, new value,
/// previous value) per changed slot.
pub type StorageChanges = Vec<(Address, bool, Vec<(U256, U256, U256)>)>;

/// The state after a block, computed on copies of the head's tries (nothing installed yet).
#[derive(Debug)]
pub struct Prepared {
    pub base_root: B256,
    pub state_root: B256,
    pub account_trie: Trie,
    /// New and previous records of every changed account (`None`: absent).
    pub accounts: Vec<(Address, Option<AccountRecord>, Option<AccountRecord>)>,
    pub storage_tries: HashMap<Address, Trie>,
    pub storage: StorageChanges,
    pub code: Vec<(B256, revm::bytecode::Bytecode)>,
}

/// Compute the state root after `overlay`; misses if a changed contract's storage is not
/// loaded (its trie could not be rehashed).
pub fn prepare(head: &Head, overlay: &Overlay) -> Result<Prepared, Vec<Miss>> {
    let mut misses = Vec::new();
    let mut touched: Vec<Address> = overlay.accounts.keys().copied().collect();
    touched.extend(
        overlay
            .storage
            .keys()
            .filter(|a| !overlay.accounts.contains_key(*a)),
    );
    touched.sort();
    for address in &touched {
        let changes_storage = overlay.wiped.contains(address)
            || overlay.storage.get(address).is_some_and(|s| !s.is_empty());
        let previous_root = head.accounts.get(address).map(|r| r.storage_root);
        let loaded = head.storage.get(address).is_some_and(|s| s.complete);
        if changes_storage && !loaded && previous_root.is_some_and(|r| r != EMPTY_ROOT) {
            misses.push(Miss::Storage(*address, None));
        }
    }
    if !misses.is_empty() {
        return Err(misses);
    }
    let mut account_trie = head.account_trie.clone();
    let mut accounts = Vec::with_capacity(touched.len());
    let mut storage_tries = HashMap::default();
    let mut storage = Vec::new();
    let mut account_updates = Vec::with_capacity(touched.len());
    for address in touched {
        let previous = head.accounts.get(&address).copied();
        let wiped = overlay.wiped.contains(&address);
        let empty = ContractStorage::complete([]);
        let base = if wiped {
            &empty
        } else {
            head.storage.get(&address).unwrap_or(&empty)
        };
        let mut trie = base.trie.clone();
        let mut slot_changes = Vec::new();
        let mut trie_updates = Vec::new();
        if wiped {
            if let Some(old) = head.storage.get(&address) {
                for (slot, value) in &old.slots {
                    let new = overlay.storage.get(&address).and_then(|s| s.get(slot));
                    if new.is_none() {
                        slot_changes.push((*slot, U256::ZERO, *value));
                    }
                }
            }
        }
        if let Some(slots) = overlay.storage.get(&address) {
            for (slot, value) in slots {
                let before = if wiped {
                    head.storage
                        .get(&address)
                        .and_then(|s| s.slots.get(slot))
                        .copied()
                } else {
                    base.slots.get(slot).copied()
                }
                .unwrap_or_default();
                if *value == before && !wiped {
                    continue;
                }
                trie_updates.push((
                    keccak256(slot.to_be_bytes::<32>()),
                    crate::state::encode_slot(value),
                ));
                slot_changes.push((*slot, *value, before));
            }
        }
        trie.set_all(trie_updates);
        let changes_storage = wiped || !slot_changes.is_empty();
        let storage_root = if changes_storage {
            trie.root()
        } else {
            previous.map(|r| r.storage_root).unwrap_or(EMPTY_ROOT)
        };
        let record = match overlay.accounts.get(&address) {
            Some(Some(info)) => Some(record_of(info, storage_root)),
            Some(None) => None,
            None => previous.map(|r| AccountRecord { storage_root, ..r }),
        };
        account_updates.push((
            keccak256(address),
            record.map(|r| r.encode()).unwrap_or_default(),
        ));
        if changes_storage {
            slot_changes.sort_by_key(|c| c.0);
            storage.push((address, wiped, slot_changes));
            storage_tries.insert(address, trie);
        }
        if record != previous {
            accounts.push((address, record, previous));
        }
    }
    let mut code: Vec<_> = overlay.code.iter().map(|(h, c)| (*h, c.clone())).collect();
    code.sort_by_key(|c| c.0);
    account_trie.set_all(account_updates);
    let state_root = account_trie.root();
    Ok(Prepared {
        base_root: head.state_root(),
        state_root,
        account_trie,
        accounts,
        storage_tries,
        storage,
        code,
    })
}

/// Install a prepared block as the head (its tries are shared, not copied).
pub fn install(head: &mut Head, prepared: &Prepared) {
    for (address, record, _) in &prepared.accounts {
        match record {
            Some(record) => {
                head.accounts.insert(*address, *record);
                head.absent.remove(address);
            }
            None => {
                head.accounts.remove(address);
                head.storage.remove(address);
            }
        }
    }
    for (address, wiped, slots) in &prepared.storage {
        if !head.accounts.contains_key(address) {
            continue;
        }
        let storage = head
            .storage
            .entry(*address)
            .or_insert_with(|| ContractStorage {
                complete: true,
                ..Default::default()
            });
        if *wiped {
            storage.slots.clear();
            storage.complete = true;
        }
        for (slot, value, _) in slots {
            if value.is_zero() {
                storage.slots.remove(slot);
            } else {
                storage.slots.insert(*slot, *value);
            }
        }
        if let Some(trie) = prepared.storage_tries.get(address) {
            storage.trie = trie.clone();
        }
    }
    for (hash, code) in &prepared.code {
        head.code.insert(*hash, code.clone());
    }
    head.account_trie = prepared.account_trie.clone();
}

/// The baseline for benchmarks: the same transactions through plain revm over its own
/// in-memory `CacheDB` (no overlay, no miss protocol, no trie), timed in Rust; -> seconds.
pub fn raw_revm_seconds(head: &Head, rules: &Rules, env: &Env, txs: &[Option<TxEnv>]) -> f64 {
    use revm::database::{CacheDB, EmptyDB};
    use revm::ExecuteCommitEvm;
    let mut db = CacheDB::new(EmptyDB::default());
    for (address, record) in &head.accounts {
        let mut info = record.info();
        if let Some(code) = head.code.get(&record.code_hash) {
            info = info.with_code(code.clone());
        }
        db.insert_account_info(*address, info);
        if let Some(storage) = head.storage.get(address) {
            for (slot, value) in &storage.slots {
                db.insert_account_storage(*address, *slot, *value)
                    .expect("in memory");
            }
        }
    }
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(env.block_env(rules.spec))
        .with_cfg(rules.cfg())
        .build_mainnet();
    let started = std::time::Instant::now();
    for tx in txs.iter().flatten() {
        let _ = evm.transact_commit(tx.clone());
    }
    started.elapsed().as_secs_f64()
}

/// Ethereum's consensus encoding of a receipt: `[type ||] rlp([status, cumulative, bloom,
/// logs])`, written in one pass (lengths first).
fn encode_receipt(outcome: &TxOutcome, out: &mut Vec<u8>) {
    // A log is rlp([address, [topics], data]); an address encodes in 21 bytes, a topic in 33.
    let log_payload = |log: &Log| {
        let topics = 33 * log.data.topics().len();
        21 + rlp_header_len(topics) + topics + rlp_bytes_len(&log.data.data)
    };
    let logs: usize = outcome
        .logs
        .iter()
        .map(|log| {
            let payload = log_payload(log);
            rlp_header_len(payload) + payload
        })
        .sum();
    let cumulative = outcome.cumulative_gas_used.to_be_bytes();
    let cumulative = trimmed(&cumulative);
    // status (one byte) + cumulative gas + bloom (a 3-byte header and 256 bytes) + logs
    let body = 1 + rlp_bytes_len(cumulative) + 259 + rlp_header_len(logs) + logs;
    out.reserve(1 + rlp_header_len(body) + body);
    if outcome.tx_type != 0 {
        out.push(outcome.tx_type);
    }
    rlp_list_header(out, body);
    out.push(if outcome.status { 0x01 } else { 0x80 });
    rlp_bytes(out, cumulative);
    rlp_bytes(out, outcome.bloom.as_slice());
    rlp_list_header(out, logs);
    for log in &outcome.logs {
        rlp_list_header(out, log_payload(log));
        rlp_bytes(out, log.address.as_slice());
        let topics = log.data.topics();
        rlp_list_header(out, 33 * topics.len());
        for topic in topics {
            rlp_bytes(out, topic.as_slice());
        }
        rlp_bytes(out, &log.data.data);
    }
}

/// The receipts root and the block's logs bloom of a finished run.
fn receipts_commitment(run: &BlockRun) -> (B256, Bloom) {
    let items: Vec<usize> = (0..run.outcomes.len()).collect();
    let root = alloy_trie::root::ordered_trie_root_with_encoder(&items, |i, out| {
        encode_receipt(&run.outcomes[*i].1, out)
    });
    let mut block_bloom = Bloom::ZERO;
    for (_, outcome) in &run.outcomes {
        block_bloom |= outcome.bloom;
    }
    (root, block_bloom)
}
