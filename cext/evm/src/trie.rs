//! Ethereum's Merkle-Patricia trie over fixed-length (32-byte, secure) keys, in memory.
//!
//! Nodes are shared (`Arc`) and copied on write, so a clone of a [`Trie`] is O(1) and keeps the
//! old version: the engine updates a copy while executing a block and installs it on commit,
//! leaving the head untouched if the block is dropped. Each node caches its reference (its RLP
//! when shorter than 32 bytes, else the Keccak-256 of it); an update clears the caches on its
//! path only, so a block rehashes O(touched keys x depth) nodes. Keys are Keccak-256 of an
//! address or slot, so every key has 64 nibbles and no key is a prefix of another: branches
//! never carry values. Encoding as the Yellow Paper, appendix D.

use revm::primitives::{keccak256, B256};
use std::sync::{Arc, OnceLock};

/// Root of the empty trie: `keccak256(rlp(""))`.
pub const EMPTY_ROOT: B256 = B256::new([
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
]);

/// How a parent refers to a node: inline (RLP < 32 bytes) or by hash.
#[derive(Clone, Debug)]
enum NodeRef {
    Inline(Vec<u8>),
    Hash(B256),
}

#[derive(Clone, Debug)]
enum Node {
    Leaf {
        path: Vec<u8>,
        value: Vec<u8>,
        cache: OnceLock<NodeRef>,
    },
    Extension {
        path: Vec<u8>,
        child: Arc<Node>,
        cache: OnceLock<NodeRef>,
    },
    Branch {
        children: Box<[Option<Arc<Node>>; 16]>,
        cache: OnceLock<NodeRef>,
    },
}

fn leaf(path: &[u8], value: Vec<u8>) -> Arc<Node> {
    Arc::new(Node::Leaf {
        path: path.to_vec(),
        value,
        cache: OnceLock::new(),
    })
}

fn extension(path: Vec<u8>, child: Arc<Node>) -> Arc<Node> {
    if path.is_empty() {
        return child;
    }
    Arc::new(Node::Extension {
        path,
        child,
        cache: OnceLock::new(),
    })
}

fn empty_children() -> Box<[Option<Arc<Node>>; 16]> {
    Box::default()
}

/// A node with `prefix` prepended to its path (a branch becomes an extension's child).
fn prefixed(prefix: &[u8], node: Arc<Node>) -> Arc<Node> {
    match &*node {
        Node::Leaf { path, value, .. } => {
            let mut full = prefix.to_vec();
            full.extend_from_slice(path);
            leaf(&full, value.clone())
        }
        Node::Extension { path, child, .. } => {
            let mut full = prefix.to_vec();
            full.extend_from_slice(path);
            extension(full, child.clone())
        }
        Node::Branch { .. } => extension(prefix.to_vec(), node),
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn nibbles(key: &B256) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, byte) in key.iter().enumerate() {
        out[2 * i] = byte >> 4;
        out[2 * i + 1] = byte & 0x0f;
    }
    out
}

impl Node {
    fn clear_cache(&mut self) {
        match self {
            Node::Leaf { cache, .. }
            | Node::Extension { cache, .. }
            | Node::Branch { cache, .. } => *cache = OnceLock::new(),
        }
    }

    /// The node's RLP, written in one allocation (payload length first).
    fn encode(&self) -> Vec<u8> {
        match self {
            Node::Leaf { path, value, .. } => {
                let (prefix, length) = hex_prefix(path, true);
                let prefix = &prefix[..length];
                let payload = rlp_bytes_len(prefix) + rlp_bytes_len(value);
                let mut out = Vec::with_capacity(rlp_header_len(payload) + payload);
                rlp_list_header(&mut out, payload);
                rlp_bytes(&mut out, prefix);
                rlp_bytes(&mut out, value);
                out
            }
            Node::Extension { path, child, .. } => {
                let (prefix, length) = hex_prefix(path, false);
                let prefix = &prefix[..length];
                let child = child.reference();
                let payload = rlp_bytes_len(prefix) + child.len();
                let mut out = Vec::with_capacity(rlp_header_len(payload) + payload);
                rlp_list_header(&mut out, payload);
                rlp_bytes(&mut out, prefix);
                child.append_to(&mut out);
                out
            }
            Node::Branch { children, .. } => {
                // 17 items: the children's references (0x80 for none) and an empty value.
                let payload = 1 + children
                    .iter()
                    .map(|c| c.as_ref().map_or(1, |node| node.reference().len()))
                    .sum::<usize>();
                let mut out = Vec::with_capacity(rlp_header_len(payload) + payload);
                rlp_list_header(&mut out, payload);
                for child in children.iter() {
                    match child {
                        Some(node) => node.reference().append_to(&mut out),
                        None => out.push(0x80),
                    }
                }
                out.push(0x80);
                out
            }
        }
    }

    fn reference(&self) -> &NodeRef {
        let cache = match self {
            Node::Leaf { cache, .. }
            | Node::Extension { cache, .. }
            | Node::Branch { cache, .. } => cache,
        };
        cache.get_or_init(|| {
            let encoded = self.encode();
            if encoded.len() < 32 {
                NodeRef::Inline(encoded)
            } else {
                NodeRef::Hash(keccak256(&encoded))
            }
        })
    }
}

impl NodeRef {
    /// The length of the reference as it is embedded in its parent.
    fn len(&self) -> usize {
        match self {
            NodeRef::Inline(encoded) => encoded.len(),
            NodeRef::Hash(_) => 33,
        }
    }

    fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            NodeRef::Inline(encoded) => out.extend_from_slice(encoded),
            NodeRef::Hash(hash) => {
                out.push(0xa0);
                out.extend_from_slice(hash.as_slice());
            }
        }
    }
}

fn insert(slot: &mut Option<Arc<Node>>, key: &[u8], value: Vec<u8>) {
    let Some(arc) = slot else {
        *slot = Some(leaf(key, value));
        return;
    };
    if let Node::Leaf { path, .. } = &**arc {
        if path.as_slice() == key {
            // A new leaf, not a copy of the old one whose value would be replaced anyway.
            *slot = Some(leaf(key, value));
            return;
        }
    }
    let node = Arc::make_mut(arc);
    node.clear_cache();
    match node {
        Node::Leaf {
            path, value: old, ..
        } => {
            let shared = common_prefix(path, key);
            let mut children = empty_children();
            children[path[shared] as usize] = Some(leaf(&path[shared + 1..], std::mem::take(old)));
            children[key[shared] as usize] = Some(leaf(&key[shared + 1..], value));
            let branch = Arc::new(Node::Branch {
                children,
                cache: OnceLock::new(),
            });
            *slot = Some(extension(key[..shared].to_vec(), branch));
        }
        Node::Extension { path, child, .. } => {
            let shared = common_prefix(path, key);
            if shared == path.len() {
                let mut inner = Some(child.clone());
                insert(&mut inner, &key[shared..], value);
                *child = inner.expect("insert leaves a node");
                return;
            }
            // Split: a branch at the first differing nibble, the old extension's rest below it.
            let mut children = empty_children();
            let rest = extension(path[shared + 1..].to_vec(), child.clone());
            children[path[shared] as usize] = Some(rest);
            children[key[shared] as usize] = Some(leaf(&key[shared + 1..], value));
            let branch = Arc::new(Node::Branch {
                children,
                cache: OnceLock::new(),
            });
            *slot = Some(extension(key[..shared].to_vec(), branch));
        }
        Node::Branch { children, .. } => insert(&mut children[key[0] as usize], &key[1..], value),
    }
}

/// Remove `key`; returns whether anything changed (nodes are copied only if so).
fn remove(slot: &mut Option<Arc<Node>>, key: &[u8]) -> bool {
    let Some(arc) = slot else { return false };
    match &**arc {
        Node::Leaf { path, .. } => {
            if path.as_slice() != key {
                return false;
            }
            *slot = None;
            true
        }
        Node::Extension { path, child, .. } => {
            if !key.starts_with(path) {
                return false;
            }
            let mut inner = Some(child.clone());
            if !remove(&mut inner, &key[path.len()..]) {
                return false;
            }
            // An extension's child is a branch with two or more children, so it cannot vanish;
            // it may have collapsed into a leaf or extension, which absorbs this path.
            let path = path.clone();
            *slot = inner.map(|node| prefixed(&path, node));
            true
        }
        Node::Branch { children, .. } => {
            let index = key[0] as usize;
            let mut inner = children[index].clone();
            if !remove(&mut inner, &key[1..]) {
                return false;
            }
            let node = Arc::make_mut(arc);
            node.clear_cache();
            let Node::Branch { children, .. } = node else {
                unreachable!()
            };
            children[index] = inner;
            let mut remaining = children.iter().enumerate().filter(|(_, c)| c.is_some());
            let (first, only) = match (remaining.next(), remaining.next()) {
                (Some((i, c)), None) => (i as u8, c.clone().expect("filtered")),
                _ => return true,
            };
            *slot = Some(prefixed(&[first], only));
            true
        }
    }
}

/// A secure Merkle-Patricia trie: 32-byte keys (already hashed) to non-empty values.
#[derive(Clone, Debug, Default)]
pub struct Trie {
    root: Option<Arc<Node>>,
}

impl Trie {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `key` to `value`; an empty value removes the key (Ethereum's rule).
    pub fn set(&mut self, key: &B256, value: Vec<u8>) {
        let path = nibbles(key);
        if value.is_empty() {
            remove(&mut self.root, &path);
        } else {
            insert(&mut self.root, &path, value);
        }
    }

    /// Set many keys (as [`Trie::set`], a later entry for the same key winning), in key order
    /// so that consecutive updates share the path they copy and walk.
    pub fn set_all(&mut self, mut entries: Vec<(B256, Vec<u8>)>) {
        entries.sort_by_key(|e| e.0);
        for (key, value) in entries {
            self.set(&key, value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The root hash (computing only the nodes changed since it was last asked for).
    pub fn root(&self) -> B256 {
        match &self.root {
            None => EMPTY_ROOT,
            Some(node) => match node.reference() {
                NodeRef::Hash(hash) => *hash,
                NodeRef::Inline(encoded) => keccak256(encoded),
            },
        }
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &B256) -> Option<&[u8]> {
        let path = nibbles(key);
        let mut rest: &[u8] = &path;
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf { path, value, .. } => {
                    return (path.as_slice() == rest).then_some(value.as_slice());
                }
                Node::Extension { path, child, .. } => {
                    rest = rest.strip_prefix(path.as_slice())?;
                    node = child;
                }
                Node::Branch { children, .. } => {
                    node = children[rest[0] as usize].as_deref()?;
                    rest = &rest[1..];
                }
            }
        }
    }

    /// EIP-1186 proof of `key`: the RLP of every node on its path, root first, as geth gives it
    /// (a node embedded in its parent, RLP under 32 bytes, is not listed on its own).
    pub fn proof(&self, key: &B256) -> Vec<Vec<u8>> {
        let path = nibbles(key);
        let mut rest: &[u8] = &path;
        let mut out = Vec::new();
        let mut next = self.root.as_deref();
        while let Some(node) = next {
            let encoded = node.encode();
            if out.is_empty() || encoded.len() >= 32 {
                out.push(encoded);
            }
            next = match node {
                Node::Leaf { .. } => None,
                Node::Extension { path, child, .. } => match rest.strip_prefix(path.as_slice()) {
                    Some(tail) => {
                        rest = tail;
                        Some(child)
                    }
                    None => None,
                },
                Node::Branch { children, .. } => {
                    let child = children[rest[0] as usize].as_deref();
                    rest = &rest[1..];
                    child
                }
            };
        }
        out
    }
}

/// Hex-prefix (compact) encoding of a nibble path (Yellow Paper, appendix C), with its length:
/// a path has at most 64 nibbles, so it fits 33 bytes.
fn hex_prefix(path: &[u8], is_leaf: bool) -> ([u8; 33], usize) {
    let flag = if is_leaf { 2u8 } else { 0 };
    let mut out = [0u8; 33];
    let rest = if path.len() % 2 == 1 {
        out[0] = ((flag + 1) << 4) | path[0];
        &path[1..]
    } else {
        out[0] = flag << 4;
        path
    };
    for (i, pair) in rest.chunks(2).enumerate() {
        out[1 + i] = (pair[0] << 4) | pair[1];
    }
    (out, 1 + rest.len() / 2)
}

/// Append the RLP string encoding of `bytes`.
pub fn rlp_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        out.push(bytes[0]);
    } else {
        rlp_header(out, bytes.len(), 0x80);
        out.extend_from_slice(bytes);
    }
}

/// The length of the RLP string encoding of `bytes`.
pub fn rlp_bytes_len(bytes: &[u8]) -> usize {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        1
    } else {
        rlp_header_len(bytes.len()) + bytes.len()
    }
}

/// The length of the RLP header of a string or list whose payload is `length` bytes.
pub fn rlp_header_len(length: usize) -> usize {
    if length < 56 {
        1
    } else {
        1 + (usize::BITS - length.leading_zeros()).div_ceil(8) as usize
    }
}

/// Append the RLP header of a list whose payload is `length` bytes.
pub fn rlp_list_header(out: &mut Vec<u8>, length: usize) {
    rlp_header(out, length, 0xc0);
}

fn rlp_header(out: &mut Vec<u8>, length: usize, base: u8) {
    if length < 56 {
        out.push(base + length as u8);
    } else {
        let be = length.to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(base + 55 + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// The minimal big-endian bytes of an integer (what RLP encodes for it).
pub fn trimmed(word: &[u8]) -> &[u8] {
    let skip = word.iter().take_while(|b| **b == 0).count();
    &word[skip..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::{HashBuilder, Nibbles};
    use std::collections::BTreeMap;

    /// The reference: alloy-trie's HashBuilder (reth's), fed every leaf in key order.
    fn reference_root(entries: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut builder = HashBuilder::default();
        for (key, value) in entries {
            builder.add_leaf(Nibbles::unpack(key), value);
        }
        builder.root()
    }

    fn key(i: u64) -> B256 {
        keccak256(i.to_be_bytes())
    }

    #[test]
    fn empty_root_is_keccak_of_empty_string() {
        assert_eq!(Trie::new().root(), keccak256([0x80u8]));
        assert_eq!(EMPTY_ROOT, keccak256([0x80u8]));
    }

    #[test]
    fn matches_reference_through_inserts_updates_and_removals() {
        let mut trie = Trie::new();
        let mut model = BTreeMap::new();
        let mut seed = 7u64;
        for step in 0..3000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = key(seed % 500);
            if seed.is_multiple_of(5) {
                trie.set(&k, Vec::new());
                model.remove(&k);
            } else {
                // Short values exercise inline (< 32 byte) nodes, long ones hashed nodes.
                let value = vec![(step % 251) as u8 + 1; 1 + (seed % 40) as usize];
                trie.set(&k, value.clone());
                model.insert(k, value);
            }
            if step % 97 == 0 {
                assert_eq!(trie.root(), reference_root(&model), "step {step}");
            }
        }
        assert_eq!(trie.root(), reference_root(&model));
        for (k, v) in &model {
            assert_eq!(trie.get(k), Some(v.as_slice()));
        }
        for k in model.keys().cloned().collect::<Vec<_>>() {
            trie.set(&k, Vec::new());
        }
        assert!(trie.is_empty());
        assert_eq!(trie.root(), EMPTY_ROOT);
    }

    #[test]
    fn set_all_is_the_same_as_setting_one_by_one() {
        let mut one_by_one = Trie::new();
        let mut entries = Vec::new();
        for i in 0..300u64 {
            // Some updates of existing keys, some removals (empty values).
            let value = if i % 7 == 0 {
                Vec::new()
            } else {
                vec![i as u8 + 1; 1 + (i % 40) as usize]
            };
            entries.push((key(i % 200), value));
        }
        for i in 0..200 {
            one_by_one.set(&key(i), vec![9; 33]);
        }
        let mut all = one_by_one.clone();
        for (k, v) in &entries {
            one_by_one.set(k, v.clone());
        }
        // Later entries for a key win in set_all too (a stable sort keeps their order).
        all.set_all(entries);
        assert_eq!(all.root(), one_by_one.root());
    }

    #[test]
    fn clones_are_independent_versions() {
        let mut head = Trie::new();
        for i in 0..100 {
            head.set(&key(i), vec![1, 2, 3]);
        }
        let before = head.root();
        let mut next = head.clone();
        next.set(&key(5), vec![9; 40]);
        next.set(&key(6), Vec::new());
        assert_eq!(head.root(), before);
        assert_ne!(next.root(), before);
    }

    #[test]
    fn proof_walks_root_to_leaf() {
        let mut trie = Trie::new();
        for i in 0..1000 {
            trie.set(&key(i), vec![0x42; 33]);
        }
        let proof = trie.proof(&key(17));
        assert_eq!(keccak256(&proof[0]), trie.root());
        for pair in proof.windows(2) {
            let child_hash = keccak256(&pair[1]);
            assert!(pair[0].windows(32).any(|w| w == child_hash.as_slice()));
        }
    }
}
