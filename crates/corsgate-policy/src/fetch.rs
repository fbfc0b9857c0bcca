//! Vocabulary of the Fetch standard: tokens, safelisted and forbidden names, and the
//! parsing of `Access-Control-Request-Headers`.

// The class of each byte in a header list, from one table look-up instead of a
// chain of comparisons per byte.

/// Neither a token byte, whitespace nor a comma.
const OTHER: u8 = 0;
/// `tchar` of RFC 9110 §5.6.2: the bytes of a method or header-name token.
const TCHAR: u8 = 1;
/// Optional whitespace (RFC 9110 §5.6.3): space and horizontal tab.
const OWS: u8 = 2;
/// The list separator.
const COMMA: u8 = 3;

// Evaluated at compile time, where an index out of bounds fails the build: no panic.
#[allow(clippy::indexing_slicing)]
static CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = TCHAR;
        }
        b += 1;
    }
    let symbols = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] = TCHAR;
        i += 1;
    }
    table[b' ' as usize] = OWS;
    table[b'\t' as usize] = OWS;
    table[b',' as usize] = COMMA;
    table
};

/// 1 for the token bytes, 0 for the others: ANDed over a word, 1 when every
/// byte of it is a token byte.
// Evaluated at compile time, where an index out of bounds fails the build.
#[allow(clippy::indexing_slicing)]
static TOKEN: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        if CLASS[b] == TCHAR {
            table[b] = 1;
        }
        b += 1;
    }
    table
};

fn class(b: u8) -> u8 {
    // A `u8` always indexes a 256-entry table: the bound check is compiled away.
    CLASS.get(usize::from(b)).copied().unwrap_or(OTHER)
}

/// `tchar` of RFC 9110 §5.6.2: the bytes of a method or header-name token.
pub(crate) fn is_tchar(b: u8) -> bool {
    class(b) == TCHAR
}

/// Whether `bytes` is a non-empty token.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && token_end(bytes, 0) == bytes.len()
}

/// The index of the first byte at or after `i` that is not a token byte (or
/// the length): eight bytes at a time while all eight are, their classes
/// ANDed with one branch per word (a branch per byte costs twice as much on
/// the longest names a preflight may send), then a byte at a time.
pub(crate) fn token_end(value: &[u8], mut i: usize) -> usize {
    let token = |b: &u8| TOKEN.get(usize::from(*b)).copied().unwrap_or(0);
    // Whole chunks of the rest: each byte loaded on its own straight into its
    // look-up, with no bound to check per word.
    for chunk in value.get(i..).unwrap_or_default().chunks_exact(8) {
        if chunk.iter().fold(1, |all, b| all & token(b)) == 0 {
            break;
        }
        i += 8;
    }
    while value.get(i).is_some_and(|b| is_tchar(*b)) {
        i += 1;
    }
    i
}

/// CORS-safelisted methods (Fetch §2.2.1): never need a preflight's permission.
pub fn is_safelisted_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "POST")
}

/// Forbidden methods (Fetch §2.2.1): `fetch()` refuses them, so allowing them is
/// meaningless, and `TRACE`/`TRACK` enable cross-site tracing.
pub fn is_forbidden_method(method: &str) -> bool {
    ["CONNECT", "TRACE", "TRACK"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Methods `fetch()` normalizes to uppercase (Fetch §2.2.1, "normalize a method").
pub(crate) fn normalized_method(method: &str) -> Option<&'static str> {
    ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
}

/// The CORS response headers a server sends to answer a request (Fetch §3.2.3):
/// a page that sends one in its request has a bug, so `allow_headers` never
/// lists them.
pub(crate) fn is_cors_response_header(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
        "access-control-max-age",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The request-only names of the CORS protocol (Fetch §3.2.2): browsers send
/// them, responses never carry them, so `expose_headers` never lists them. The fix
/// for each, when one is listed there.
pub(crate) fn request_only_header_fix(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "origin" => {
            "remove it (a page knows its own origin; Access-Control-Allow-Origin already answers with it)"
        }
        "access-control-request-method" => {
            "remove it; the methods a preflight may ask for are allow_methods"
        }
        "access-control-request-headers" => {
            "remove it; the request headers a preflight may ask for are allow_headers, and the response headers scripts may read are listed here by their own names"
        }
        "access-control-request-private-network" => {
            "remove it; private network preflights are answered by allow_private_network"
        }
        _ if lower.starts_with("access-control-request-") => "remove it",
        _ => return None,
    })
}

/// The CORS response names (Fetch §3.2.3), `Access-Control-Allow-*` included:
/// the policy writes them, so `expose_headers` never lists them. The policy key
/// that sets each one.
pub(crate) fn cors_response_header_key(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "access-control-allow-origin" => "allow_origins",
        "access-control-allow-credentials" => "allow_credentials",
        "access-control-allow-methods" => "allow_methods",
        "access-control-allow-headers" => "allow_headers",
        "access-control-allow-private-network" => "allow_private_network",
        "access-control-expose-headers" => "expose_headers",
        "access-control-max-age" => "max_age",
        _ if lower.starts_with("access-control-allow-") => "the policy's keys",
        _ => return None,
    })
}

/// Forbidden request-header names (Fetch §2.2.2): scripts cannot set them, so a
/// preflight never asks for them; listing one shows a misunderstanding.
pub fn is_forbidden_request_header(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "access-control-request-private-network",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    ];
    let lower = name.to_ascii_lowercase();
    NAMES.contains(&lower.as_str()) || lower.starts_with("proxy-") || lower.starts_with("sec-")
}

/// CORS-safelisted response-header names (Fetch §2.2.2): always readable.
pub fn is_safelisted_response_header(name: &str) -> bool {
    [
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// Forbidden response-header names (Fetch §2.2.2): never exposed to scripts.
pub fn is_forbidden_response_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("set-cookie") || name.eq_ignore_ascii_case("set-cookie2")
}

/// Why an `Access-Control-Request-Headers` list is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderListError {
    /// An element is not a header-name token; its byte range in the value.
    Malformed(usize, usize),
    /// An element is not allowed; its byte range in the value.
    NotAllowed(usize, usize),
    /// More names than the caller's limit; the byte range of the first one past it.
    TooMany(usize, usize),
}

/// Walks the comma-separated elements of one `Access-Control-Request-Headers` line,
/// tolerating optional whitespace and empty elements (RFC 9110 §5.6.1). An element
/// passes if `listed` holds it (given the name and its [`head_word`]), or if it
/// is a token (RFC 9110 §5.6.2) that `other` allows. `listed` must hold tokens
/// only: what it holds needs no token check.
///
/// `listed_run(value, start, most)` is `listed` asked first, from where an
/// element starts: it reads at most `most` elements in a row that `listed`
/// holds, each followed by a comma or by the end, and
/// returns where it stopped (the end, or where an element or separators start)
/// and how many it read. What it does not read is read here, so a short run
/// only costs time.
///
/// At most `max` names are read: the next one is refused as [`HeaderListError::TooMany`]
/// before it is checked.
///
/// `unlisted_expected` (a policy that allows any name) reads each long name as
/// a token in the same pass that finds its end, instead of finding its end
/// first and reading it again when `listed` does not hold it: the answer is
/// the same either way, only the cost differs.
///
/// One pass, no allocation: the cost is linear in the length of the value
/// whatever it holds. Runs of commas and whitespace are skipped, and the end of
/// each element found, eight bytes at a time (SWAR); bytes are classified by one
/// table look-up. An element that is not a token is reported with its range,
/// whitespace trimmed.
pub(crate) fn check_header_list(
    value: &[u8],
    max: usize,
    unlisted_expected: bool,
    mut listed_run: impl FnMut(&[u8], usize, usize) -> (usize, usize),
    mut listed: impl FnMut(&[u8], u64) -> bool,
    mut other: impl FnMut(&[u8]) -> bool,
) -> Result<usize, HeaderListError> {
    let mut count = 0;
    let mut i = 0;
    loop {
        // Browsers put a comma, or a comma and a space, between names.
        if value.get(i).is_none_or(|b| class(*b) >= OWS) {
            i = skip_separators(value, i);
            if i >= value.len() {
                return Ok(count);
            }
        }
        let start = i;
        // The usual list: listed names, each followed by a comma or the end.
        // Read as a run, each name matched from its first byte without finding
        // its end first; what the run does not read is read below.
        if count < max {
            let (next, names) = listed_run(value, start, max - count);
            if names > 0 {
                count += names;
                i = next;
                continue;
            }
        }
        // The element's first word gives both its end, when short, and the head
        // word a name set compares.
        // A long name, when most are expected unlisted, is read as a token at
        // once, eight bytes at a time: `token` then says it is one, and it is
        // not read again. Otherwise only its end is found, and its bytes are
        // read again only if it is not listed.
        let mut token = false;
        let (end, head) = match word8(value, start) {
            Some(word) => match separator_bytes(word) {
                0 if !unlisted_expected => (next_separator(value, start + 8), word),
                0 => {
                    let end = token_end(value, start);
                    token = value.get(end).is_none_or(|b| class(*b) >= OWS);
                    let end = if token {
                        end
                    } else {
                        next_separator(value, end)
                    };
                    (end, word)
                }
                separators => {
                    let len = (separators.trailing_zeros() / 8) as usize;
                    (start + len, low_bytes(word, len))
                }
            },
            None => {
                let end = next_separator(value, start);
                (end, head_word(value.get(start..end).unwrap_or_default()))
            }
        };
        if count == max {
            return Err(HeaderListError::TooMany(start, end));
        }
        i = end;
        // What follows the name: a comma or the end (the usual), or whitespace
        // up to one of those, or else the element is not a name.
        let whole = match value.get(i) {
            Some(b',') | None => true,
            Some(_) => {
                while value.get(i).is_some_and(|b| class(*b) == OWS) {
                    i += 1;
                }
                matches!(value.get(i), Some(b',') | None)
            }
        };
        let name = value.get(start..end).unwrap_or_default();
        if !(whole && listed(name, head)) {
            if !whole || !(token || is_token(name)) {
                return Err(HeaderListError::Malformed(start, element_end(value, start)));
            }
            if !other(name) {
                return Err(HeaderListError::NotAllowed(start, end));
            }
        }
        count += 1;
        // Past the comma, if any.
        i += 1;
    }
}

/// Under `allow_headers = "*"`, `listed_run` of [`check_header_list`]: reads
/// from `start` at most `most` elements in a row that are tokens other than
/// `Authorization`, which `*` never covers, each followed by a comma or by the
/// end. Returns where it stopped (the end, or where an element starts) and how
/// many names it read; what it does not read (whitespace, `Authorization`, a
/// byte that is not a token's, the name past `most`) is read by the general
/// walk.
///
/// 64 bytes at a time: the bytes that are a name's are found by
/// [`name_bytes`] (SSE2 compares on x86, sixteen bytes to an instruction),
/// a byte costing about one instruction instead of a table look-up, and
/// only the others (about one per name: the commas) are looked at one by
/// one. `name_bytes` knows the bytes of the names pages send (letters,
/// digits, `-`); once an element holds another token byte, it and every
/// later one are read by [`token_bytes`], which knows them all and costs
/// about twice as much.
pub(crate) fn plain_run(value: &[u8], start: usize, most: usize) -> (usize, usize) {
    let Some(rest) = value.get(start..) else {
        return (start, 0);
    };
    let mut run = PlainRun {
        rest,
        most,
        count: 0,
        element: 0,
    };
    let mut read = run.read(0, Bytes::Names);
    if read == Read::OtherTokenBytes {
        // From the element that holds them, every byte told apart.
        read = run.read(run.element, Bytes::Tokens);
    }
    match read {
        Read::End => match run.name_ends(rest.len()) {
            // The last element, ended by the end of the value.
            Some(stop) => (start + stop, run.count),
            None => (value.len(), run.count),
        },
        _ => (start + run.element, run.count),
    }
}

/// The state of [`plain_run`]: the names read, and where the element being
/// read starts (in `rest`, the value from where the run started).
struct PlainRun<'a> {
    rest: &'a [u8],
    most: usize,
    count: usize,
    element: usize,
}

/// Which bytes [`PlainRun::read`] takes for a name's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bytes {
    /// [`name_bytes`]: letters, digits and `-`.
    Names,
    /// [`token_bytes`]: every token byte.
    Tokens,
}

/// How [`PlainRun::read`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// At the end of the value: the last element is still to be counted.
    End,
    /// Before the element being read (`PlainRun::element`): it holds a byte
    /// that is not a token's, or whitespace, or it is past `most` or is
    /// `Authorization`.
    Stop,
    /// The element being read holds a token byte `Bytes::Names` does not
    /// know: read again with `Bytes::Tokens`.
    OtherTokenBytes,
}

impl PlainRun<'_> {
    /// Reads from `from`, 64 bytes at a time, taking `bytes` for a name's.
    // Not inlined: each kind of byte is read in a loop of its own, whose
    // constants stay in registers.
    #[inline(never)]
    fn read(&mut self, from: usize, bytes: Bytes) -> Read {
        let rest = self.rest.get(from..).unwrap_or_default();
        let mask = |group: &[u8; 64]| match bytes {
            Bytes::Names => name_bytes(group),
            Bytes::Tokens => token_bytes(group),
        };
        let mut at = from;
        let mut groups = rest.chunks_exact(64);
        for group in groups.by_ref() {
            let Ok(group) = <&[u8; 64]>::try_from(group) else {
                break;
            };
            // Inside a long name every byte is a name's: nothing to do but go on.
            let names = mask(group);
            if names != u64::MAX {
                if let Some(read) = self.others(at, group, !names, bytes) {
                    return read;
                }
            }
            at += 64;
        }
        let tail = groups.remainder();
        if !tail.is_empty() {
            // The last bytes, padded with name bytes, which end nothing.
            let mut group = [b'a'; 64];
            if let Some(head) = group.get_mut(..tail.len()) {
                head.copy_from_slice(tail);
            }
            let others = !mask(&group) & !(u64::MAX << tail.len());
            if let Some(read) = self.others(at, &group, others, bytes) {
                return read;
            }
        }
        Read::End
    }

    /// Reads the bytes of `group` (the 64 at `at`) at each set bit of
    /// `others`, those that are not a name's: a comma ends an element;
    /// anything else ends the read.
    #[inline(always)]
    fn others(
        &mut self,
        at: usize,
        group: &[u8; 64],
        mut others: u64,
        bytes: Bytes,
    ) -> Option<Read> {
        while others != 0 {
            let bit = others.trailing_zeros() as usize;
            match group.get(bit) {
                Some(b',') => {
                    if self.name_ends(at + bit).is_some() {
                        return Some(Read::Stop);
                    }
                    self.element = at + bit + 1;
                    others &= others - 1;
                }
                Some(b) if bytes == Bytes::Names && is_tchar(*b) => {
                    return Some(Read::OtherTokenBytes);
                }
                _ => return Some(Read::Stop),
            }
        }
        None
    }

    /// The element being read ends at `end`: counted if it is a name the run
    /// reads; else where the run stops (at its start).
    #[inline(always)]
    fn name_ends(&mut self, end: usize) -> Option<usize> {
        let len = end - self.element;
        if len == 0 {
            return None;
        }
        let authorization = len == 13
            && self
                .rest
                .get(self.element..end)
                .is_some_and(|name| name.eq_ignore_ascii_case(b"authorization"));
        if self.count == self.most || authorization {
            return Some(self.element);
        }
        self.count += 1;
        None
    }
}

/// The bits of the bytes of `group` that `class` marks (all bits set in its
/// result for such a byte), bit `i` for byte `i`: 16 bytes at a time.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn mask64(group: &[u8; 64], class: impl Fn(safe_arch::m128i) -> safe_arch::m128i) -> u64 {
    use safe_arch::{load_unaligned_m128i, move_mask_i8_m128i};
    let mut mask = 0;
    for (i, block) in group.chunks_exact(16).enumerate() {
        let Ok(block) = <&[u8; 16]>::try_from(block) else {
            continue;
        };
        let marked = class(load_unaligned_m128i(block));
        let bits = u32::from_ne_bytes(move_mask_i8_m128i(marked).to_ne_bytes()) & 0xffff;
        mask |= u64::from(bits) << (16 * i);
    }
    mask
}

/// The bits of the bytes of `group` that are ASCII letters, digits or `-`
/// (bit `i` for byte `i`): the bytes of the names pages send.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn name_bytes(group: &[u8; 64]) -> u64 {
    mask64(group, name_bytes16)
}

/// The bytes of `bytes` that are ASCII letters, digits or `-`, all bits set.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn name_bytes16(bytes: safe_arch::m128i) -> safe_arch::m128i {
    use safe_arch::{bitor_m128i, cmp_eq_mask_i8_m128i};
    // With bit 5 set, `A`-`Z` become `a`-`z` and no other byte does.
    let letters = within(bitor_m128i(bytes, splat(0x20)), b'a', b'z');
    let digits = within(bytes, b'0', b'9');
    let dashes = cmp_eq_mask_i8_m128i(bytes, splat(b'-'));
    bitor_m128i(bitor_m128i(letters, digits), dashes)
}

/// The bits of the bytes of `group` that are token bytes (`tchar`, RFC 9110
/// §5.6.2): [`name_bytes`] for every name.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn token_bytes(group: &[u8; 64]) -> u64 {
    mask64(group, token_bytes16)
}

/// The bytes of `bytes` that are token bytes, all bits set: the visible ASCII
/// bytes but the sixteen delimiters.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn token_bytes16(x: safe_arch::m128i) -> safe_arch::m128i {
    use safe_arch::{bitandnot_m128i, bitor_m128i, cmp_eq_mask_i8_m128i};
    let is = |b: u8| cmp_eq_mask_i8_m128i(x, splat(b));
    let visible = within(x, 0x21, 0x7e);
    // `"(),/:;<=>?@[\]{}`
    let delimiters = bitor_m128i(
        bitor_m128i(
            bitor_m128i(is(b'"'), is(b'(')),
            bitor_m128i(is(b')'), is(b',')),
        ),
        bitor_m128i(
            bitor_m128i(is(b'/'), within(x, b':', b'@')),
            bitor_m128i(within(x, b'[', b']'), bitor_m128i(is(b'{'), is(b'}'))),
        ),
    );
    bitandnot_m128i(delimiters, visible)
}

/// Sixteen times `b`.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn splat(b: u8) -> safe_arch::m128i {
    safe_arch::set_splat_i8_m128i(i8::from_ne_bytes([b]))
}

/// The bytes of `x` from `lo` to `hi` (both below 0x80), all bits set.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn within(x: safe_arch::m128i, lo: u8, hi: u8) -> safe_arch::m128i {
    use safe_arch::{bitand_m128i, cmp_gt_mask_i8_m128i, cmp_lt_mask_i8_m128i};
    // Signed compares: bytes of 0x80 and above are negative, below every bound.
    bitand_m128i(
        cmp_gt_mask_i8_m128i(x, splat(lo - 1)),
        cmp_lt_mask_i8_m128i(x, splat(hi + 1)),
    )
}

/// [`name_bytes`] a byte at a time, where SSE2 is not there.
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
)))]
#[inline(always)]
fn name_bytes(group: &[u8; 64]) -> u64 {
    name_bytes_bytewise(group)
}

/// [`token_bytes`] a byte at a time, where SSE2 is not there.
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
)))]
#[inline(always)]
fn token_bytes(group: &[u8; 64]) -> u64 {
    token_bytes_bytewise(group)
}

/// [`token_bytes`] a byte at a time: where SSE2 is not there, and the
/// reference it is tested against.
#[cfg_attr(
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ),
    allow(dead_code)
)]
fn token_bytes_bytewise(group: &[u8; 64]) -> u64 {
    group
        .iter()
        .enumerate()
        .fold(0, |mask, (i, b)| mask | u64::from(is_tchar(*b)) << i)
}

/// [`name_bytes`] a byte at a time: where SSE2 is not there, and the
/// reference it is tested against.
#[cfg_attr(
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ),
    allow(dead_code)
)]
fn name_bytes_bytewise(group: &[u8; 64]) -> u64 {
    group.iter().enumerate().fold(0, |mask, (i, b)| {
        mask | u64::from(b.is_ascii_alphanumeric() || *b == b'-') << i
    })
}

/// The end of the element that starts at `start`: the next comma, less whitespace.
fn element_end(value: &[u8], start: usize) -> usize {
    let element = value.get(start..).unwrap_or_default();
    let len = element
        .iter()
        .position(|b| *b == b',')
        .unwrap_or(element.len());
    let mut hi = start + len;
    while hi > start && value.get(hi - 1).is_some_and(|b| class(*b) == OWS) {
        hi -= 1;
    }
    hi
}

/// The index of the first comma or whitespace at or after `i` (or the length).
fn next_separator(value: &[u8], mut i: usize) -> usize {
    while let Some(word) = word8(value, i) {
        let separators = separator_bytes(word);
        if separators != 0 {
            // Little-endian words: the lowest set bit is the first separator.
            return i + (separators.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while value.get(i).is_some_and(|b| class(*b) < OWS) {
        i += 1;
    }
    i
}

/// The index of the first byte at or after `i` that is neither a comma nor
/// whitespace: a byte at a time for the usual comma and space between names, a
/// word at a time through a long run (a hostile value of nothing but commas).
fn skip_separators(value: &[u8], mut i: usize) -> usize {
    let mut run = 0;
    while let Some(b) = value.get(i) {
        if class(*b) < OWS {
            return i;
        }
        i += 1;
        run += 1;
        if run == 8 {
            while let Some(word) = word8(value, i) {
                if !all_separators(word) {
                    break;
                }
                i += 8;
            }
        }
    }
    i
}

/// The eight bytes at `i`, if there are eight.
fn word8(bytes: &[u8], i: usize) -> Option<u64> {
    let word = bytes.get(i..i.checked_add(8)?)?;
    <[u8; 8]>::try_from(word).ok().map(u64::from_le_bytes)
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `word` that is not zero; exact per byte.
fn nonzero_bytes(word: u64) -> u64 {
    (((word & LOW7) + LOW7) | word) & HIGH
}

/// The high bit of each byte of `word` that is a comma, a space or a tab.
fn separator_bytes(word: u64) -> u64 {
    let not_comma = nonzero_bytes(word ^ (ONES * u64::from(b',')));
    let not_space = nonzero_bytes(word ^ (ONES * u64::from(b' ')));
    let not_tab = nonzero_bytes(word ^ (ONES * u64::from(b'\t')));
    !(not_comma & not_space & not_tab) & HIGH
}

/// Whether all eight bytes of `word` are commas, spaces or tabs.
fn all_separators(word: u64) -> bool {
    separator_bytes(word) == HIGH
}

/// The high bit of each byte of `word` from `lo` to `hi`, for bytes below 0x80.
fn bytes_in(word: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = word + ONES * u64::from(0x80 - lo);
    let above_hi = word + ONES * u64::from(0x7f - hi);
    at_least_lo & !above_hi & HIGH
}

/// The first eight bytes of `name` as one little-endian word, zero-filled past
/// the end of a shorter name: with the length, it tells names of up to eight
/// bytes apart, so that those compare as two integers.
pub(crate) fn head_word(name: &[u8]) -> u64 {
    match word8(name, 0) {
        Some(word) => word,
        None => name
            .iter()
            .rev()
            .fold(0, |word, b| word << 8 | u64::from(*b)),
    }
}

/// The first `len` bytes of `word` (little-endian), the others zeroed.
fn low_bytes(word: u64, len: usize) -> u64 {
    match len {
        0 => 0,
        1..8 => word & (u64::MAX >> (64 - 8 * len)),
        _ => word,
    }
}

/// `word` with its ASCII uppercase letters lowercased, or `None` if a byte is not
/// ASCII (no ASCII name matches it then).
pub(crate) fn fold_case(word: u64) -> Option<u64> {
    if word & HIGH != 0 {
        return None;
    }
    // The high bit of each uppercase letter, moved to 0x20.
    Some(word | bytes_in(word, b'A', b'Z') >> 2)
}

/// `word` with its ASCII uppercase letters lowercased; a byte of `0x80` or
/// above keeps its high bit, so it never equals a byte of an ASCII name.
pub(crate) fn fold_word(word: u64) -> u64 {
    // The high bits cleared first: `bytes_in` is exact for bytes below 0x80.
    word | bytes_in(word & LOW7, b'A', b'Z') >> 2
}

/// The eight bytes of `bytes` at `i` as a little-endian word, if there are eight.
pub(crate) fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    word8(bytes, i)
}

/// Whether the bytes of `stored` after the first eight equal those of `name`
/// (both longer than eight bytes and of the same length), `name` lowercased
/// first when `fold` is set.
pub(crate) fn tails_match(stored: &[u8], name: &[u8], fold: bool) -> bool {
    let n = name.len();
    if stored.len() != n || n <= 8 {
        return stored.len() == n;
    }
    let same = |i: usize| {
        let (Some(a), Some(b)) = (word8(stored, i), word8(name, i)) else {
            return false;
        };
        if fold {
            fold_case(b) == Some(a)
        } else {
            a == b
        }
    };
    let mut i = 8;
    while i + 8 < n {
        if !same(i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping the word before.
    same(n - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `listed_run` as its contract says, from `listed`: the names `listed`
    /// holds from `start`, each followed by a comma or the end.
    fn run_from(
        listed: impl Fn(&[u8]) -> bool,
    ) -> impl FnMut(&[u8], usize, usize) -> (usize, usize) {
        move |value: &[u8], mut i: usize, most: usize| {
            let mut count = 0;
            while count < most {
                let rest = &value[i.min(value.len())..];
                let Some(len) = (1..=rest.len()).find(|&len| {
                    listed(&rest[..len]) && matches!(rest.get(len), None | Some(b','))
                }) else {
                    break;
                };
                count += 1;
                i += len + 1;
                if i >= value.len() {
                    return (value.len(), count);
                }
            }
            (i, count)
        }
    }

    fn names(value: &str) -> Result<Vec<String>, HeaderListError> {
        let mut seen = Vec::new();
        check_header_list(
            value.as_bytes(),
            usize::MAX,
            false,
            |_, i, _| (i, 0),
            |_, _| false,
            |name| {
                seen.push(String::from_utf8_lossy(name).into_owned());
                true
            },
        )
        .map(|_| seen)
    }

    /// The plain reading of the grammar: split at commas, trim whitespace, skip
    /// empty elements, check each one.
    fn reference(
        value: &[u8],
        listed: impl Fn(&[u8]) -> bool,
        other: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, HeaderListError> {
        let mut count = 0;
        let mut start = 0;
        for element in value.split(|b| *b == b',') {
            let end = start + element.len();
            let (mut lo, mut hi) = (start, end);
            while lo < hi && matches!(value[lo], b' ' | b'\t') {
                lo += 1;
            }
            while hi > lo && matches!(value[hi - 1], b' ' | b'\t') {
                hi -= 1;
            }
            let name = &value[lo..hi];
            if !name.is_empty() {
                if !is_token(name) {
                    return Err(HeaderListError::Malformed(lo, hi));
                }
                if !listed(name) && !other(name) {
                    return Err(HeaderListError::NotAllowed(lo, hi));
                }
                count += 1;
            }
            start = end + 1;
        }
        Ok(count)
    }

    #[test]
    fn header_lists_read_as_the_plain_grammar_says() {
        // Every string of up to 6 bytes over an alphabet of name bytes, separators,
        // whitespace and bytes that are neither.
        let alphabet = [b'a', b'B', b',', b' ', b'\t', b';', b'-', 0x80];
        // `listed` holds tokens only, as a name set does (ignoring case).
        let listed = |name: &[u8]| name.eq_ignore_ascii_case(b"a") || name == b"a-a";
        let listed_with_head = |name: &[u8], head: u64| {
            assert_eq!(head, head_word(name));
            listed(name)
        };
        let other = |name: &[u8]| name != b"aa";
        let mut value = Vec::new();
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                value.clear();
                for _ in 0..len {
                    value.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for round in 0..4 {
                    let unlisted_expected = round % 2 == 1;
                    let at = |value: &[u8], start: usize, most: usize| {
                        if round < 2 {
                            (start, 0)
                        } else {
                            run_from(listed)(value, start, most)
                        }
                    };
                    assert_eq!(
                        check_header_list(
                            &value,
                            usize::MAX,
                            unlisted_expected,
                            at,
                            listed_with_head,
                            other
                        ),
                        reference(&value, listed, other),
                        "{:?}",
                        String::from_utf8_lossy(&value)
                    );
                }
            }
        }
    }

    #[test]
    fn long_header_lists_read_as_the_plain_grammar_says() {
        // Longer values, where runs of separators and of lowercase name bytes are
        // read eight bytes at a time: pseudo-random strings over bytes at the edges
        // of the classes (`/0 9:` `` `a z{ `` `-`, uppercase, obs-text).
        let alphabet = *b",,,,    \t\t-//0099::``aazz{{ZZ;\x80";
        let names: [&[u8]; 4] = [b"content-type", b"x-api-key", b"a", b"abcdefgh-12345678"];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut value = Vec::new();
        for round in 0..200_000 {
            value.clear();
            let len = (next() % 48) as usize;
            while value.len() < len {
                let r = next();
                match r % 4 {
                    // Mostly names and separators, so that long runs of each occur.
                    0 => value.extend_from_slice(names[(r >> 8) as usize % names.len()]),
                    1 => value.extend(std::iter::repeat_n(b',', (r >> 8) as usize % 20)),
                    _ => value.push(alphabet[(r >> 8) as usize % alphabet.len()]),
                }
            }
            let listed = |name: &[u8]| {
                name.eq_ignore_ascii_case(b"content-type") || name == b"abcdefgh-12345678"
            };
            let listed_with_head = |name: &[u8], head: u64| {
                assert_eq!(head, head_word(name));
                listed(name)
            };
            let other = |name: &[u8]| round % 2 == 0 || (name != b"aa" && name != b"x-api-key");
            assert_eq!(
                check_header_list(
                    &value,
                    usize::MAX,
                    round % 4 < 2,
                    |value: &[u8], start: usize, most: usize| {
                        if round % 8 < 4 {
                            (start, 0)
                        } else {
                            run_from(listed)(value, start, most)
                        }
                    },
                    listed_with_head,
                    other
                ),
                reference(&value, listed, other),
                "{:?}",
                String::from_utf8_lossy(&value)
            );
        }
    }

    #[test]
    fn name_bytes_are_found_sixteen_at_a_time_as_one_at_a_time() {
        // Every byte value at every place of a group, among plain bytes.
        for place in 0..64 {
            for b in 0..=255u8 {
                let mut block =
                    *b"x-Api-09,key-Zz,abcdefghijklmnopqrstuvwxyz,ABCDEFGHIJKLMNOPQRSTU";
                block[place] = b;
                assert_eq!(
                    name_bytes(&block),
                    name_bytes_bytewise(&block),
                    "{b:#x} at {place}"
                );
                assert_eq!(
                    token_bytes(&block),
                    token_bytes_bytewise(&block),
                    "{b:#x} at {place}"
                );
            }
        }
    }

    #[test]
    fn header_lists_under_any_name_read_as_the_plain_grammar_says() {
        // `allow_headers = ["*", "x_l"]`: runs of plain names, then the
        // general walk, against the plain reading; every string of up to 6
        // bytes over plain bytes, separators, other token bytes and others,
        // and longer ones made of names, where the blocks of sixteen matter.
        let listed = |name: &[u8]| name == b"x_l";
        let other = |name: &[u8]| !name.eq_ignore_ascii_case(b"authorization");
        let check = |value: &[u8]| {
            assert_eq!(
                check_header_list(
                    value,
                    usize::MAX,
                    true,
                    plain_run,
                    |name, _| listed(name),
                    other
                ),
                reference(value, listed, other),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        };
        let alphabet = [b'a', b'Z', b'9', b'-', b',', b' ', b'_', 0x80];
        let mut value = Vec::new();
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                value.clear();
                for _ in 0..len {
                    value.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                check(&value);
            }
        }
        let names: [&[u8]; 7] = [
            b"content-type",
            b"Authorization",
            b"x-a",
            b"x_l",
            b"abcdefghijklmnopqrstuvwxyz-0123456789",
            b"a b",
            b"\xc3\xa9",
        ];
        let separators: [&[u8]; 4] = [b",", b", ", b",,", b" ,"];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..100_000 {
            value.clear();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut r = state;
            for i in 0..(r % 9) {
                r = r.rotate_left(7);
                if i > 0 {
                    // Mostly commas alone, as browsers send them.
                    let s = if r & 4 == 0 {
                        0
                    } else {
                        (r >> 3) as usize % separators.len()
                    };
                    value.extend_from_slice(separators[s]);
                }
                value.extend_from_slice(names[(r >> 8) as usize % names.len()]);
            }
            check(&value);
        }
    }

    #[test]
    fn plain_runs_stop_where_the_general_walk_must_read() {
        let run = |value: &str, start: usize, most: usize| plain_run(value.as_bytes(), start, most);
        assert_eq!(run("content-type,x-api-key", 0, 64), (22, 2));
        assert_eq!(run("content-type,x-api-key", 13, 64), (22, 1));
        assert_eq!(run("a,,b,", 0, 64), (5, 2));
        assert_eq!(run("a, b", 0, 64), (2, 1));
        assert_eq!(run("a,x_y,b", 0, 64), (7, 3));
        assert_eq!(run("a,x_y,b c", 0, 64), (6, 2));
        assert_eq!(run("a,x_y,Authorization,b", 0, 64), (6, 2));
        assert_eq!(run("a,Authorization,b", 0, 64), (2, 1));
        assert_eq!(run("a,b,c", 0, 2), (4, 2));
        assert_eq!(run("", 0, 64), (0, 0));
        assert_eq!(run("a", 1, 64), (1, 0));
        let long = format!("{},{}", "a".repeat(40), "B-9".repeat(20));
        assert_eq!(run(&long, 0, 64), (long.len(), 2));
        let bad = format!("{},{}\u{e9}", "a".repeat(40), "b".repeat(20));
        assert_eq!(run(&bad, 0, 64), (41, 1));
    }

    #[test]
    fn separator_words() {
        let word = |bytes: &[u8; 8]| u64::from_le_bytes(*bytes);
        assert!(all_separators(word(b", ,\t,,, ")));
        assert!(!all_separators(word(b", ,\t,,,a")));
        assert!(!all_separators(word(b"\xac,,,,,,,")));
        assert_eq!(separator_bytes(word(b"ab,cd\te ")), 0x8000_8000_0080_0000);
        assert_eq!(separator_bytes(word(b"\xac\xa0\x89-;:/\x0b")), 0);
        for (value, at) in [
            (&b"a,b"[..], 1),
            (b"content-type,x", 12),
            (b"content-type", 12),
            (b"abcdefgh ", 8),
            (b"abcdefg\t", 7),
            (b"", 0),
        ] {
            assert_eq!(next_separator(value, 0), at, "{value:?}");
        }
    }

    #[test]
    fn head_words_tell_short_names_apart() {
        let names: [&[u8]; 12] = [
            b"",
            b"a",
            b"b",
            b"ab",
            b"ba",
            b"abc",
            b"abd",
            b"abcd",
            b"abcde",
            b"abdde",
            b"abcdefgh",
            b"abcdefgi",
        ];
        for a in names {
            for b in names {
                let same = (a.len(), head_word(a)) == (b.len(), head_word(b));
                assert_eq!(same, a == b, "{a:?} {b:?}");
            }
        }
        assert_eq!(head_word(b"abcdefgh"), head_word(b"abcdefghij"));
    }

    #[test]
    fn case_folds_ascii_letters_only() {
        let word = |bytes: &[u8; 8]| u64::from_le_bytes(*bytes);
        assert_eq!(fold_case(word(b"X-Api-Ke")), Some(word(b"x-api-ke")));
        assert_eq!(fold_case(word(b"AZ@[^_`~")), Some(word(b"az@[^_`~")));
        assert_eq!(fold_case(word(b"az-09~^|")), Some(word(b"az-09~^|")));
        assert_eq!(fold_case(word(b"ab\xc3\xa9cdef")), None);
    }

    #[test]
    fn tails_compare_after_the_head_word() {
        let stored = b"access-control-request-private-network";
        for n in 9..=stored.len() {
            let name = stored[..n].to_ascii_uppercase();
            assert!(tails_match(&stored[..n], &stored[..n], false));
            assert!(!tails_match(&stored[..n], &name, false));
            assert!(tails_match(&stored[..n], &name, true));
            let mut other = stored[..n].to_vec();
            other[n - 1] ^= 1;
            assert!(!tails_match(&stored[..n], &other, true), "{n}");
            other = stored[..n].to_vec();
            other[8] = b'^';
            assert!(!tails_match(&stored[..n], &other, true), "{n}");
        }
    }

    #[test]
    fn header_lists_tolerate_case_spaces_and_empty_elements() {
        assert_eq!(names("x-a,x-b").unwrap(), ["x-a", "x-b"]);
        assert_eq!(names(" X-A ,\t, ,x-b,").unwrap(), ["X-A", "x-b"]);
        assert_eq!(names("").unwrap(), Vec::<String>::new());
        assert_eq!(names(",,,,").unwrap(), Vec::<String>::new());
        assert!(matches!(
            names("x-a, bad header"),
            Err(HeaderListError::Malformed(5, 15))
        ));
        assert!(matches!(
            names("x-a;b"),
            Err(HeaderListError::Malformed(0, 5))
        ));
    }

    #[test]
    fn forbidden_names() {
        assert!(is_forbidden_request_header("Cookie"));
        assert!(is_forbidden_request_header("sec-fetch-mode"));
        assert!(is_forbidden_request_header("Proxy-Authorization"));
        assert!(!is_forbidden_request_header("authorization"));
        assert!(is_forbidden_method("trace"));
        assert!(!is_forbidden_method("PATCH"));
    }
}
