//! Hex text for keys, hashes and signatures: the one encoder and decoder of the workspace.
//! Decoding writes into the caller's buffer, so a secret lands straight in its zeroizing
//! storage; errors never echo the input (it may be a secret).

/// Why text is no hex of the expected length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexError {
    /// Not twice as many digits as bytes are expected.
    Length,
    /// A character that is no hex digit.
    Digit,
}

impl HexError {
    /// What to say of a 32-byte secret given in hex (never the text itself).
    pub fn secret(self) -> &'static str {
        match self {
            HexError::Length => "expected exactly 64 hex digits (32 bytes)",
            HexError::Digit => "not a hex digit",
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Fills `out` from exactly `2 × out.len()` hex digits (either case), surrounding whitespace
/// ignored.
pub fn decode_into(text: &str, out: &mut [u8]) -> Result<(), HexError> {
    let text = text.trim().as_bytes();
    if text.len() != out.len() * 2 {
        return Err(HexError::Length);
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16).ok_or(HexError::Digit);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Ok(())
}

/// `N` bytes from exactly `2 N` hex digits; `None` otherwise.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    decode_into(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(encode(&[0x00, 0x0a, 0xff]), "000aff");
        assert_eq!(decode_array::<3>(" 000AfF\n"), Some([0x00, 0x0a, 0xff]));
        assert_eq!(decode_array::<2>("0aF"), None);
        assert_eq!(decode_array::<1>("zz"), None);
        assert_eq!(decode_array::<1>("é"), None);
        let mut out = [0u8; 2];
        assert_eq!(decode_into("abc", &mut out), Err(HexError::Length));
        assert_eq!(decode_into("abzz", &mut out), Err(HexError::Digit));
    }
}
