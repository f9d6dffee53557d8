//! Every id the desk makes is derived, so the desk keeps no database: an order's accounts, quotes,
//! legs, cancellations and payouts are found again from the order's number alone, and a
//! statement line's transfer from the bank account and the bank's entry reference. Layout of a
//! derived id (`docs/desk.md`): namespace u32 (bits 96..128), tag u8 (88..96), generation u8
//! (80..88), number (0..80; a statement line's hash takes bits 0..88).

/// What a derived id names. The numbering is part of the desk's on-ledger format.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// The order's hold (a transfer), one per generation (a re-rate starts the next).
    OrderHold = 1,
    /// The quote made for the order (quote id space), per generation.
    OrderQuote = 2,
    /// The order's account in the sold currency: the customer's money arrives on it.
    AccountFrom = 3,
    /// The order's account in the bought currency: it is paid out from it.
    AccountTo = 4,
    /// The exchange's first leg, per generation.
    Leg1 = 5,
    /// The exchange's second leg, per generation.
    Leg2 = 6,
    /// The cancellation (a release of the hold, or a zero marker once it expired), per generation.
    Cancel = 7,
    /// A payout hold (bought currency to the customer), per payout number.
    Payout = 8,
    /// A refund hold (sold currency back to the customer), per refund number.
    Refund = 9,
    /// A statement line's transfer (the number is a hash of the bank account and entry).
    Line = 10,
    /// The opening balance of a bank account's shadow (the number is the ledger).
    Opening = 11,
    /// A board quote (quote id space; the number is chosen at random).
    BoardQuote = 12,
    /// The cashier's assignment of a suspense line to an order (the number: the suspense
    /// transfer's low 88 bits).
    Assign = 13,
}

/// Generations (re-rates) and payouts per order: the lookups that find the current one ask for
/// all of them in one request.
pub const GENERATIONS_MAX: u8 = 16;

/// The largest order number: 40 bits, eight base-32 symbols of the payment reference.
pub const ORDER_NUMBER_MAX: u64 = (1 << 40) - 1;

/// The id of `tag`, generation `generation`, for `number` in the desk's `namespace`.
pub fn derive(namespace: u32, tag: Tag, generation: u8, number: u64) -> u128 {
    (u128::from(namespace) << 96) | (u128::from(tag as u8) << 88) | (u128::from(generation) << 80) | u128::from(number)
}

/// The tag, generation and number of a derived id of `namespace`, if it is one.
pub fn split(namespace: u32, id: u128) -> Option<(u8, u8, u64)> {
    if (id >> 96) as u32 != namespace {
        return None;
    }
    Some(((id >> 88) as u8, (id >> 80) as u8, (id & ((1 << 80) - 1)) as u64))
}

/// A statement line's transfer id: the bank account and the bank's own entry reference (with
/// the part, when one line pays several orders) hashed into the low 88 bits. The statement is
/// left out on purpose: overlapping statements carry the same entry, which must move once.
pub fn line_id(namespace: u32, bank_iban: &str, entry_ref: &str, part: u32) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bursar-desk line v1\0");
    hasher.update(bank_iban.as_bytes());
    hasher.update(b"\0");
    hasher.update(entry_ref.as_bytes());
    hasher.update(&part.to_le_bytes());
    let mut low = [0u8; 16];
    low[..11].copy_from_slice(&hasher.finalize().as_bytes()[..11]);
    (u128::from(namespace) << 96) | (u128::from(Tag::Line as u8) << 88) | u128::from_le_bytes(low)
}

/// The id of the assignment of suspense transfer `suspense_id` to an order: one per line, so
/// assigning it twice moves nothing twice.
pub fn assign_id(namespace: u32, suspense_id: u128) -> u128 {
    (u128::from(namespace) << 96) | (u128::from(Tag::Assign as u8) << 88) | (suspense_id & ((1 << 88) - 1))
}

/// Crockford's base-32 alphabet (no I, L, O, U): what customers type without confusion.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The payment reference of order `number`: `prefix`, eight base-32 symbols, and a check symbol,
/// e.g. `KX-04F3Z7QM-Q`.
pub fn reference(prefix: &str, number: u64) -> String {
    assert!(number <= ORDER_NUMBER_MAX, "an order number has 40 bits");
    let body: String = (0..8).rev().map(|i| BASE32[((number >> (5 * i)) & 31) as usize] as char).collect();
    format!("{prefix}-{body}-{}", check_symbol(number))
}

/// The check symbol: the eight symbols' values weighted 1 to 8, summed mod 31 (a prime, so any
/// one wrong symbol and most swaps of two are caught), as a symbol of the same alphabet: banks'
/// character sets (SWIFT's among them) carry it unchanged.
fn check_symbol(number: u64) -> char {
    let sum: u64 = (0..8).map(|i| (8 - i) * ((number >> (5 * i)) & 31)).sum();
    BASE32[(sum % 31) as usize] as char
}

/// Every order number whose reference appears in `text` (a transfer title, an end-to-end id),
/// in order of appearance, duplicates removed. Spaces, dashes and case are ignored, so "kx 04f3
/// z7qm q" is found; a reference whose check symbol does not match is not.
pub fn find_references(prefix: &str, text: &str) -> Vec<u64> {
    let squeezed: Vec<u8> = text.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_uppercase()).collect();
    let prefix: Vec<u8> = prefix.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_uppercase()).collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at + prefix.len() + 9 <= squeezed.len() {
        if squeezed[at..].starts_with(&prefix) {
            if let Some(number) = decode_body(&squeezed[at + prefix.len()..at + prefix.len() + 9]) {
                if !found.contains(&number) {
                    found.push(number);
                }
                at += prefix.len() + 9;
                continue;
            }
        }
        at += 1;
    }
    found
}

fn decode_body(symbols: &[u8]) -> Option<u64> {
    let mut number = 0u64;
    for &s in &symbols[..8] {
        let s = match s {
            b'O' => b'0',
            b'I' | b'L' => b'1',
            s => s,
        };
        number = (number << 5) | BASE32.iter().position(|&b| b == s)? as u64;
    }
    (check_symbol(number) as u8 == symbols[8]).then_some(number)
}

/// The end-to-end id of a payout (`P`) or refund (`R`) `k` of order `number`, as the payout file
/// carries it and the bank's debit line returns it, e.g. `KX-04F3Z7QM-Q-P0`.
pub fn end_to_end_id(prefix: &str, refund: bool, k: u8, number: u64) -> String {
    format!("{}-{}{k}", reference(prefix, number), if refund { 'R' } else { 'P' })
}

/// The payout or refund an end-to-end id names: `(refund, k, order number)`.
pub fn parse_end_to_end_id(prefix: &str, text: &str) -> Option<(bool, u8, u64)> {
    let (head, tail) = text.trim().rsplit_once('-')?;
    let number = *find_references(prefix, head).first()?;
    let refund = match tail.as_bytes().first()? {
        b'P' | b'p' => false,
        b'R' | b'r' => true,
        _ => return None,
    };
    let k: u8 = tail[1..].parse().ok()?;
    (reference(prefix, number) == head.trim().to_ascii_uppercase() && k < GENERATIONS_MAX).then_some((refund, k, number))
}

/// Base-37 packing of an account number (IBAN: digits and letters, at most `bytes * 8 / 5.21`
/// symbols) into `N` bytes, big-endian; `None` if it has other characters or does not fit.
pub fn pack_iban<const N: usize>(iban: &str) -> Option<[u8; N]> {
    // Most significant symbol first: out = out * 37 + symbol, in reading order.
    let mut out = [0u8; N];
    for c in iban.chars().filter(|c| !c.is_whitespace()) {
        let digit = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u32 - '0' as u32 + 1,
            l @ 'A'..='Z' => l as u32 - 'A' as u32 + 11,
            _ => return None,
        };
        let mut carry = digit;
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 37 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// The account number packed by [`pack_iban`]; empty for all zeros.
pub fn unpack_iban<const N: usize>(packed: [u8; N]) -> String {
    let mut value = packed;
    let mut symbols = Vec::new();
    while value.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for byte in value.iter_mut() {
            let v = (rem << 8) | u32::from(*byte);
            *byte = (v / 37) as u8;
            rem = v % 37;
        }
        symbols.push(match rem {
            1..=10 => (b'0' + (rem - 1) as u8) as char,
            _ => (b'A' + (rem - 11) as u8) as char,
        });
    }
    symbols.iter().rev().collect()
}

/// A 28-byte record's user data (u128, u64, u32) from bytes, big-endian, and back.
pub fn user_data_of(bytes: [u8; 28]) -> (u128, u64, u32) {
    let u128 = u128::from_be_bytes(bytes[..16].try_into().expect("16 bytes"));
    let u64 = u64::from_be_bytes(bytes[16..24].try_into().expect("8 bytes"));
    (u128, u64, u32::from_be_bytes(bytes[24..].try_into().expect("4 bytes")))
}

/// The bytes [`user_data_of`] packed.
pub fn bytes_of_user_data(u128: u128, u64: u64, u32: u32) -> [u8; 28] {
    let mut bytes = [0u8; 28];
    bytes[..16].copy_from_slice(&u128.to_be_bytes());
    bytes[16..24].copy_from_slice(&u64.to_be_bytes());
    bytes[24..].copy_from_slice(&u32.to_be_bytes());
    bytes
}

/// A name in at most 28 bytes of UTF-8 (cut at a character boundary), zero-padded.
pub fn pack_name(name: &str) -> ([u8; 28], bool) {
    let mut end = name.len().min(28);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; 28];
    bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
    (bytes, end < name.len())
}

/// The name [`pack_name`] packed.
pub fn unpack_name(bytes: [u8; 28]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(28);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_are_found_in_titles() {
        for number in [0, 1, 31, 32, 123_456_789, ORDER_NUMBER_MAX] {
            let r = reference("KX", number);
            assert_eq!(find_references("KX", &format!("Payment for order {r}, thanks")), vec![number]);
            assert_eq!(find_references("KX", &r.to_lowercase().replace('-', " ")), vec![number]);
        }
        let r = reference("KX", 99);
        let wrong_check = format!("{}{}", &r[..r.len() - 1], if r.ends_with('0') { '1' } else { '0' });
        assert!(find_references("KX", &wrong_check).is_empty(), "a mistyped reference is not taken for another order");
        let two = format!("{} and {}", reference("KX", 5), reference("KX", 6));
        assert_eq!(find_references("KX", &two), vec![5, 6]);
    }

    #[test]
    fn end_to_end_ids_round_trip() {
        let e = end_to_end_id("KX", true, 3, 77);
        assert_eq!(parse_end_to_end_id("KX", &e), Some((true, 3, 77)));
        assert_eq!(parse_end_to_end_id("KX", &end_to_end_id("KX", false, 0, 77)), Some((false, 0, 77)));
        assert_eq!(parse_end_to_end_id("KX", "NOTPROVIDED"), None);
        assert!(e.len() <= 35, "pain.001 allows 35 characters");
    }

    #[test]
    fn ibans_pack_into_user_data() {
        for iban in [
            "PL61109010140000071219812874",
            "DE89370400440532013000",
            "LC55HEMM000100010012001200023015",
            "RU0204452560040702810412345678901",
        ] {
            let packed: [u8; 28] = pack_iban(iban).unwrap();
            assert_eq!(unpack_iban(packed), iban);
        }
        let packed: [u8; 20] = pack_iban("PL61109010140000071219812874").unwrap();
        assert_eq!(unpack_iban(packed), "PL61109010140000071219812874");
        assert!(pack_iban::<20>("RU0204452560040702810412345678901").is_none(), "33 symbols need more than 20 bytes");
        assert!(pack_iban::<28>("PL61-1090").is_none());
    }

    #[test]
    fn ids_split_back() {
        let id = derive(7, Tag::Leg2, 3, 12_345);
        assert_eq!(split(7, id), Some((Tag::Leg2 as u8, 3, 12_345)));
        assert_eq!(split(8, id), None);
        assert_ne!(line_id(7, "PL1", "A", 0), line_id(7, "PL1", "A", 1));
        assert_eq!(split(7, line_id(7, "PL1", "A", 0)).map(|s| s.0), Some(Tag::Line as u8));
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        let (bytes, cut) = pack_name("Przedsiębiorstwo Handlowe Żółw");
        assert!(cut);
        assert!(unpack_name(bytes).starts_with("Przedsiębiorstwo Handlowe"));
        assert_eq!(unpack_name(pack_name("Jan Kowalski").0), "Jan Kowalski");
    }
}
