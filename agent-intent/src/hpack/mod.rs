//! HPACK header decompression (RFC 7541), written for hostile input.
//!
//! One [`Decoder`] per HTTP/2 connection direction keeps the dynamic table that the peer's
//! encoder drives. Every length is checked before use: integers stop at 2^28, strings must fit
//! in the block, indices must name an entry, and a dynamic table size update above our cap
//! (`Limits::hpack_max_table_size`) is an error rather than an allocation. Decoded header lists
//! are capped too, but decoding continues past the cap so the dynamic table stays in step with
//! the encoder. Any [`HpackError`] leaves the table out of step, so the caller stops decoding
//! that direction. Only decoding lives here, plus a tiny literal encoder for tests.

pub mod huffman;

use std::collections::VecDeque;

pub use huffman::HuffmanError;

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Largest integer accepted (RFC 7541 §5.1 leaves the bound to the implementation).
const MAX_INT: u64 = 1 << 28;
/// Per-entry overhead counted in the table size (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Why a header block did not decode. Every variant leaves the dynamic table out of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("header block ends inside a field")]
    Truncated,
    #[error("integer does not fit in 28 bits")]
    IntegerOverflow,
    #[error("index `{0}` names no table entry")]
    BadIndex(u64),
    #[error("dynamic table size update to `{0}` is over the cap")]
    TableSizeTooLarge(u64),
    #[error("dynamic table size update after a header field")]
    LateSizeUpdate,
    #[error("bad Huffman string")]
    Huffman(#[from] HuffmanError),
}

/// One decoded header field, as raw bytes (HTTP/2 names are lowercase ASCII, values need not be
/// UTF-8).
pub type Field = (Vec<u8>, Vec<u8>);

/// The decoding side of one HPACK context.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<Field>,
    size: usize,
    max_size: usize,
    cap: usize,
}

/// Result of decoding one block: the fields kept and whether the list was cut at the cap.
#[derive(Debug, Default)]
pub struct Decoded {
    pub fields: Vec<Field>,
    pub truncated: bool,
}

impl Decoder {
    /// A decoder with the default 4096-byte table whose size updates may go up to `cap`.
    pub fn new(cap: usize) -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max_size: 4096.min(cap),
            cap,
        }
    }

    /// Bytes the dynamic table accounts for (RFC 7541 §4.1); never above the cap.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// Decodes one complete header block, keeping at most `max_list` bytes of fields.
    pub fn decode(&mut self, mut block: &[u8], max_list: usize) -> Result<Decoded, HpackError> {
        let mut out = Decoded::default();
        let mut list_size = 0usize;
        let mut seen_field = false;
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let idx = read_int(&mut block, 7)?;
                let field = self.get(idx)?;
                seen_field = true;
                push(&mut out, &mut list_size, max_list, field);
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                let size = read_int(&mut block, 5)?;
                if seen_field {
                    return Err(HpackError::LateSizeUpdate);
                }
                if size > self.cap as u64 {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.max_size = size as usize;
                self.evict(0);
            } else {
                // Literal with incremental indexing (01), without (0000) or never indexed (0001).
                let (prefix, index) = if first & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let idx = read_int(&mut block, prefix)?;
                let name = if idx == 0 {
                    read_string(&mut block)?
                } else {
                    self.get(idx)?.0
                };
                let value = read_string(&mut block)?;
                seen_field = true;
                if index {
                    self.insert((name.clone(), value.clone()));
                }
                push(&mut out, &mut list_size, max_list, (name, value));
            }
        }
        Ok(out)
    }

    fn get(&self, idx: u64) -> Result<Field, HpackError> {
        let i = usize::try_from(idx).map_err(|_| HpackError::BadIndex(idx))?;
        if i == 0 {
            return Err(HpackError::BadIndex(idx));
        }
        if let Some((n, v)) = STATIC_TABLE.get(i - 1) {
            return Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        self.table
            .get(i - 1 - STATIC_TABLE.len())
            .cloned()
            .ok_or(HpackError::BadIndex(idx))
    }

    fn insert(&mut self, field: Field) {
        let size = field.0.len() + field.1.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // §4.4: an entry larger than the table empties it and is not added.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(field);
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some((n, v)) = self.table.pop_back() else {
                self.size = 0;
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }
}

fn push(out: &mut Decoded, list_size: &mut usize, max_list: usize, field: Field) {
    let size = field.0.len() + field.1.len() + ENTRY_OVERHEAD;
    if *list_size + size > max_list {
        out.truncated = true;
        return;
    }
    *list_size += size;
    out.fields.push(field);
}

/// Reads an integer with an `n`-bit prefix (§5.1), consuming its bytes.
fn read_int(block: &mut &[u8], n: u32) -> Result<u64, HpackError> {
    let (&first, rest) = block.split_first().ok_or(HpackError::Truncated)?;
    *block = rest;
    let mask = (1u8 << n) - 1;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let (&b, rest) = block.split_first().ok_or(HpackError::Truncated)?;
        *block = rest;
        value += u64::from(b & 0x7f) << shift;
        if value > MAX_INT {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Reads a string literal (§5.2) whole: it must fit in the block, and a Huffman string decodes
/// to at most 8/5 of its length, so the block cap bounds it. Cutting it here would put a
/// different entry in the dynamic table than the encoder's.
fn read_string(block: &mut &[u8]) -> Result<Vec<u8>, HpackError> {
    let huff = block.first().is_some_and(|b| b & 0x80 != 0);
    let len = read_int(block, 7)?;
    let len = usize::try_from(len).map_err(|_| HpackError::Truncated)?;
    if len > block.len() {
        return Err(HpackError::Truncated);
    }
    let (raw, rest) = block.split_at(len);
    *block = rest;
    if huff {
        let mut out = Vec::with_capacity(len);
        huffman::decode(raw, &mut out, usize::MAX)?;
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

/// Encodes an integer with an `n`-bit prefix whose high bits are `flags`.
pub fn encode_int(out: &mut Vec<u8>, flags: u8, n: u32, mut value: u64) {
    let mask = (1u64 << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    value -= mask;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encodes fields as literals without indexing (new names), optionally Huffman-coded: enough
/// for tests and fuzz seeds to build valid header blocks.
pub fn encode_literals(fields: &[(&str, &str)], huffman: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        for s in [name, value] {
            if huffman {
                let enc = huffman::encode(s.as_bytes());
                encode_int(&mut out, 0x80, 7, enc.len() as u64);
                out.extend_from_slice(&enc);
            } else {
                encode_int(&mut out, 0, 7, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn strings(d: &Decoded) -> Vec<(String, String)> {
        d.fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n.clone()).unwrap(),
                    String::from_utf8(v.clone()).unwrap(),
                )
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn rfc7541_c1_integers() {
        let mut b: &[u8] = &[0x0a];
        assert_eq!(read_int(&mut b, 5), Ok(10));
        let mut b: &[u8] = &[0x1f, 0x9a, 0x0a];
        assert_eq!(read_int(&mut b, 5), Ok(1337));
        let mut out = Vec::new();
        encode_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman_share_the_dynamic_table() {
        let mut d = Decoder::new(4096);
        let r1 = d
            .decode(&hex("828684410f7777772e6578616d706c652e636f6d"), 1 << 16)
            .unwrap();
        assert_eq!(
            strings(&r1),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        assert_eq!(d.table_size(), 57);
        let r2 = d
            .decode(&hex("828684be58086e6f2d6361636865"), 1 << 16)
            .unwrap();
        assert_eq!(strings(&r2)[4], pairs(&[("cache-control", "no-cache")])[0]);
        assert_eq!(strings(&r2)[3].1, "www.example.com");
        assert_eq!(d.table_size(), 110);
        let r3 = d
            .decode(
                &hex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"),
                1 << 16,
            )
            .unwrap();
        assert_eq!(strings(&r3)[2], pairs(&[(":path", "/index.html")])[0]);
        assert_eq!(strings(&r3)[4], pairs(&[("custom-key", "custom-value")])[0]);
        assert_eq!(d.table_size(), 164);
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        let mut d = Decoder::new(4096);
        let r1 = d
            .decode(&hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"), 1 << 16)
            .unwrap();
        assert_eq!(strings(&r1)[3].1, "www.example.com");
        let r2 = d.decode(&hex("828684be5886a8eb10649cbf"), 1 << 16).unwrap();
        assert_eq!(strings(&r2)[4], pairs(&[("cache-control", "no-cache")])[0]);
        let r3 = d
            .decode(
                &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
                1 << 16,
            )
            .unwrap();
        assert_eq!(strings(&r3)[4], pairs(&[("custom-key", "custom-value")])[0]);
        assert_eq!(d.table_size(), 164);
    }

    #[test]
    fn size_update_evicts_and_bombs_are_refused() {
        let mut d = Decoder::new(4096);
        d.decode(&hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"), 1 << 16)
            .unwrap();
        assert_eq!(d.table_size(), 57);
        // Size update to 0 empties the table; index 62 is then out of range.
        d.decode(&[0x20], 1 << 16).unwrap();
        assert_eq!(d.table_size(), 0);
        assert_eq!(
            d.decode(&[0xbe], 1 << 16).unwrap_err(),
            HpackError::BadIndex(62)
        );
        // A size update to 2^27 is over the cap.
        let mut bomb = Vec::new();
        encode_int(&mut bomb, 0x20, 5, 1 << 27);
        assert_eq!(
            d.decode(&bomb, 1 << 16).unwrap_err(),
            HpackError::TableSizeTooLarge(1 << 27)
        );
        // A size update after a field is refused.
        assert_eq!(
            d.decode(&[0x82, 0x20], 1 << 16).unwrap_err(),
            HpackError::LateSizeUpdate
        );
    }

    #[test]
    fn hostile_integers_indices_and_strings_are_errors() {
        let mut d = Decoder::new(4096);
        assert_eq!(
            d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 1 << 16)
                .unwrap_err(),
            HpackError::IntegerOverflow
        );
        assert_eq!(
            d.decode(&[0x80], 1 << 16).unwrap_err(),
            HpackError::BadIndex(0)
        );
        assert_eq!(
            d.decode(&[0xff, 0x00], 1 << 16).unwrap_err(),
            HpackError::BadIndex(127)
        );
        // Literal whose value claims 100 bytes but has 3.
        assert_eq!(
            d.decode(&[0x04, 0x64, b'a', b'b', b'c'], 1 << 16)
                .unwrap_err(),
            HpackError::Truncated
        );
        // Integer continuation that never ends.
        assert_eq!(
            d.decode(&[0xff, 0x80], 1 << 16).unwrap_err(),
            HpackError::Truncated
        );
    }

    #[test]
    fn header_list_is_capped_but_table_stays_in_step() {
        let mut d = Decoder::new(4096);
        let mut block = Vec::new();
        // Literal with indexing, new name: big-header: 200 x's.
        block.push(0x40);
        encode_int(&mut block, 0, 7, 10);
        block.extend_from_slice(b"big-header");
        encode_int(&mut block, 0, 7, 200);
        block.extend(std::iter::repeat_n(b'x', 200));
        let r = d.decode(&block, 100).unwrap();
        assert!(r.truncated);
        assert!(r.fields.is_empty());
        // The entry went into the table anyway, whole, as the encoder's did.
        assert_eq!(d.table_size(), 10 + 200 + 32);
        let r = d.decode(&[0xbe], 1 << 16).unwrap();
        assert_eq!(r.fields[0].0, b"big-header");
        assert_eq!(r.fields[0].1.len(), 200);
    }

    #[test]
    fn literal_encoder_round_trips() {
        let fields = [
            (":path", "/v1/messages"),
            ("content-type", "application/json"),
        ];
        for huff in [false, true] {
            let mut d = Decoder::new(4096);
            let r = d.decode(&encode_literals(&fields, huff), 1 << 16).unwrap();
            assert_eq!(strings(&r), pairs(&fields));
        }
    }
}
