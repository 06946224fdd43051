//! Percent-encoding of query keys and values, as every query this crate writes is encoded.

use std::borrow::Cow;

/// Percent-encodes one key or value: everything but RFC 3986's unreserved characters is
/// escaped, so the result decodes to the same text under any form decoder.
pub fn encode_component(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|byte| UNRESERVED.keeps(byte)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 3);
    encode_into(&mut out, text);
    Cow::Owned(out)
}

/// The bytes [`encode_component`] leaves as they are (RFC 3986 "unreserved").
const fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// A set of bytes written as they are, as a table: encoding and the canonical check look every
/// byte up in it (a call per byte through a function pointer was a third of their time).
pub(super) struct Bare([bool; 256]);

impl Bare {
    pub(super) fn keeps(&self, byte: u8) -> bool {
        // Never `None`: the table has an entry for every byte.
        self.0.get(usize::from(byte)).copied().unwrap_or(false)
    }
}

/// [`unreserved`] as a table.
pub(super) const UNRESERVED: Bare = bare_table(false);

/// [`bare_in_key`] as a table.
pub(super) const BARE_IN_KEY: Bare = bare_table(true);

/// [`bare_in_key`] (`in_key`) or [`unreserved`] as a table. Only the two consts above call it,
/// when compiling: an index out of range would fail the build, never a request.
#[allow(clippy::indexing_slicing)]
const fn bare_table(in_key: bool) -> Bare {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let value = byte as u8;
        table[byte] = if in_key {
            bare_in_key(value)
        } else {
            unreserved(value)
        };
        byte += 1;
    }
    Bare(table)
}

/// [`encode_component`], appended to `out` without an intermediate string.
pub(crate) fn encode_into(out: &mut String, text: &str) {
    encode_keeping(out, text, &UNRESERVED);
}

/// A key's bytes written as they are: the unreserved ones and the brackets of `params[1]`.
/// Electric (Plug) reads `params[1]` and `params%5B1%5D` alike, and the bare form is what
/// people read in logs.
const fn bare_in_key(byte: u8) -> bool {
    unreserved(byte) || matches!(byte, b'[' | b']')
}

/// `%00%01...%FF`: the escape of byte `b` is the three bytes at `3 * b`, so writing one is one
/// copy (a where clause is mostly escapes: quotes, spaces, `=`, parentheses).
// Evaluated when compiling: an index out of range fails the build, never a request.
#[allow(clippy::indexing_slicing)]
const ESCAPES: &str = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const BYTES: [u8; 768] = {
        let mut bytes = [0u8; 768];
        let mut byte = 0;
        while byte < 256 {
            bytes[3 * byte] = b'%';
            bytes[3 * byte + 1] = HEX[byte >> 4];
            bytes[3 * byte + 2] = HEX[byte & 0x0f];
            byte += 1;
        }
        bytes
    };
    match std::str::from_utf8(&BYTES) {
        Ok(text) => text,
        Err(_) => panic!("the escapes are ASCII"),
    }
};

/// Appends `text` to `out`, every byte that `bare` does not keep written as `%XX`.
#[inline]
fn encode_keeping(out: &mut String, text: &str, bare: &Bare) {
    out.reserve(text.len());
    let mut run_start = 0;
    for (index, byte) in text.bytes().enumerate() {
        if bare.keeps(byte) {
            continue;
        }
        // Bare bytes are ASCII, so a non-empty run starts and ends on character boundaries;
        // only an empty range can fall inside a character (`get` is `None`).
        out.push_str(text.get(run_start..index).unwrap_or_default());
        let at = 3 * usize::from(byte);
        out.push_str(ESCAPES.get(at..at + 3).unwrap_or_default());
        run_start = index + 1;
    }
    out.push_str(text.get(run_start..).unwrap_or_default());
}

/// Appends `number` in decimal, without the formatting machinery: a query's `params[n]` and a
/// private response's capped lifetimes are written on every request.
pub(crate) fn push_decimal(out: &mut String, number: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = number;
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            // A remainder of ten is below ten: the cast keeps it whole.
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // ASCII digits: always UTF-8.
    out.push_str(std::str::from_utf8(digits.get(start..).unwrap_or_default()).unwrap_or("0"));
}

/// Appends `key=value`, encoded (a key's brackets bare), with a separating `&` when `out` is
/// not empty.
pub(crate) fn push_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    encode_keeping(out, key, &BARE_IN_KEY);
    out.push('=');
    encode_into(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_display_writes_them() {
        for number in [
            0,
            1,
            9,
            10,
            99,
            100,
            604_800,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = String::from("n=");
            push_decimal(&mut out, number);
            assert_eq!(out, format!("n={number}"));
        }
    }

    #[test]
    fn the_tables_are_their_functions_for_every_byte() {
        for byte in 0..=u8::MAX {
            assert_eq!(UNRESERVED.keeps(byte), unreserved(byte), "{byte:#04x}");
            assert_eq!(BARE_IN_KEY.keeps(byte), bare_in_key(byte), "{byte:#04x}");
        }
        assert_eq!(ESCAPES.len(), 3 * 256);
    }

    #[test]
    fn every_byte_outside_the_unreserved_set_is_escaped_including_inside_characters() {
        let reference = |text: &str| -> String {
            text.bytes()
                .map(|byte| match unreserved(byte) {
                    true => char::from(byte).to_string(),
                    false => format!("%{byte:02X}"),
                })
                .collect()
        };
        for text in [
            "",
            "abc-._~",
            "a b+c&d=e%f",
            "é",
            "xé",
            "éx",
            "€uro\u{10FFFF}",
            "日本 語",
            "'\\\"",
            // Every byte UTF-8 uses: ASCII, continuations and 2-byte leads, then each
            // 3- and 4-byte lead.
            &('\0'..='\u{7FF}').collect::<String>(),
            &[
                0x800, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000, 0x8000,
            ]
            .into_iter()
            .chain([0x9000, 0xA000, 0xB000, 0xC000, 0xD000, 0xE000, 0xF000])
            .chain([0x10000, 0x40000, 0x80000, 0xC0000, 0x100000])
            .filter_map(char::from_u32)
            .collect::<String>(),
        ] {
            assert_eq!(encode_component(text), reference(text), "{text:?}");
            let mut out = String::from("k=");
            encode_into(&mut out, text);
            assert_eq!(out, format!("k={}", reference(text)));
        }
    }
}
