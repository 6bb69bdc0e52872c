//! The persisted, immutable index of a block.
//!
//! Written once by [`BlockWriter`], read through a memory map (or from bytes) by
//! [`BlockIndex`], which answers every [`IndexReader`] call without loading the file: a query
//! touches the symbol table, the value table of each label it names and the postings lists it
//! needs. The design follows Prometheus' TSDB index format (`tsdb/docs/format/index.md`):
//! strings stored once in a sorted symbol table and referenced by number, series entries that
//! carry their labels as symbol references plus the chunk references of the block, one postings
//! list per label pair, and per label name a table of its values.
//!
//! # Byte layout (format version 1; integers little-endian)
//!
//! ```text
//! offset 0
//! ┌──────────────────────────────────────────────────────────────────────────────────┐
//! │ header (8 B)    magic "TIDX" (4 B) │ version u8 = 1 │ 3 zero bytes                  │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ symbols         count u32 │ offset u32 × count (from section start)                │
//! │                 │ (len uvarint, UTF-8 bytes) × count, sorted by bytes │ crc32c u32   │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ series × N      labels uvarint │ (name sym uvarint, value sym uvarint) × labels     │
//! │   (ref = 0..N)  │ meta len uvarint │ meta bytes (chunk refs, opaque) │ crc32c u32    │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ series offsets  pages of ≤ 1024 entries: offset u64 × entries │ crc32c u32 per page │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ postings × P    0-3 zero bytes to a 4-byte boundary │ count u32                    │
//! │                 │ series ref u32 × count (increasing) │ crc32c u32                   │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ value tables    per label name: count u32                                         │
//! │                 │ (value sym u32, postings offset u64) × count, by sym │ crc32c u32  │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ label names     count u32 │ (name sym u32, value table offset u64) × count          │
//! │                 │ crc32c u32                                                        │
//! ├──────────────────────────────────────────────────────────────────────────────────┤
//! │ TOC (64 B)      symbols offset u64 │ symbols length u64 │ series offsets u64        │
//! │                 │ postings start u64 │ postings end u64 │ names offset u64           │
//! │                 │ series count u32 │ symbol count u32 │ 4 zero bytes │ crc32c u32    │
//! └──────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Symbols are sorted, so symbol order is string order and a value table sorted by symbol
//! is sorted by value: prefix scans are range scans.
//!
//! CRC32C (Castagnoli) covers the TOC and the symbol table (checked on open), each series
//! entry (checked on every read), and each series-offsets page, value table and postings
//! list (checked on first read; the index remembers which passed). Every offset and length is
//! checked against the file size and its section before use, postings must be strictly
//! increasing and below the series count, and label names within a series strictly
//! increasing: a damaged file yields an [`IndexError`], never a panic or an answer read from
//! unchecked bytes. Postings lists start at 4-byte boundaries, so on little-endian targets a
//! memory-mapped file lends them to queries as `&[u32]` without copying.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ahash::{AHashMap, AHashSet};
use telemetry_core::{Label, Labels};

use crate::{IndexError, IndexReader, SeriesRef};

/// The magic number at offset 0: `"TIDX"`.
pub const MAGIC: u32 = u32::from_be_bytes(*b"TIDX");
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
const TOC_LEN: usize = 64;
const PAGE: usize = 1024;
const MAX_LABELS: u64 = 4096;

fn crc(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Builds a persisted index. Series get references `0, 1, 2, …` in the order they are added.
///
/// ```
/// use telemetry_core::{Labels, Matcher};
/// use telemetry_index::{BlockIndex, BlockWriter, IndexReader};
///
/// let mut w = BlockWriter::new();
/// let r = w.add_series(&Labels::from_pairs([("__name__", "up"), ("job", "node")]).unwrap(), b"chunk refs").unwrap();
/// let idx = BlockIndex::from_bytes(w.finish().unwrap()).unwrap();
/// assert_eq!(idx.postings_for_matchers(&[Matcher::equal("job", "node")]).unwrap().as_slice(), &[r]);
/// assert_eq!(idx.chunk_meta(r).unwrap(), b"chunk refs");
/// ```
#[derive(Debug, Default)]
pub struct BlockWriter {
    strings: AHashMap<Arc<str>, u32>,
    string_list: Vec<Arc<str>>,
    /// Per series: start in `pairs`, label count, start in `meta`, meta length.
    series: Vec<(usize, usize, usize, usize)>,
    pairs: Vec<(u32, u32)>,
    meta: Vec<u8>,
    postings: AHashMap<(u32, u32), Vec<SeriesRef>>,
}

impl BlockWriter {
    /// An empty writer.
    pub fn new() -> Self {
        BlockWriter::default()
    }

    fn intern(&mut self, s: &Arc<str>) -> u32 {
        if let Some(&i) = self.strings.get(&**s) {
            return i;
        }
        let i = self.string_list.len() as u32;
        self.string_list.push(s.clone());
        self.strings.insert(s.clone(), i);
        i
    }

    /// Adds a series with its labels and its chunk references as opaque bytes (`meta`, which
    /// [`BlockIndex::chunk_meta`] returns verbatim). Returns its reference.
    ///
    /// # Errors
    /// [`IndexError::EmptyLabels`] for an empty label set, [`IndexError::TooLarge`] past
    /// `u32::MAX - 1` series or 4,096 labels.
    pub fn add_series(&mut self, labels: &Labels, meta: &[u8]) -> Result<SeriesRef, IndexError> {
        let r = self.series.len();
        if r >= u32::MAX as usize {
            return Err(IndexError::TooLarge { what: "series count", value: r as u64, max: u32::MAX as u64 - 1 });
        }
        let r = r as SeriesRef;
        if labels.is_empty() {
            return Err(IndexError::EmptyLabels { series_ref: r });
        }
        if labels.len() as u64 > MAX_LABELS {
            return Err(IndexError::TooLarge {
                what: "labels per series",
                value: labels.len() as u64,
                max: MAX_LABELS,
            });
        }
        let start = self.pairs.len();
        for l in labels {
            let n = self.intern(&l.name);
            let v = self.intern(&l.value);
            self.pairs.push((n, v));
            self.postings.entry((n, v)).or_default().push(r);
        }
        self.series.push((start, labels.len(), self.meta.len(), meta.len()));
        self.meta.extend_from_slice(meta);
        Ok(r)
    }

    /// Number of series added so far.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// `true` before the first series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Serialises the index.
    ///
    /// # Errors
    /// [`IndexError::TooLarge`] when a count does not fit the format.
    pub fn finish(self) -> Result<Vec<u8>, IndexError> {
        let too_large = |what, value: usize, max: u64| IndexError::TooLarge { what, value: value as u64, max };
        // Sorted symbol table and the map from interned id to symbol number.
        let mut order: Vec<u32> = (0..self.string_list.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.string_list[a as usize].cmp(&self.string_list[b as usize]));
        let mut sym_of = vec![0u32; order.len()];
        for (sym, &id) in order.iter().enumerate() {
            sym_of[id as usize] = sym as u32;
        }
        let mut out = Vec::with_capacity(HEADER_LEN + self.meta.len() + self.pairs.len() * 8);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);

        // Symbols.
        let sym_off = out.len();
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        let table_at = out.len();
        out.resize(table_at + 4 * order.len(), 0);
        for (i, &id) in order.iter().enumerate() {
            let rel = out.len() - sym_off;
            let rel = u32::try_from(rel).map_err(|_| too_large("symbol table bytes", rel, u32::MAX as u64))?;
            out[table_at + 4 * i..table_at + 4 * i + 4].copy_from_slice(&rel.to_le_bytes());
            let s = self.string_list[id as usize].as_bytes();
            put_uvarint(&mut out, s.len() as u64);
            out.extend_from_slice(s);
        }
        let c = crc(&out[sym_off..]);
        out.extend_from_slice(&c.to_le_bytes());
        let sym_len = out.len() - sym_off;

        // Series entries.
        let mut series_offsets = Vec::with_capacity(self.series.len());
        for &(start, n, mstart, mlen) in &self.series {
            let at = out.len();
            series_offsets.push(at as u64);
            put_uvarint(&mut out, n as u64);
            for &(name, value) in &self.pairs[start..start + n] {
                put_uvarint(&mut out, sym_of[name as usize] as u64);
                put_uvarint(&mut out, sym_of[value as usize] as u64);
            }
            put_uvarint(&mut out, mlen as u64);
            out.extend_from_slice(&self.meta[mstart..mstart + mlen]);
            let c = crc(&out[at..]);
            out.extend_from_slice(&c.to_le_bytes());
        }

        // Series offsets, paged.
        let series_table = out.len();
        for page in series_offsets.chunks(PAGE) {
            let at = out.len();
            for o in page {
                out.extend_from_slice(&o.to_le_bytes());
            }
            let c = crc(&out[at..]);
            out.extend_from_slice(&c.to_le_bytes());
        }

        // Postings, grouped by name then value (both in symbol order).
        let postings_start = out.len();
        let mut by_name: std::collections::BTreeMap<u32, Vec<(u32, u64)>> = Default::default();
        let mut keys: Vec<(u32, u32)> =
            self.postings.keys().map(|&(n, v)| (sym_of[n as usize], sym_of[v as usize])).collect();
        keys.sort_unstable();
        let mut inv = vec![0u32; sym_of.len()];
        for (id, &sym) in sym_of.iter().enumerate() {
            inv[sym as usize] = id as u32;
        }
        for &(n, v) in &keys {
            let list = &self.postings[&(inv[n as usize], inv[v as usize])];
            // Lists start 4-byte aligned so that a mapped file can lend them as `&[u32]`.
            out.resize(out.len().next_multiple_of(4), 0);
            let at = out.len();
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for r in list {
                out.extend_from_slice(&r.to_le_bytes());
            }
            let c = crc(&out[at..]);
            out.extend_from_slice(&c.to_le_bytes());
            by_name.entry(n).or_default().push((v, at as u64));
        }
        let postings_end = out.len();

        // Value tables, then the names table.
        let mut names = Vec::with_capacity(by_name.len());
        for (n, values) in &by_name {
            let at = out.len();
            out.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for (v, off) in values {
                out.extend_from_slice(&v.to_le_bytes());
                out.extend_from_slice(&off.to_le_bytes());
            }
            let c = crc(&out[at..]);
            out.extend_from_slice(&c.to_le_bytes());
            names.push((*n, at as u64));
        }
        let names_off = out.len();
        out.extend_from_slice(&(names.len() as u32).to_le_bytes());
        for (n, off) in &names {
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        let c = crc(&out[names_off..]);
        out.extend_from_slice(&c.to_le_bytes());

        // TOC.
        let toc = out.len();
        for v in [sym_off, sym_len, series_table, postings_start, postings_end, names_off] {
            out.extend_from_slice(&(v as u64).to_le_bytes());
        }
        out.extend_from_slice(&(self.series.len() as u32).to_le_bytes());
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let c = crc(&out[toc..]);
        out.extend_from_slice(&c.to_le_bytes());
        Ok(out)
    }

    /// Serialises the index to a file (created or truncated).
    ///
    /// # Errors
    /// As [`finish`](Self::finish), or [`IndexError::Io`].
    pub fn write_file(self, path: impl AsRef<Path>) -> Result<(), IndexError> {
        let path = path.as_ref();
        let bytes = self.finish()?;
        std::fs::write(path, bytes).map_err(|source| IndexError::Io { path: path.display().to_string(), source })
    }
}

enum Data {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Owned(v) => v,
            Data::Mapped(m) => m,
        }
    }
}

/// A parsed series entry: `(name sym, value sym)` pairs and the meta bytes.
type SeriesEntry<'a> = (Vec<(u32, u32)>, &'a [u8]);

struct NameEntry {
    name: String,
    sym: u32,
    table: u64,
    count: u32,
    verified: OnceLock<()>,
}

/// A persisted index opened for reading; see the [module docs](self) for the layout.
/// Answers the [`IndexReader`] calls; `Send + Sync`, share it by reference or `Arc`.
pub struct BlockIndex {
    data: Data,
    sym_off: usize,
    sym_end: usize,
    num_symbols: u32,
    series_table: usize,
    postings_start: usize,
    postings_end: usize,
    num_series: u32,
    names: Vec<NameEntry>,
    /// Offsets of postings lists whose checksum and order were already checked.
    verified_postings: Mutex<AHashSet<usize>>,
    /// One bit per series-offsets page: set once the page's checksum passed.
    verified_pages: Vec<AtomicU64>,
}

impl std::fmt::Debug for BlockIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIndex")
            .field("bytes", &self.data.bytes().len())
            .field("series", &self.num_series)
            .field("symbols", &self.num_symbols)
            .field("label_names", &self.names.len())
            .finish()
    }
}

fn oob(what: &'static str, offset: usize, len: usize, limit: usize) -> IndexError {
    IndexError::OutOfBounds { what, offset: offset as u64, len: len as u64, limit: limit as u64 }
}

fn corrupt(what: &'static str, offset: usize, reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt { what, offset: offset as u64, reason: reason.into() }
}

/// Bytes `[off, off+len)` of `b`, which must end at or before `limit`.
fn get<'a>(b: &'a [u8], what: &'static str, off: usize, len: usize, limit: usize) -> Result<&'a [u8], IndexError> {
    match off.checked_add(len) {
        Some(end) if end <= limit && limit <= b.len() => Ok(&b[off..end]),
        _ => Err(oob(what, off, len, limit)),
    }
}

fn u32_at(b: &[u8], what: &'static str, off: usize, limit: usize) -> Result<u32, IndexError> {
    let s = get(b, what, off, 4, limit)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], what: &'static str, off: usize, limit: usize) -> Result<u64, IndexError> {
    let s = get(b, what, off, 8, limit)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

fn to_usize(v: u64, what: &'static str, at: usize) -> Result<usize, IndexError> {
    usize::try_from(v).map_err(|_| corrupt(what, at, format!("offset {v} does not fit this platform")))
}

/// Reads an unsigned LEB128 varint at `*pos`, below `limit`.
fn uvarint(b: &[u8], what: &'static str, pos: &mut usize, limit: usize) -> Result<u64, IndexError> {
    let start = *pos;
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if *pos >= limit || *pos >= b.len() {
            return Err(oob(what, start, *pos - start + 1, limit));
        }
        let byte = b[*pos];
        *pos += 1;
        if shift == 63 && byte > 1 {
            break;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(corrupt(what, start, "varint longer than 64 bits"))
}

fn check_crc(b: &[u8], what: &'static str, start: usize, end: usize, limit: usize) -> Result<(), IndexError> {
    let body = get(b, what, start, end.saturating_sub(start), limit)?;
    let stored = u32_at(b, what, end, limit)?;
    let computed = crc(body);
    // Fuzzing builds accept any checksum so that mutated inputs reach the structure checks.
    #[allow(unexpected_cfgs)]
    let skip = cfg!(fuzzing);
    if stored != computed && !skip {
        return Err(IndexError::Checksum { what, offset: start as u64, stored, computed });
    }
    Ok(())
}

impl BlockIndex {
    /// Opens a persisted index file through a read-only memory map.
    ///
    /// The file must not be modified while it is open (block files are immutable).
    ///
    /// # Errors
    /// [`IndexError::Io`], or any format error of [`from_bytes`](Self::from_bytes).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IndexError> {
        let path = path.as_ref();
        let io = |source| IndexError::Io { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Self::from_data(Data::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and block files are never written after they are
        // complete; every read through it is bounds-checked against its length.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_data(Data::Mapped(map))
    }

    /// Reads an index held in memory.
    ///
    /// # Errors
    /// [`IndexError::TooShort`], [`IndexError::BadMagic`], [`IndexError::UnsupportedVersion`],
    /// [`IndexError::Checksum`], [`IndexError::OutOfBounds`] or [`IndexError::Corrupt`] for
    /// damaged input.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, IndexError> {
        Self::from_data(Data::Owned(bytes))
    }

    fn from_data(data: Data) -> Result<Self, IndexError> {
        let b = data.bytes();
        let n = b.len();
        if n < HEADER_LEN + TOC_LEN {
            return Err(IndexError::TooShort { len: n, min: HEADER_LEN + TOC_LEN });
        }
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if magic != MAGIC {
            return Err(IndexError::BadMagic { found: magic, expected: MAGIC });
        }
        if b[4] != FORMAT_VERSION {
            return Err(IndexError::UnsupportedVersion { found: b[4], supported: FORMAT_VERSION });
        }
        let toc = n - TOC_LEN;
        check_crc(b, "table of contents", toc, n - 4, n)?;
        let rd = |i: usize| -> Result<usize, IndexError> {
            let v = u64_at(b, "table of contents", toc + 8 * i, n)?;
            let v = to_usize(v, "table of contents", toc)?;
            if v < HEADER_LEN || v > toc {
                return Err(oob("section named in the table of contents", v, 0, toc));
            }
            Ok(v)
        };
        let sym_off = rd(0)?;
        let sym_len = u64_at(b, "table of contents", toc + 8, n)?;
        let sym_len = to_usize(sym_len, "table of contents", toc)?;
        let series_table = rd(2)?;
        let postings_start = rd(3)?;
        let postings_end = rd(4)?;
        let names_off = rd(5)?;
        let num_series = u32_at(b, "table of contents", toc + 48, n)?;
        let num_symbols = u32_at(b, "table of contents", toc + 52, n)?;
        if postings_start > postings_end {
            return Err(corrupt("table of contents", toc, "postings section ends before it starts"));
        }
        let sym_end =
            sym_off.checked_add(sym_len).filter(|&e| e <= toc).ok_or(oob("symbol table", sym_off, sym_len, toc))?;
        if sym_len < 8 {
            return Err(corrupt("symbol table", sym_off, "shorter than its count and checksum"));
        }
        check_crc(b, "symbol table", sym_off, sym_end - 4, sym_end)?;
        let count = u32_at(b, "symbol table", sym_off, sym_end)?;
        if count != num_symbols {
            return Err(corrupt("symbol table", sym_off, format!("{count} symbols, the TOC says {num_symbols}")));
        }
        get(b, "symbol offsets", sym_off + 4, 4 * count as usize, sym_end - 4)?;
        // Series offsets table must fit.
        let pages = (num_series as usize).div_ceil(PAGE);
        let table_len = num_series as usize * 8 + pages * 4;
        get(b, "series offsets", series_table, table_len, toc)?;

        let mut idx = BlockIndex {
            data: Data::Owned(Vec::new()),
            sym_off,
            sym_end: sym_end - 4,
            num_symbols,
            series_table,
            postings_start,
            postings_end,
            num_series,
            names: Vec::new(),
            verified_postings: Mutex::new(AHashSet::new()),
            verified_pages: (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        };
        // Names table.
        let ncount = u32_at(b, "label names table", names_off, toc)? as usize;
        let nlen = ncount.checked_mul(12).ok_or(oob("label names table", names_off, usize::MAX, toc))?;
        check_crc(b, "label names table", names_off, names_off.saturating_add(4 + nlen), toc)?;
        let mut names = Vec::with_capacity(ncount);
        let mut prev: Option<u32> = None;
        for i in 0..ncount {
            let at = names_off + 4 + 12 * i;
            let sym = u32_at(b, "label names table", at, toc)?;
            if prev.is_some_and(|p| p >= sym) {
                return Err(corrupt("label names table", at, "names not strictly increasing"));
            }
            prev = Some(sym);
            let table = u64_at(b, "label names table", at + 4, toc)?;
            let table_us = to_usize(table, "label names table", at)?;
            let count = u32_at(b, "value table", table_us, toc)?;
            let name = idx.symbol_in(b, sym)?.to_string();
            names.push(NameEntry { name, sym, table, count, verified: OnceLock::new() });
        }
        idx.names = names;
        idx.data = data;
        Ok(idx)
    }

    fn symbol_in<'a>(&self, b: &'a [u8], sym: u32) -> Result<&'a str, IndexError> {
        if sym >= self.num_symbols {
            return Err(corrupt("symbol reference", self.sym_off, format!("symbol {sym} of {}", self.num_symbols)));
        }
        let rel = u32_at(b, "symbol offsets", self.sym_off + 4 + 4 * sym as usize, self.sym_end)? as usize;
        let mut pos = self.sym_off.checked_add(rel).ok_or(oob("symbol", self.sym_off, rel, self.sym_end))?;
        let len = uvarint(b, "symbol", &mut pos, self.sym_end)?;
        let len = to_usize(len, "symbol", pos)?;
        let s = get(b, "symbol", pos, len, self.sym_end)?;
        std::str::from_utf8(s).map_err(|e| corrupt("symbol", pos, format!("invalid UTF-8: {e}")))
    }

    fn symbol(&self, sym: u32) -> Result<&str, IndexError> {
        self.symbol_in(self.data.bytes(), sym)
    }

    /// The first symbol `>= s` (or `num_symbols`), and whether it equals `s`.
    fn symbol_search(&self, s: &str) -> Result<(u32, bool), IndexError> {
        let (mut lo, mut hi) = (0u32, self.num_symbols);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.symbol(mid)? < s {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let eq = lo < self.num_symbols && self.symbol(lo)? == s;
        Ok((lo, eq))
    }

    fn name_entry(&self, name: &str) -> Option<&NameEntry> {
        self.names.binary_search_by(|e| e.name.as_str().cmp(name)).ok().map(|i| &self.names[i])
    }

    /// The value table of a name, checksum verified (once per open).
    fn value_table(&self, e: &NameEntry) -> Result<(usize, usize), IndexError> {
        let b = self.data.bytes();
        let at = to_usize(e.table, "value table", 0)?;
        let len = (e.count as usize).checked_mul(12).ok_or(oob("value table", at, usize::MAX, b.len()))?;
        if e.verified.get().is_none() {
            check_crc(b, "value table", at, at.saturating_add(4 + len), b.len())?;
            let _ = e.verified.set(());
        }
        Ok((at + 4, e.count as usize))
    }

    fn value_entry(&self, entries: usize, i: usize) -> Result<(u32, usize), IndexError> {
        let b = self.data.bytes();
        let at = entries + 12 * i;
        let sym = u32_at(b, "value table", at, b.len())?;
        let off = u64_at(b, "value table", at + 4, b.len())?;
        Ok((sym, to_usize(off, "value table", at)?))
    }

    /// Index of the first entry with symbol `>= sym`.
    fn value_search(&self, entries: usize, count: usize, sym: u32) -> Result<usize, IndexError> {
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.value_entry(entries, mid)?.0 < sym {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    fn postings_offset(&self, name: &str, value: &str) -> Result<Option<usize>, IndexError> {
        let Some(e) = self.name_entry(name) else { return Ok(None) };
        let (sym, found) = self.symbol_search(value)?;
        if !found {
            return Ok(None);
        }
        let (entries, count) = self.value_table(e)?;
        let i = self.value_search(entries, count, sym)?;
        if i < count {
            let (s, off) = self.value_entry(entries, i)?;
            if s == sym {
                return Ok(Some(off));
            }
        }
        Ok(None)
    }

    fn read_postings(&self, off: usize) -> Result<Cow<'_, [SeriesRef]>, IndexError> {
        let b = self.data.bytes();
        let (start, end) = (self.postings_start, self.postings_end);
        if off < start {
            return Err(oob("postings list", off, 4, end));
        }
        let count = u32_at(b, "postings list", off, end)? as usize;
        let body = get(b, "postings list", off + 4, count * 4, end)?;
        let verified = self.verified_postings.lock().map(|v| v.contains(&off)).unwrap_or(false);
        if !verified {
            check_crc(b, "postings list", off, off + 4 + count * 4, end)?;
            let mut prev: Option<u32> = None;
            for c in body.chunks_exact(4) {
                let r = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if prev.is_some_and(|p| p >= r) || r >= self.num_series {
                    return Err(corrupt(
                        "postings list",
                        off,
                        format!("reference {r} out of order or past the series count"),
                    ));
                }
                prev = Some(r);
            }
            if let Ok(mut v) = self.verified_postings.lock() {
                v.insert(off);
            }
        }
        if cfg!(target_endian = "little") {
            // SAFETY: every bit pattern is a valid `u32`, and `align_to` only hands out the
            // correctly aligned middle part; on a little-endian target the stored
            // little-endian words are the values.
            let (pre, mid, post) = unsafe { body.align_to::<u32>() };
            if pre.is_empty() && post.is_empty() {
                return Ok(Cow::Borrowed(mid));
            }
        }
        Ok(Cow::Owned(body.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    fn series_offset(&self, r: SeriesRef) -> Result<Option<usize>, IndexError> {
        if r >= self.num_series {
            return Ok(None);
        }
        let b = self.data.bytes();
        let page = r as usize / PAGE;
        let in_page = (self.num_series as usize - page * PAGE).min(PAGE);
        let page_at = self.series_table + page * (PAGE * 8 + 4);
        // A set bit is only ever stored after the page's checksum passed; the bytes are
        // immutable, so a page checked once stays checked. Racing readers may both check it.
        let (word, bit) = (page / 64, 1u64 << (page % 64));
        let verified = self.verified_pages.get(word).is_some_and(|w| w.load(Ordering::Acquire) & bit != 0);
        if !verified {
            check_crc(b, "series offsets page", page_at, page_at + in_page * 8, b.len())?;
            if let Some(w) = self.verified_pages.get(word) {
                w.fetch_or(bit, Ordering::Release);
            }
        }
        let off = u64_at(b, "series offsets page", page_at + (r as usize % PAGE) * 8, b.len())?;
        Ok(Some(to_usize(off, "series offsets page", page_at)?))
    }

    /// Parses series `r`: its `(name sym, value sym)` pairs and its meta bytes.
    fn series_entry(&self, r: SeriesRef) -> Result<Option<SeriesEntry<'_>>, IndexError> {
        let Some(at) = self.series_offset(r)? else { return Ok(None) };
        let b = self.data.bytes();
        let limit = self.series_table;
        if at < self.sym_end {
            return Err(oob("series entry", at, 0, limit));
        }
        let mut pos = at;
        let n = uvarint(b, "series entry", &mut pos, limit)?;
        if n == 0 || n > MAX_LABELS {
            return Err(corrupt("series entry", at, format!("{n} labels")));
        }
        let mut pairs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let name = uvarint(b, "series entry", &mut pos, limit)?;
            let value = uvarint(b, "series entry", &mut pos, limit)?;
            if name >= u64::from(self.num_symbols) || value >= u64::from(self.num_symbols) {
                return Err(corrupt("series entry", at, "symbol reference past the symbol table"));
            }
            if pairs.last().is_some_and(|&(p, _): &(u32, u32)| u64::from(p) >= name) {
                return Err(corrupt("series entry", at, "label names not strictly increasing"));
            }
            pairs.push((name as u32, value as u32));
        }
        let mlen = uvarint(b, "series entry", &mut pos, limit)?;
        let mlen = to_usize(mlen, "series entry", at)?;
        let meta = get(b, "series meta", pos, mlen, limit)?;
        check_crc(b, "series entry", at, pos + mlen, limit)?;
        Ok(Some((pairs, meta)))
    }

    /// The opaque chunk-reference bytes stored with series `r` by
    /// [`BlockWriter::add_series`].
    ///
    /// # Errors
    /// [`IndexError::OutOfBounds`] for a reference past the series count, or a format error.
    pub fn chunk_meta(&self, r: SeriesRef) -> Result<&[u8], IndexError> {
        match self.series_entry(r)? {
            Some((_, meta)) => Ok(meta),
            None => Err(oob("series reference", r as usize, 1, self.num_series as usize)),
        }
    }

    /// The labels and the opaque chunk-reference bytes of series `r` from one read of its
    /// entry: what [`IndexReader::series_labels`] and [`chunk_meta`](Self::chunk_meta) return,
    /// at the cost of one lookup. `None` for a reference past the series count.
    ///
    /// # Errors
    /// A format error for a damaged entry or symbol.
    pub fn series_labels_and_meta(&self, r: SeriesRef) -> Result<Option<(Labels, &[u8])>, IndexError> {
        let Some((pairs, meta)) = self.series_entry(r)? else { return Ok(None) };
        Ok(Some((self.labels_of(r, pairs)?, meta)))
    }

    /// [`series_labels_and_meta`](Self::series_labels_and_meta) with the strings of the labels
    /// taken from `cache` (filled from this index as symbols are first read): a reader of many
    /// series of one block checks and allocates each string once instead of once per series.
    /// `cache` must be used with this index only.
    ///
    /// # Errors
    /// As [`series_labels_and_meta`](Self::series_labels_and_meta).
    pub fn series_labels_and_meta_cached(
        &self,
        r: SeriesRef,
        cache: &mut SymbolCache,
    ) -> Result<Option<(Labels, &[u8])>, IndexError> {
        let Some((pairs, meta)) = self.series_entry(r)? else { return Ok(None) };
        let mut labels: Vec<Label> = Vec::with_capacity(pairs.len());
        for (n, v) in pairs {
            let name = cache.get(self, n)?;
            let value = cache.get(self, v)?;
            if value.is_empty() || labels.last().is_some_and(|l| l.name >= name) {
                return Err(corrupt("series entry", r as usize, "empty value or label names out of order"));
            }
            labels.push(Label { name, value });
        }
        Ok(Some((Labels::from_sorted_unchecked(labels), meta)))
    }

    fn labels_of(&self, r: SeriesRef, pairs: Vec<(u32, u32)>) -> Result<Labels, IndexError> {
        let mut labels: Vec<Label> = Vec::with_capacity(pairs.len());
        for (n, v) in pairs {
            let (name, value) = (self.symbol(n)?, self.symbol(v)?);
            if value.is_empty() || labels.last().is_some_and(|l| &*l.name >= name) {
                return Err(corrupt("series entry", r as usize, "empty value or label names out of order"));
            }
            labels.push(Label::new(name, value));
        }
        Ok(Labels::from_sorted_unchecked(labels))
    }

    /// Size of the index in bytes.
    pub fn len_bytes(&self) -> usize {
        self.data.bytes().len()
    }
}

/// The strings of one [`BlockIndex`]'s symbols read so far, by symbol number: see
/// [`BlockIndex::series_labels_and_meta_cached`].
#[derive(Debug, Default)]
pub struct SymbolCache {
    symbols: AHashMap<u32, Arc<str>>,
}

impl SymbolCache {
    /// An empty cache.
    pub fn new() -> Self {
        SymbolCache::default()
    }

    fn get(&mut self, index: &BlockIndex, sym: u32) -> Result<Arc<str>, IndexError> {
        if let Some(s) = self.symbols.get(&sym) {
            return Ok(s.clone());
        }
        let s: Arc<str> = index.symbol(sym)?.into();
        self.symbols.insert(sym, s.clone());
        Ok(s)
    }
}

impl IndexReader for BlockIndex {
    fn num_series(&self) -> usize {
        self.num_series as usize
    }

    fn all_label_names(&self) -> Result<Vec<String>, IndexError> {
        Ok(self.names.iter().filter(|e| e.count > 0).map(|e| e.name.clone()).collect())
    }

    fn visit_values(&self, name: &str, from: &str, f: &mut dyn FnMut(&str) -> bool) -> Result<(), IndexError> {
        let Some(e) = self.name_entry(name) else { return Ok(()) };
        let (entries, count) = self.value_table(e)?;
        let (sym, _) = self.symbol_search(from)?;
        let mut i = self.value_search(entries, count, sym)?;
        while i < count {
            let (s, _) = self.value_entry(entries, i)?;
            if !f(self.symbol(s)?) {
                break;
            }
            i += 1;
        }
        Ok(())
    }

    fn postings(&self, name: &str, value: &str) -> Result<Cow<'_, [SeriesRef]>, IndexError> {
        match self.postings_offset(name, value)? {
            Some(off) => self.read_postings(off),
            None => Ok(Cow::Borrowed(&[])),
        }
    }

    fn postings_len(&self, name: &str, value: &str) -> Result<usize, IndexError> {
        match self.postings_offset(name, value)? {
            Some(off) => {
                if off < self.postings_start {
                    return Err(oob("postings list", off, 4, self.postings_end));
                }
                Ok(u32_at(self.data.bytes(), "postings list", off, self.postings_end)? as usize)
            }
            None => Ok(0),
        }
    }

    fn all_postings(&self) -> Result<Cow<'_, [SeriesRef]>, IndexError> {
        Ok(Cow::Owned((0..self.num_series).collect()))
    }

    fn series_labels(&self, r: SeriesRef) -> Result<Option<Labels>, IndexError> {
        let Some((pairs, _)) = self.series_entry(r)? else { return Ok(None) };
        self.labels_of(r, pairs).map(Some)
    }

    fn label_names_of(&self, refs: &[SeriesRef]) -> Result<Vec<String>, IndexError> {
        let mut syms = BTreeSet::new();
        for &r in refs {
            if let Some((pairs, _)) = self.series_entry(r)? {
                syms.extend(pairs.iter().map(|p| p.0));
            }
        }
        syms.into_iter().map(|s| self.symbol(s).map(str::to_string)).collect()
    }

    fn label_values_of(&self, name: &str, refs: &[SeriesRef]) -> Result<Vec<String>, IndexError> {
        let Some(e) = self.name_entry(name) else { return Ok(Vec::new()) };
        let mut syms = BTreeSet::new();
        for &r in refs {
            if let Some((pairs, _)) = self.series_entry(r)?
                && let Some(p) = pairs.iter().find(|p| p.0 == e.sym)
            {
                syms.insert(p.1);
            }
        }
        syms.into_iter().map(|s| self.symbol(s).map(str::to_string)).collect()
    }
}
