//! The engine's state: the head (accounts, storage, code, their tries) and a block's overlay.
//!
//! The head is a cache of the stored state that the Python side fills: all accounts (the
//! account trie needs every leaf), the storage of each contract that was touched since start
//! (loaded whole, so its storage trie can be rehashed), and code by hash. What the head does
//! not hold is a *miss*: execution records it, answers a default to keep going (so one pass
//! finds many misses), and the transaction is re-run once the Python side has loaded them in
//! one batch. A view that is not the head (a historical read) starts empty and misses every
//! account and slot instead.

use crate::trie::{
    rlp_bytes, rlp_bytes_len, rlp_header_len, rlp_list_header, trimmed, Trie, EMPTY_ROOT,
};
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, Database};
use revm::primitives::{keccak256, Address, HashMap, HashSet, B256, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;
use std::fmt;

/// An account as the state trie commits to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
    pub storage_root: B256,
}

impl AccountRecord {
    /// `rlp([nonce, balance, storageRoot, codeHash])`, the account trie's leaf value.
    pub fn encode(&self) -> Vec<u8> {
        let nonce = self.nonce.to_be_bytes();
        let nonce = trimmed(&nonce);
        let balance = self.balance.to_be_bytes::<32>();
        let balance = trimmed(&balance);
        // The two hashes encode in 33 bytes each.
        let payload = rlp_bytes_len(nonce) + rlp_bytes_len(balance) + 66;
        let mut out = Vec::with_capacity(rlp_header_len(payload) + payload);
        rlp_list_header(&mut out, payload);
        rlp_bytes(&mut out, nonce);
        rlp_bytes(&mut out, balance);
        rlp_bytes(&mut out, self.storage_root.as_slice());
        rlp_bytes(&mut out, self.code_hash.as_slice());
        out
    }

    pub fn info(&self) -> AccountInfo {
        AccountInfo::new(
            self.balance,
            self.nonce,
            self.code_hash,
            Bytecode::default(),
        )
        .without_code()
    }
}

/// A storage slot value as the storage trie commits to it: `rlp(trimmed value)`; empty for 0.
pub fn encode_slot(value: &U256) -> Vec<u8> {
    if value.is_zero() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(33);
    rlp_bytes(&mut out, trimmed(&value.to_be_bytes::<32>()));
    out
}

/// The slots of one contract and their trie. `complete`: every non-zero slot is here (a head
/// contract, loaded whole); otherwise (a historical view) a slot not here is a miss.
#[derive(Clone, Debug, Default)]
pub struct ContractStorage {
    pub slots: HashMap<U256, U256>,
    pub trie: Trie,
    pub complete: bool,
}

impl ContractStorage {
    pub fn complete(slots: impl IntoIterator<Item = (U256, U256)>) -> Self {
        let mut storage = ContractStorage {
            complete: true,
            ..Default::default()
        };
        for (slot, value) in slots {
            storage.set(slot, value);
        }
        storage
    }

    pub fn set(&mut self, slot: U256, value: U256) {
        if self.complete {
            self.trie
                .set(&keccak256(slot.to_be_bytes::<32>()), encode_slot(&value));
        }
        if value.is_zero() {
            self.slots.remove(&slot);
        } else {
            self.slots.insert(slot, value);
        }
    }
}

/// What execution needed and the head did not hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Miss {
    Account(Address),
    /// All of a contract's storage (head), or one slot (a view that is not the head).
    Storage(Address, Option<U256>),
    Code(B256),
    BlockHash(u64),
}

/// A state the EVM reads: the head, or a view at an older block.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub accounts: HashMap<Address, AccountRecord>,
    /// Addresses known not to exist (only meaningful when `accounts_complete` is false).
    pub absent: HashSet<Address>,
    pub accounts_complete: bool,
    pub account_trie: Trie,
    pub storage: HashMap<Address, ContractStorage>,
    pub code: HashMap<B256, Bytecode>,
    pub block_hashes: HashMap<u64, B256>,
}

pub enum Lookup<T> {
    Found(T),
    Missing(Miss),
}

impl Head {
    /// The head of a node: every account is here, so an unknown one does not exist.
    pub fn complete() -> Self {
        Head {
            accounts_complete: true,
            ..Default::default()
        }
    }

    pub fn account(&self, address: &Address) -> Lookup<Option<AccountRecord>> {
        match self.accounts.get(address) {
            Some(record) => Lookup::Found(Some(*record)),
            None if self.accounts_complete || self.absent.contains(address) => Lookup::Found(None),
            None => Lookup::Missing(Miss::Account(*address)),
        }
    }

    pub fn slot(&self, address: &Address, slot: &U256) -> Lookup<U256> {
        if let Some(storage) = self.storage.get(address) {
            if let Some(value) = storage.slots.get(slot) {
                return Lookup::Found(*value);
            }
            if storage.complete {
                return Lookup::Found(U256::ZERO);
            }
        }
        match self.account(address) {
            Lookup::Missing(miss) => Lookup::Missing(miss),
            Lookup::Found(None) => Lookup::Found(U256::ZERO),
            Lookup::Found(Some(record)) if record.storage_root == EMPTY_ROOT => {
                Lookup::Found(U256::ZERO)
            }
            Lookup::Found(Some(_)) if self.accounts_complete => {
                Lookup::Missing(Miss::Storage(*address, None))
            }
            Lookup::Found(Some(_)) => Lookup::Missing(Miss::Storage(*address, Some(*slot))),
        }
    }

    /// Set (or with `None` delete) an account, keeping the account trie in step.
    pub fn put_account(&mut self, address: Address, record: Option<AccountRecord>) {
        let key = keccak256(address);
        match record {
            Some(record) => {
                self.account_trie.set(&key, record.encode());
                self.accounts.insert(address, record);
            }
            None => {
                self.account_trie.set(&key, Vec::new());
                self.accounts.remove(&address);
            }
        }
    }

    pub fn state_root(&self) -> B256 {
        self.account_trie.root()
    }
}

/// One block's writes over the head, transaction by transaction.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    /// Changed accounts; `None`: deleted (self-destructed, or touched and empty per EIP-161).
    pub accounts: HashMap<Address, Option<AccountInfo>>,
    /// Accounts whose storage was cleared in this block (destroyed, or created anew) before
    /// the slots in `storage` were written.
    pub wiped: HashSet<Address>,
    /// Changed slots (present values).
    pub storage: HashMap<Address, HashMap<U256, U256>>,
    pub code: HashMap<B256, Bytecode>,
}

/// Never raised (it has no value): a miss is recorded and answered with a default instead
/// (see the module doc).
#[derive(Debug)]
pub enum NoError {}

impl fmt::Display for NoError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for NoError {}
impl DBErrorMarker for NoError {}

/// The EVM's database: the overlay, then the head; misses are collected in `misses`.
pub struct OverlayDb<'a> {
    pub head: &'a Head,
    pub overlay: Overlay,
    pub misses: Vec<Miss>,
    /// Accounts shown to revm with nonce 1 instead of 0 (see [`OverlayDb::guard`]).
    pub guarded: HashSet<Address>,
}

impl<'a> OverlayDb<'a> {
    pub fn new(head: &'a Head, overlay: Overlay) -> Self {
        OverlayDb {
            head,
            overlay,
            misses: Vec::new(),
            guarded: HashSet::default(),
        }
    }

    /// EIP-7610: creating a contract where an account has storage (but no code and nonce 0)
    /// is a collision. revm checks only code and nonce, so such an account is shown with nonce
    /// 1, which the EVM cannot observe otherwise (no opcode reads a nonce, and the account has
    /// no code to CREATE from); [`crate::exec`] takes the 1 back before committing.
    fn guard(&mut self, address: Address, info: &mut AccountInfo) {
        if info.nonce != 0 || info.code_hash != KECCAK_EMPTY {
            return;
        }
        let has_storage = match self.overlay.storage.get(&address) {
            Some(slots) if slots.values().any(|v| !v.is_zero()) => true,
            _ if self.overlay.wiped.contains(&address) => false,
            _ => self
                .head
                .accounts
                .get(&address)
                .is_some_and(|r| r.storage_root != EMPTY_ROOT),
        };
        if has_storage {
            info.nonce = 1;
            self.guarded.insert(address);
        }
    }

    fn missed(&mut self, miss: Miss) {
        if !self.misses.contains(&miss) {
            self.misses.push(miss);
        }
    }
}

impl Database for OverlayDb<'_> {
    type Error = NoError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, NoError> {
        let mut info = match self.overlay.accounts.get(&address) {
            Some(changed) => changed.clone().map(|info| info.without_code()),
            None => match self.head.account(&address) {
                Lookup::Found(record) => record.map(|r| r.info()),
                Lookup::Missing(miss) => {
                    self.missed(miss);
                    None
                }
            },
        };
        if let Some(info) = info.as_mut() {
            self.guard(address, info);
        }
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, NoError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        if let Some(code) = self
            .overlay
            .code
            .get(&code_hash)
            .or(self.head.code.get(&code_hash))
        {
            return Ok(code.clone());
        }
        self.missed(Miss::Code(code_hash));
        Ok(Bytecode::default())
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, NoError> {
        if let Some(value) = self
            .overlay
            .storage
            .get(&address)
            .and_then(|s| s.get(&index))
        {
            return Ok(*value);
        }
        if self.overlay.wiped.contains(&address) {
            return Ok(U256::ZERO);
        }
        match self.head.slot(&address, &index) {
            Lookup::Found(value) => Ok(value),
            Lookup::Missing(miss) => {
                self.missed(miss);
                Ok(U256::ZERO)
            }
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, NoError> {
        match self.head.block_hashes.get(&number) {
            Some(hash) => Ok(*hash),
            None => {
                self.missed(Miss::BlockHash(number));
                Ok(B256::ZERO)
            }
        }
    }
}
