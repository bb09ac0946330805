//! The PyO3 module: plain tuples and bytes across the boundary, typed on the Python side.
//!
//! Words (balances, values, slots) cross as 32-byte big-endian `bytes` into the engine and in
//! its lookups, addresses as 20 and hashes as 32 bytes. A block's results go out the way Python
//! keeps them, with as few objects as it takes: transactions are read from their own objects
//! (`tx_env`), outcomes cross as columns, logs and accounts are built by the constructors
//! Python passes in, and the diff's words are Python ints. A miss crosses as `(kind, key...)`
//! with kind `"account"`, `"storage"` (address, slot or None for the whole contract), `"code"`
//! or `"blockhash"`. geth's traces cross as geth's JSON text (`Run.geth_traces`).

use crate::exec::{self, BlockRun, Env, Mode, Prepared, Rules, Stop, TxOutcome};
use crate::state::{AccountRecord, ContractStorage, Head, Miss};
use crate::trace::{AccessLists, GethTraces, NoTracer};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use revm::bytecode::Bytecode;
use revm::context::TxEnv;
use revm::context_interface::transaction::{AccessList, AccessListItem};
use revm::primitives::alloy_primitives::Bloom;
use revm::primitives::{keccak256, Address, Bytes, TxKind, B256, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;
use std::sync::Arc;

/// Executed-but-uncommitted blocks kept for a commit; the oldest are dropped first.
const MAX_PREPARED: usize = 8;

fn address(bytes: &[u8]) -> PyResult<Address> {
    Address::try_from(bytes).map_err(|_| PyValueError::new_err("an address must be 20 bytes"))
}

fn hash(bytes: &[u8]) -> PyResult<B256> {
    B256::try_from(bytes).map_err(|_| PyValueError::new_err("a hash must be 32 bytes"))
}

fn word(bytes: &[u8]) -> PyResult<U256> {
    if bytes.len() != 32 {
        return Err(PyValueError::new_err("a word must be 32 bytes"));
    }
    Ok(U256::from_be_slice(bytes))
}

fn pybytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, data)
}

fn pyword<'py>(py: Python<'py>, value: &U256) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &value.to_be_bytes::<32>())
}

/// A word as a Python int: directly when it fits 128 bits (balances, most values), else from
/// its two halves.
fn pyint<'py>(py: Python<'py>, value: &U256) -> PyResult<Bound<'py, PyAny>> {
    let [l0, l1, l2, l3] = *value.as_limbs();
    let low = (u128::from(l1) << 64) | u128::from(l0);
    if l2 == 0 && l3 == 0 {
        return Ok(if l1 == 0 {
            l0.into_pyobject(py)?.into_any()
        } else {
            low.into_pyobject(py)?.into_any()
        });
    }
    let high = (u128::from(l3) << 64) | u128::from(l2);
    high.into_pyobject(py)?.lshift(128)?.bitor(low)
}

fn miss_tuple<'py>(py: Python<'py>, miss: &Miss) -> PyResult<Bound<'py, PyAny>> {
    Ok(match miss {
        Miss::Account(a) => ("account", pybytes(py, a.as_slice()))
            .into_pyobject(py)?
            .into_any(),
        Miss::Storage(a, slot) => {
            let slot = slot.map(|s| pyword(py, &s));
            ("storage", pybytes(py, a.as_slice()), slot)
                .into_pyobject(py)?
                .into_any()
        }
        Miss::Code(h) => ("code", pybytes(py, h.as_slice()))
            .into_pyobject(py)?
            .into_any(),
        Miss::BlockHash(n) => ("blockhash", *n).into_pyobject(py)?.into_any(),
    })
}

fn misses<'py>(py: Python<'py>, misses: &[Miss]) -> PyResult<Bound<'py, PyList>> {
    let items: PyResult<Vec<_>> = misses.iter().map(|m| miss_tuple(py, m)).collect();
    PyList::new(py, items?)
}

/// A 256-bit word from a Python int (OverflowError if it is negative or wider).
fn int_word(value: &Bound<'_, PyAny>) -> PyResult<U256> {
    if let Ok(small) = value.extract::<u128>() {
        return Ok(U256::from(small));
    }
    let py = value.py();
    let bytes = value.call_method1(intern!(py, "to_bytes"), (32, intern!(py, "big")))?;
    Ok(U256::from_be_slice(bytes.cast::<PyBytes>()?.as_bytes()))
}

fn bytes_of<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    Ok(value.cast::<PyBytes>()?.as_bytes())
}

/// The EVM's view of a transaction: an object with the attributes of
/// `alys_fast.validation.transactions` (type, sender, to, value, data, gas_limit, nonce,
/// chain_id; gas_price for types 0-1, max_fee_per_gas and max_priority_fee_per_gas from type 2;
/// access_list from type 1; blob_versioned_hashes and max_fee_per_blob_gas for type 3).
/// OverflowError if a field does not fit the EVM's widths.
fn tx_env(tx: &Bound<'_, PyAny>) -> PyResult<TxEnv> {
    let py = tx.py();
    let kind: u8 = tx.getattr(intern!(py, "type"))?.extract()?;
    let (gas_price, tip) = if kind < 2 {
        (tx.getattr(intern!(py, "gas_price"))?.extract()?, None)
    } else {
        (
            tx.getattr(intern!(py, "max_fee_per_gas"))?.extract()?,
            Some(
                tx.getattr(intern!(py, "max_priority_fee_per_gas"))?
                    .extract()?,
            ),
        )
    };
    let mut access_list = Vec::new();
    if kind >= 1 {
        for item in tx.getattr(intern!(py, "access_list"))?.try_iter()? {
            let (a, keys): (Vec<u8>, Vec<Vec<u8>>) = item?.extract()?;
            let storage_keys: PyResult<Vec<B256>> = keys.iter().map(|k| hash(k)).collect();
            access_list.push(AccessListItem {
                address: address(&a)?,
                storage_keys: storage_keys?,
            });
        }
    }
    let (blob_hashes, max_fee_per_blob_gas) = if kind == 3 {
        let hashes: Vec<Vec<u8>> = tx
            .getattr(intern!(py, "blob_versioned_hashes"))?
            .extract()?;
        let hashes: PyResult<Vec<B256>> = hashes.iter().map(|h| hash(h)).collect();
        let fee = tx.getattr(intern!(py, "max_fee_per_blob_gas"))?.extract()?;
        (hashes?, fee)
    } else {
        (Vec::new(), 0)
    };
    let to = tx.getattr(intern!(py, "to"))?;
    Ok(TxEnv {
        tx_type: kind,
        caller: address(bytes_of(&tx.getattr(intern!(py, "sender"))?)?)?,
        gas_limit: tx.getattr(intern!(py, "gas_limit"))?.extract()?,
        gas_price,
        kind: if to.is_none() {
            TxKind::Create
        } else {
            TxKind::Call(address(bytes_of(&to)?)?)
        },
        value: int_word(&tx.getattr(intern!(py, "value"))?)?,
        data: Bytes::copy_from_slice(bytes_of(&tx.getattr(intern!(py, "data"))?)?),
        nonce: tx.getattr(intern!(py, "nonce"))?.extract()?,
        chain_id: tx.getattr(intern!(py, "chain_id"))?.extract()?,
        access_list: AccessList(access_list),
        gas_priority_fee: tip,
        blob_hashes,
        max_fee_per_blob_gas,
        ..Default::default()
    })
}

/// (address, nonce, balance word, code hash, storage root), as storage keeps an account.
type AccountTuple = (Vec<u8>, u64, Vec<u8>, Vec<u8>, Vec<u8>);

/// (address, nonce, balance word, code hash): an account as `Run.edit` writes it.
type EditedAccount = (Vec<u8>, u64, Vec<u8>, Vec<u8>);

type EnvTuple<'a> = (u64, u64, &'a [u8], u64, u64, &'a [u8], u64);

fn env(t: EnvTuple<'_>) -> PyResult<Env> {
    let (number, timestamp, coinbase, gas_limit, base_fee, prev_randao, excess_blob_gas) = t;
    Ok(Env {
        number,
        timestamp,
        coinbase: address(coinbase)?,
        gas_limit,
        base_fee,
        prev_randao: hash(prev_randao)?,
        excess_blob_gas,
    })
}

fn record_tuple<'py>(py: Python<'py>, r: &AccountRecord) -> PyResult<Bound<'py, PyTuple>> {
    (
        r.nonce,
        pyword(py, &r.balance),
        pybytes(py, r.code_hash.as_slice()),
        pybytes(py, r.storage_root.as_slice()),
    )
        .into_pyobject(py)
}

/// A block being executed (opaque to Python; see `exec::BlockRun`).
#[pyclass(module = "alys_fast._cext.evm")]
struct Run {
    inner: BlockRun,
    prepared: Option<Arc<Prepared>>,
    tracing: Tracing,
}

/// The tracer a run carries (see `trace`): a variant per tracer offered, as a pyclass cannot
/// be generic.
enum Tracing {
    Off,
    AccessList(AccessLists),
    Geth(GethTraces),
}

/// The engine: the head state and the blocks prepared on it (shared with their runs).
#[pyclass(module = "alys_fast._cext.evm")]
struct Engine {
    head: Head,
    rules: Rules,
    prepared: Vec<Arc<Prepared>>,
}

#[pymethods]
impl Engine {
    /// `complete`: the caller will load every account (a node's head); otherwise each unknown
    /// account and slot is a miss (a view at an older block).
    #[new]
    #[pyo3(signature = (fork, chain_id, complete = true))]
    fn new(fork: &str, chain_id: u64, complete: bool) -> PyResult<Self> {
        let spec = exec::spec_id(fork)
            .ok_or_else(|| PyValueError::new_err(format!("unknown fork {fork:?}")))?;
        let head = if complete {
            Head::complete()
        } else {
            Head::default()
        };
        Ok(Engine {
            head,
            rules: Rules { spec, chain_id },
            prepared: Vec::new(),
        })
    }

    #[getter]
    fn state_root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        pybytes(py, self.head.state_root().as_slice())
    }

    /// Load accounts as stored: (address, nonce, balance, code hash, storage root).
    fn put_accounts(&mut self, items: Vec<AccountTuple>) -> PyResult<()> {
        for (a, nonce, balance, code_hash, storage_root) in items {
            let record = AccountRecord {
                nonce,
                balance: word(&balance)?,
                code_hash: hash(&code_hash)?,
                storage_root: hash(&storage_root)?,
            };
            self.head.put_account(address(&a)?, Some(record));
        }
        Ok(())
    }

    /// Record addresses that do not exist (answers to account misses of a view).
    fn put_absent(&mut self, items: Vec<Vec<u8>>) -> PyResult<()> {
        for a in items {
            self.head.absent.insert(address(&a)?);
        }
        Ok(())
    }

    /// Load a contract's slots; `complete`: these are all its non-zero slots (its trie is
    /// built and checked against the account's storage root).
    fn put_storage(
        &mut self,
        account: &[u8],
        slots: Vec<(Vec<u8>, Vec<u8>)>,
        complete: bool,
    ) -> PyResult<()> {
        let account = address(account)?;
        let mut parsed = Vec::with_capacity(slots.len());
        for (slot, value) in slots {
            parsed.push((word(&slot)?, word(&value)?));
        }
        if complete {
            let storage = ContractStorage::complete(parsed);
            if let Some(record) = self.head.accounts.get(&account) {
                if storage.trie.root() != record.storage_root {
                    return Err(PyValueError::new_err(format!(
                        "storage of {account} hashes to {} but its account says {}",
                        storage.trie.root(),
                        record.storage_root
                    )));
                }
            }
            self.head.storage.insert(account, storage);
        } else {
            let storage = self.head.storage.entry(account).or_default();
            storage.slots.extend(parsed);
        }
        Ok(())
    }

    /// Load code; its hash is computed here.
    fn put_code(&mut self, items: Vec<Vec<u8>>) {
        for code in items {
            let hash = keccak256(&code);
            self.head
                .code
                .insert(hash, Bytecode::new_raw(Bytes::from(code)));
        }
    }

    fn put_block_hashes(&mut self, items: Vec<(u64, Vec<u8>)>) -> PyResult<()> {
        for (number, h) in items {
            self.head.block_hashes.insert(number, hash(&h)?);
        }
        // BLOCKHASH reaches 256 blocks back; keep a little more than that.
        if self.head.block_hashes.len() > 1024 {
            let newest = self.head.block_hashes.keys().copied().max().unwrap_or(0);
            self.head.block_hashes.retain(|n, _| n + 300 > newest);
        }
        Ok(())
    }

    /// Forget the storage of contracts not in `keep` (bounding memory; they reload on a miss).
    fn evict_storage(&mut self, keep: Vec<Vec<u8>>) -> PyResult<usize> {
        let keep: PyResult<Vec<Address>> = keep.iter().map(|a| address(a)).collect();
        let keep = keep?;
        let before = self.head.storage.len();
        self.head.storage.retain(|a, _| keep.contains(a));
        Ok(before - self.head.storage.len())
    }

    fn storage_loaded(&self) -> usize {
        self.head.storage.len()
    }

    /// Benchmark baseline: `run`'s transactions through plain revm on a copy of the head,
    /// timed inside Rust (see `exec::raw_revm_seconds`); -> seconds.
    fn raw_revm_seconds(&self, py: Python<'_>, run: PyRef<'_, Run>) -> f64 {
        let (head, rules, inner) = (&self.head, &self.rules, &run.inner);
        py.detach(|| exec::raw_revm_seconds(head, rules, &inner.env, &inner.txs))
    }

    /// Benchmark figure: `run`'s transactions as a block through this crate alone, timed inside
    /// Rust: execution over the head with blooms and receipts root, then the new state root
    /// (`exec::execute` and `exec::prepare` on a fresh run), no Python objects; -> seconds.
    fn native_block_seconds(&self, py: Python<'_>, run: PyRef<'_, Run>) -> PyResult<f64> {
        let (head, rules) = (&self.head, &self.rules);
        let mut fresh = BlockRun::new(
            run.inner.env.clone(),
            run.inner.txs.clone(),
            run.inner.skip_invalid,
            Mode::Block,
        );
        py.detach(|| {
            let started = std::time::Instant::now();
            if !matches!(
                exec::execute(head, rules, &mut fresh, &mut NoTracer),
                Stop::Done
            ) {
                return None;
            }
            // Dropped after the clock stops, as the engine keeps a prepared block.
            let prepared = exec::prepare(head, &fresh.overlay).ok()?;
            let seconds = started.elapsed().as_secs_f64();
            drop(prepared);
            Some(seconds)
        })
        .ok_or_else(|| PyValueError::new_err("the block does not run on the head alone"))
    }

    /// A run of the transactions `txs` (objects read as `tx_env` says) in `env`. One whose
    /// fields do not fit the EVM's widths is invalid: rejected, or skipped when building. `mode`:
    /// 0 a block, 1 `eth_call`s, 2 `eth_call`s without a base fee (see `exec::Mode`). `tracer`: None, `"accessList"` (each transaction's
    /// access list, see `Run.access_lists`) or `"geth"` (geth's `debug_trace*` tracer that
    /// `geth_options`, geth's tracing options as JSON, names, watching the transactions from
    /// position `traced_from` on; see `Run.geth_traces`).
    #[pyo3(signature = (
        env_tuple, txs, skip_invalid, mode = 0, tracer = None, geth_options = "{}", traced_from = 0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &self,
        py: Python<'_>,
        env_tuple: EnvTuple<'_>,
        txs: &Bound<'_, PyAny>,
        skip_invalid: bool,
        mode: u8,
        tracer: Option<&str>,
        geth_options: &str,
        traced_from: usize,
    ) -> PyResult<Run> {
        let mut parsed = Vec::with_capacity(txs.len().unwrap_or(0));
        for tx in txs.try_iter()? {
            parsed.push(match tx_env(&tx?) {
                Ok(tx) => Some(tx),
                Err(e) if e.is_instance_of::<PyOverflowError>(py) => None,
                Err(e) => return Err(e),
            });
        }
        let mode = match mode {
            0 => Mode::Block,
            1 => Mode::Call,
            2 => Mode::CallWithoutBaseFee,
            _ => return Err(PyValueError::new_err("mode must be 0, 1 or 2")),
        };
        let tracing = match tracer {
            None => Tracing::Off,
            Some("accessList") => Tracing::AccessList(AccessLists::default()),
            Some("geth") => Tracing::Geth(
                GethTraces::new(geth_options, traced_from).map_err(PyValueError::new_err)?,
            ),
            Some(other) => {
                return Err(PyValueError::new_err(format!("unknown tracer {other:?}")));
            }
        };
        Ok(Run {
            inner: BlockRun::new(env(env_tuple)?, parsed, skip_invalid, mode),
            prepared: None,
            tracing,
        })
    }

    /// Go on with `run`; -> None (done), a list of misses, or (index, reason) if rejected.
    fn execute<'py>(
        &self,
        py: Python<'py>,
        mut run: PyRefMut<'py, Run>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let head = &self.head;
        let rules = &self.rules;
        let Run { inner, tracing, .. } = &mut *run;
        let stop = py.detach(|| match tracing {
            Tracing::Off => exec::execute(head, rules, inner, &mut NoTracer),
            Tracing::AccessList(tracer) => exec::execute(head, rules, inner, tracer),
            Tracing::Geth(tracer) => exec::execute(head, rules, inner, tracer),
        });
        Ok(match stop {
            Stop::Done => py.None().into_bound(py),
            Stop::Missing(m) => misses(py, &m)?.into_any(),
            Stop::Rejected(index, why) => (index, why).into_pyobject(py)?.into_any(),
        })
    }

    /// Compute the state root after a finished run; -> the root, or a list of misses.
    fn prepare<'py>(
        &mut self,
        py: Python<'py>,
        mut run: PyRefMut<'py, Run>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let head = &self.head;
        let overlay = &run.inner.overlay;
        let result = py.detach(|| exec::prepare(head, overlay));
        match result {
            Err(m) => Ok(misses(py, &m)?.into_any()),
            Ok(prepared) => {
                let root = pybytes(py, prepared.state_root.as_slice()).into_any();
                if self.prepared.len() >= MAX_PREPARED {
                    self.prepared.remove(0);
                }
                let prepared = Arc::new(prepared);
                self.prepared.push(Arc::clone(&prepared));
                run.prepared = Some(prepared);
                Ok(root)
            }
        }
    }

    /// Make the prepared block with this state root the head.
    fn commit(&mut self, state_root: &[u8]) -> PyResult<()> {
        let root = hash(state_root)?;
        let current = self.head.state_root();
        let position = self
            .prepared
            .iter()
            .position(|p| p.state_root == root && p.base_root == current)
            .ok_or_else(|| {
                PyKeyError::new_err(format!(
                    "no executed block on the head state {current} leads to {root}"
                ))
            })?;
        let prepared = self.prepared.swap_remove(position);
        exec::install(&mut self.head, &prepared);
        self.prepared.clear();
        Ok(())
    }

    /// The head account: (nonce, balance, code hash, storage root), None if absent, or a miss.
    fn account<'py>(&self, py: Python<'py>, account: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let account = address(account)?;
        Ok(match self.head.account(&account) {
            crate::state::Lookup::Found(Some(r)) => record_tuple(py, &r)?.into_any(),
            crate::state::Lookup::Found(None) => py.None().into_bound(py),
            crate::state::Lookup::Missing(m) => misses(py, &[m])?.into_any(),
        })
    }

    /// A head slot as 32 bytes, or a list with the miss.
    fn storage<'py>(
        &self,
        py: Python<'py>,
        account: &[u8],
        slot: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let account = address(account)?;
        Ok(match self.head.slot(&account, &word(slot)?) {
            crate::state::Lookup::Found(v) => pyword(py, &v).into_any(),
            crate::state::Lookup::Missing(m) => misses(py, &[m])?.into_any(),
        })
    }

    /// Code by hash, or None if it is not loaded.
    fn code<'py>(
        &self,
        py: Python<'py>,
        code_hash: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let h = hash(code_hash)?;
        if h == revm::primitives::KECCAK_EMPTY {
            return Ok(Some(pybytes(py, b"")));
        }
        Ok(self
            .head
            .code
            .get(&h)
            .map(|c| pybytes(py, c.original_byte_slice())))
    }

    /// EIP-1186 proofs at the head: (account proof, [(slot, value, proof)]); storage of the
    /// account must be loaded when slots are asked for (else a list with the miss).
    fn proof<'py>(
        &self,
        py: Python<'py>,
        account: &[u8],
        slots: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let account = address(account)?;
        let nodes = |proof: Vec<Vec<u8>>| -> PyResult<Bound<'py, PyList>> {
            PyList::new(py, proof.iter().map(|n| pybytes(py, n)))
        };
        let account_proof = nodes(self.head.account_trie.proof(&keccak256(account)))?;
        let record = self.head.accounts.get(&account);
        let empty = ContractStorage::complete([]);
        let storage = match record {
            Some(r) if r.storage_root != crate::trie::EMPTY_ROOT => {
                match self.head.storage.get(&account) {
                    Some(s) if s.complete => s,
                    _ => return Ok(misses(py, &[Miss::Storage(account, None)])?.into_any()),
                }
            }
            _ => &empty,
        };
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            let key = word(&slot)?;
            let value = storage.slots.get(&key).copied().unwrap_or_default();
            let proof = nodes(storage.trie.proof(&keccak256(key.to_be_bytes::<32>())))?;
            out.push((pyword(py, &key), pyword(py, &value), proof).into_pyobject(py)?);
        }
        Ok((account_proof, PyList::new(py, out)?)
            .into_pyobject(py)?
            .into_any())
    }
}

#[pymethods]
impl Run {
    /// A dev chain's state edit (`anvil_setBalance`, `anvil_setCode`, ...): write these
    /// accounts `(address, nonce, balance word, code hash)`, slots `(address, slot word, value
    /// word)` and `code` into the run's overlay before it executes, as a transaction would
    /// have; a run without transactions is then the edit alone, its root and diff as a
    /// block's.
    fn edit(
        &mut self,
        accounts: Vec<EditedAccount>,
        storage: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
        code: Vec<Vec<u8>>,
    ) -> PyResult<()> {
        if self.inner.next > 0 {
            return Err(PyValueError::new_err("a run is edited before it executes"));
        }
        let overlay = &mut self.inner.overlay;
        for code in code {
            let hash = keccak256(&code);
            overlay
                .code
                .insert(hash, Bytecode::new_raw(Bytes::from(code)));
        }
        for (a, nonce, balance, code_hash) in accounts {
            let info = AccountInfo {
                balance: word(&balance)?,
                nonce,
                code_hash: hash(&code_hash)?,
                ..Default::default()
            };
            overlay.accounts.insert(address(&a)?, Some(info));
        }
        for (a, slot, value) in storage {
            overlay
                .storage
                .entry(address(&a)?)
                .or_default()
                .insert(word(&slot)?, word(&value)?);
        }
        Ok(())
    }

    /// The positions in the block's transaction list that were applied so far (for resuming).
    #[getter]
    fn next(&self) -> usize {
        self.inner.next
    }

    /// -> (gas used, outcomes, skipped, receipts root, logs bloom), the root and bloom None
    /// for `eth_call`s. Outcomes are columns, one item per included transaction: (positions,
    /// statuses 1 | 0, gas used, cumulative gas, effective gas prices, logs, contract
    /// addresses | None, outputs, errors | None, logs blooms), each log built by
    /// `log(address, (topics), data)` and a transaction's logs a tuple; skipped as
    /// [(position, reason)].
    fn result<'py>(
        &self,
        py: Python<'py>,
        log: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let outcomes = &self.inner.outcomes;
        let column = |item: &dyn Fn(&TxOutcome) -> PyResult<Bound<'py, PyAny>>| {
            let items: PyResult<Vec<_>> = outcomes.iter().map(|(_, o)| item(o)).collect();
            PyList::new(py, items?)
        };
        let positions = PyList::new(py, outcomes.iter().map(|(p, _)| *p))?;
        let statuses = PyList::new(py, outcomes.iter().map(|(_, o)| u8::from(o.status)))?;
        let gas_used = PyList::new(py, outcomes.iter().map(|(_, o)| o.gas_used))?;
        let cumulative = PyList::new(py, outcomes.iter().map(|(_, o)| o.cumulative_gas_used))?;
        let prices = PyList::new(py, outcomes.iter().map(|(_, o)| o.effective_gas_price))?;
        let logs = column(&|o| {
            let mut logs = Vec::with_capacity(o.logs.len());
            for entry in &o.logs {
                let topics = PyTuple::new(
                    py,
                    entry
                        .data
                        .topics()
                        .iter()
                        .map(|t| pybytes(py, t.as_slice())),
                )?;
                let address = pybytes(py, entry.address.as_slice());
                logs.push(log.call1((address, topics, pybytes(py, &entry.data.data)))?);
            }
            Ok(PyTuple::new(py, logs)?.into_any())
        })?;
        let created = column(&|o| {
            Ok(o.contract_address
                .map(|a| pybytes(py, a.as_slice()))
                .into_pyobject(py)?)
        })?;
        let outputs = column(&|o| Ok(pybytes(py, &o.output).into_any()))?;
        let errors = column(&|o| Ok(o.error.as_deref().into_pyobject(py)?))?;
        // Receipts without logs (plain transfers) share the empty bloom.
        let empty_bloom = pybytes(py, Bloom::ZERO.as_slice());
        let blooms = column(&|o| {
            Ok(if o.bloom == Bloom::ZERO {
                empty_bloom.clone()
            } else {
                pybytes(py, o.bloom.as_slice())
            }
            .into_any())
        })?;
        let columns = (
            positions, statuses, gas_used, cumulative, prices, logs, created, outputs, errors,
            blooms,
        );
        let run = &self.inner;
        let skipped = PyList::new(py, run.skipped.iter().map(|(p, r)| (*p, r.as_str())))?;
        let (receipts_root, logs_bloom) = match &run.commitment {
            Some((root, bloom)) => (
                Some(pybytes(py, root.as_slice())),
                Some(pybytes(py, bloom.as_slice())),
            ),
            None => (None, None),
        };
        (run.gas_used, columns, skipped, receipts_root, logs_bloom).into_pyobject(py)
    }

    /// What the `"accessList"` tracer found: (position, [(address, [slot])]) per finished
    /// transaction, sorted by address and slot.
    fn access_lists<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let Tracing::AccessList(tracer) = &self.tracing else {
            return Err(PyValueError::new_err(
                "the run is not traced for access lists",
            ));
        };
        let mut out = Vec::with_capacity(tracer.found.len());
        for (position, list) in &tracer.found {
            let mut items = Vec::with_capacity(list.0.len());
            for item in &list.0 {
                let keys = PyList::new(
                    py,
                    item.storage_keys.iter().map(|k| pybytes(py, k.as_slice())),
                )?;
                items.push((pybytes(py, item.address.as_slice()), keys));
            }
            out.push((*position, PyList::new(py, items)?));
        }
        PyList::new(py, out)
    }

    /// What the `"geth"` tracer found: (position, the trace as geth's JSON text) per finished
    /// transaction from the first traced on.
    fn geth_traces(&self) -> PyResult<Vec<(usize, String)>> {
        let Tracing::Geth(tracer) = &self.tracing else {
            return Err(PyValueError::new_err(
                "the run is not traced by a geth tracer",
            ));
        };
        Ok(tracer.found.clone())
    }

    /// The state changes of the prepared block: (accounts, previous, storage, code), accounts
    /// and previous as {address: account | None} (the new and the former record, built by
    /// `account(nonce, balance, code hash, storage root)`), storage as [(address, wiped,
    /// ((slot, new, previous), ...))] with words as ints, code as a tuple of code bytes (their
    /// hashes are keccak of them).
    fn changes<'py>(
        &self,
        py: Python<'py>,
        account: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let prepared = self
            .prepared
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("the run is not prepared"))?;
        // Hashes most accounts share: one object each.
        let empty_code = pybytes(py, KECCAK_EMPTY.as_slice());
        let empty_root = pybytes(py, crate::trie::EMPTY_ROOT.as_slice());
        let hash = |h: &B256, shared: Option<(&B256, &Bound<'py, PyBytes>)>| match shared {
            Some((s, object)) if s == h => object.clone(),
            _ if *h == KECCAK_EMPTY => empty_code.clone(),
            _ if *h == crate::trie::EMPTY_ROOT => empty_root.clone(),
            _ => pybytes(py, h.as_slice()),
        };
        let accounts = PyDict::new(py);
        let previous = PyDict::new(py);
        for (a, new, old) in &prepared.accounts {
            let address = pybytes(py, a.as_slice());
            let mut code_hash: Option<(&B256, Bound<'py, PyBytes>)> = None;
            let mut storage_root: Option<(&B256, Bound<'py, PyBytes>)> = None;
            for (record, target) in [(new, &accounts), (old, &previous)] {
                let Some(r) = record else {
                    target.set_item(&address, py.None())?;
                    continue;
                };
                let c = hash(&r.code_hash, code_hash.as_ref().map(|(h, o)| (*h, o)));
                let s = hash(&r.storage_root, storage_root.as_ref().map(|(h, o)| (*h, o)));
                let value = account.call1((r.nonce, pyint(py, &r.balance)?, &c, &s))?;
                target.set_item(&address, value)?;
                code_hash = Some((&r.code_hash, c));
                storage_root = Some((&r.storage_root, s));
            }
        }
        let mut storage = Vec::with_capacity(prepared.storage.len());
        for (a, wiped, slots) in &prepared.storage {
            let mut items = Vec::with_capacity(slots.len());
            for (slot, new, old) in slots {
                items.push((pyint(py, slot)?, pyint(py, new)?, pyint(py, old)?).into_pyobject(py)?);
            }
            storage.push((pybytes(py, a.as_slice()), *wiped, PyTuple::new(py, items)?));
        }
        let code = PyTuple::new(
            py,
            prepared
                .code
                .iter()
                .map(|(_, c)| pybytes(py, c.original_byte_slice())),
        )?;
        (accounts, previous, PyList::new(py, storage)?, code).into_pyobject(py)
    }
}

/// The storage root of a contract holding these (slot, value) words.
#[pyfunction]
fn storage_root<'py>(
    py: Python<'py>,
    slots: Vec<(Vec<u8>, Vec<u8>)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut parsed = Vec::with_capacity(slots.len());
    for (slot, value) in slots {
        parsed.push((word(&slot)?, word(&value)?));
    }
    Ok(pybytes(
        py,
        ContractStorage::complete(parsed).trie.root().as_slice(),
    ))
}

/// Check geth's tracing `options` (JSON) as `Engine.begin` would take them for its `"geth"`
/// tracer: ValueError saying why if it would refuse them.
#[pyfunction]
fn check_geth_options(options: &str) -> PyResult<()> {
    GethTraces::new(options, 0).map_err(PyValueError::new_err)?;
    Ok(())
}

#[pymodule]
fn evm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(storage_root, m)?)?;
    m.add_function(wrap_pyfunction!(check_geth_options, m)?)?;
    m.add_class::<Engine>()?;
    m.add_class::<Run>()?;
    m.add(
        "EMPTY_ROOT",
        PyBytes::new(m.py(), crate::trie::EMPTY_ROOT.as_slice()),
    )?;
    Ok(())
}
