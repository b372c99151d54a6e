//! Hex text for byte strings: the `.hex` golden vectors and readable
//! assertion messages.

/// `bytes` as lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex `text`; ASCII white space anywhere is skipped.
///
/// # Panics
/// On an odd number of digits or a character that is not a hex digit.
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {text:?}");
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).unwrap_or_else(|_| panic!("not hex: {text:?}"));
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("not hex: {pair:?} in {text:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_skips_white_space() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)), all);
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex(" 00 AB\nff\n"), [0x00, 0xab, 0xff]);
    }

    #[test]
    #[should_panic(expected = "odd number of hex digits")]
    fn an_odd_digit_count_is_refused() {
        unhex("abc");
    }
}
