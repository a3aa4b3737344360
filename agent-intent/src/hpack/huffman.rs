//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B), decoded bit by bit.
//!
//! The code is canonical: codes of one length are consecutive and ordered by symbol, so the
//! table is just the 257 code lengths and everything else (first code per length, symbols in
//! code order) is computed at compile time. Decoding walks one bit at a time, which is slow next
//! to a nibble state machine but short, obviously bounded, and fast enough for header blocks
//! capped at a few tens of KiB. Padding must be under 8 bits of the EOS prefix (all ones), and
//! EOS itself never decodes: both are errors, as the RFC requires.

/// Code length in bits of each symbol 0..=255, then EOS (256), from RFC 7541 Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20 ' '..'/'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30 '0'..'?'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40 '@'..'O'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50 'P'..'_'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60 '`'..'o'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70 'p'..DEL
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
    30, // EOS
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// Per length: how many codes have it, the first code of that length, and where its symbols
/// start in [`SORTED`].
struct Canon {
    count: [u32; MAX_LEN + 1],
    first: [u32; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    sorted: [u16; 257],
}

const fn canon() -> Canon {
    let mut count = [0u32; MAX_LEN + 1];
    let mut i = 0;
    while i < 257 {
        count[LENGTHS[i] as usize] += 1;
        i += 1;
    }
    let mut first = [0u32; MAX_LEN + 1];
    let mut offset = [0u16; MAX_LEN + 1];
    let mut code = 0u32;
    let mut at = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        code = (code + count[len - 1]) << 1;
        first[len] = code;
        offset[len] = at;
        at += count[len] as u16;
        len += 1;
    }
    let mut sorted = [0u16; 257];
    let mut fill = offset;
    let mut sym = 0;
    while sym < 257 {
        let l = LENGTHS[sym] as usize;
        sorted[fill[l] as usize] = sym as u16;
        fill[l] += 1;
        sym += 1;
    }
    Canon {
        count,
        first,
        offset,
        sorted,
    }
}

static CANON: Canon = canon();

/// Why a Huffman string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    #[error("no Huffman code matches the input bits")]
    InvalidCode,
    #[error("the EOS symbol appeared inside a Huffman string")]
    EosInData,
    #[error("Huffman padding is longer than 7 bits")]
    PaddingTooLong,
    #[error("Huffman padding is not a prefix of EOS (all ones)")]
    InvalidPadding,
}

/// Decodes `input`, appending at most `max_out` bytes to `out`; returns whether it had to cut.
/// The whole input is always checked, so a cut string still keeps the decoder honest.
pub fn decode(input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<bool, HuffmanError> {
    let c = &CANON;
    let mut code: u32 = 0;
    let mut len: usize = 0;
    let mut cut = false;
    let mut written = 0usize;
    for &byte in input {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let n = c.count[len];
            if n > 0 && code >= c.first[len] && code - c.first[len] < n {
                let idx = usize::from(c.offset[len]) + (code - c.first[len]) as usize;
                let sym = c.sorted[idx];
                if sym == EOS {
                    return Err(HuffmanError::EosInData);
                }
                if written < max_out {
                    out.push(sym as u8);
                    written += 1;
                } else {
                    cut = true;
                }
                code = 0;
                len = 0;
            } else if len >= MAX_LEN {
                return Err(HuffmanError::InvalidCode);
            }
        }
    }
    if len > 7 {
        return Err(HuffmanError::PaddingTooLong);
    }
    if code != (1u32 << len) - 1 {
        return Err(HuffmanError::InvalidPadding);
    }
    Ok(cut)
}

/// The code of `sym` (right-aligned) and its length; used by [`encode`].
fn code_of(sym: usize) -> (u32, u8) {
    let c = &CANON;
    let len = LENGTHS[sym];
    let start = usize::from(c.offset[len as usize]);
    let pos = c.sorted[start..]
        .iter()
        .position(|&s| usize::from(s) == sym)
        .unwrap_or(0);
    (c.first[len as usize] + pos as u32, len)
}

/// Huffman-encodes `input`, padding the last byte with ones. The daemon never encodes; this is
/// here so tests and fuzz targets can build header blocks.
pub fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in input {
        let (code, len) = code_of(usize::from(b));
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_complete_and_matches_appendix_b_samples() {
        // A transcription error in LENGTHS breaks the Kraft equality or one of these codes.
        let kraft: u64 = LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
        assert_eq!(code_of(0), (0x1ff8, 13));
        assert_eq!(code_of(usize::from(b'0')), (0x0, 5));
        assert_eq!(code_of(usize::from(b'a')), (0x3, 5));
        assert_eq!(code_of(usize::from(b' ')), (0x14, 6));
        assert_eq!(code_of(usize::from(b'A')), (0x21, 6));
        assert_eq!(code_of(usize::from(b'{')), (0x7ffe, 15));
        assert_eq!(code_of(10), (0x3ffffffc, 30));
        assert_eq!(code_of(249), (0xffffffe, 28));
        assert_eq!(code_of(256), (0x3fffffff, 30));
    }

    #[test]
    fn rfc7541_c4_strings_decode() {
        let mut out = Vec::new();
        let enc = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decode(&enc, &mut out, 100), Ok(false));
        assert_eq!(out, b"www.example.com");
        assert_eq!(encode(b"www.example.com"), enc);
        out.clear();
        assert_eq!(
            decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], &mut out, 100),
            Ok(false)
        );
        assert_eq!(out, b"no-cache");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        assert_eq!(decode(&encode(&all), &mut out, 1000), Ok(false));
        assert_eq!(out, all);
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        let mut out = Vec::new();
        // 'a' (00011) then three zero bits of padding: not a prefix of EOS.
        assert_eq!(
            decode(&[0b0001_1000], &mut out, 10),
            Err(HuffmanError::InvalidPadding)
        );
        // A whole byte of ones after a complete symbol is 8 bits of padding.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut out, 10),
            Err(HuffmanError::PaddingTooLong)
        );
        // EOS (30 ones) followed by two ones of padding.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut out, 10),
            Err(HuffmanError::EosInData)
        );
    }

    #[test]
    fn output_is_capped() {
        let mut out = Vec::new();
        assert_eq!(decode(&encode(b"abcdef"), &mut out, 3), Ok(true));
        assert_eq!(out, b"abc");
    }
}
