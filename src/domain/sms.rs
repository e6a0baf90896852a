//! How an SMS body travels: in the GSM 7-bit alphabet (GSM 03.38; a character of the extension
//! table, such as `€` or `{`, takes two septets) when every character has a code there, else in
//! UCS-2; and in how many segments carriers split it (160 septets or 70 UTF-16 units in one
//! message; 153 or 67 per segment once concatenated, never splitting an escape sequence or a
//! surrogate pair). Smart encoding replaces look-alike characters (curly quotes, long dashes,
//! unusual spaces) with their GSM-7 forms, as Twilio's does, so a body stays GSM-7.

use serde::Serialize;
use utoipa::ToSchema;

/// The character set an SMS body is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GSM-7" => Ok(Encoding::Gsm7),
            "UCS-2" => Ok(Encoding::Ucs2),
            other => Err(format!("unknown encoding {other:?}")),
        }
    }
}

/// An SMS body's encoding and segment count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segmented {
    pub encoding: Encoding,
    pub segments: i32,
}

/// Septets of one character in the GSM 7-bit alphabet: 1, 2 (extension table) or none.
fn septets(c: char) -> Option<usize> {
    let mut buf = [0u8; 4];
    gsm7_alt::encoded_len(c.encode_utf8(&mut buf)).ok()
}

/// Splits units into segments of `per_part` once they exceed `single`, never cutting one
/// character's units apart; `widths` are each character's units.
fn count_segments(
    widths: impl Iterator<Item = usize> + Clone,
    single: usize,
    per_part: usize,
) -> i32 {
    if widths.clone().sum::<usize>() <= single {
        return 1;
    }
    let (mut segments, mut used) = (1, 0);
    for width in widths {
        if used + width > per_part {
            segments += 1;
            used = 0;
        }
        used += width;
    }
    segments
}

/// The encoding and segments of `body` as it is (an empty body is one segment).
pub fn segment(body: &str) -> Segmented {
    let gsm: Option<Vec<usize>> = body.chars().map(septets).collect();
    match gsm {
        Some(widths) => Segmented {
            encoding: Encoding::Gsm7,
            segments: count_segments(widths.iter().copied(), 160, 153),
        },
        None => Segmented {
            encoding: Encoding::Ucs2,
            segments: count_segments(body.chars().map(char::len_utf16), 70, 67),
        },
    }
}

/// The GSM-7 stand-in of a look-alike character, if it has one (`""` drops it).
fn look_alike(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00AB}' | '\u{00BB}' | '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}'
        | '\u{2033}' | '\u{02BA}' | '\u{02EE}' | '\u{FF02}' => "\"",
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02B9}'
        | '\u{02BC}' | '\u{02C8}' | '\u{FF07}' => "'",
        '\u{2039}' => "<",
        '\u{203A}' => ">",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' | '\u{FF0D}' => "-",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => " ",
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' => "",
        '\u{2022}' => "-",
        '\u{FF0C}' => ",",
        '\u{FF1A}' => ":",
        '\u{FF1B}' => ";",
        '\u{FF0E}' => ".",
        _ => return None,
    })
}

/// `body` with its look-alike characters replaced by GSM-7 ones; other characters are kept,
/// so a body with an emoji stays UCS-2.
pub fn smart_encode(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for c in body.chars() {
        match look_alike(c) {
            Some(stand_in) => out.push_str(stand_in),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(body: &str) -> (Encoding, i32) {
        let s = segment(body);
        (s.encoding, s.segments)
    }

    #[test]
    fn gsm7_bodies_take_160_then_153_septets_a_segment() {
        assert_eq!(seg(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(seg(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(seg(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(seg(&"a".repeat(307)), (Encoding::Gsm7, 3));
        assert_eq!(seg(""), (Encoding::Gsm7, 1));
    }

    #[test]
    fn extension_characters_count_twice_and_are_never_split() {
        // 80 euro signs are 160 septets: one message.
        assert_eq!(seg(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(seg(&"{".repeat(81)), (Encoding::Gsm7, 2));
        // 152 septets then an escape sequence: it moves whole to the second segment.
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(seg(&body), (Encoding::Gsm7, 2));
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(seg(&body), (Encoding::Gsm7, 3));
    }

    #[test]
    fn one_emoji_makes_a_body_ucs2_of_70_then_67_units_a_segment() {
        let seventy_one = format!("{}😀", "a".repeat(70));
        assert_eq!(seventy_one.chars().count(), 71);
        assert_eq!(seg(&seventy_one), (Encoding::Ucs2, 2));
        assert_eq!(seg(&"é".repeat(160)), (Encoding::Gsm7, 1), "é is GSM-7");
        assert_eq!(seg(&"ж".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(seg(&"ж".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(seg(&"ж".repeat(135)), (Encoding::Ucs2, 3));
        // A surrogate pair is not split: 66 units and an emoji fill the first segment.
        let body = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
        assert_eq!(seg(&body), (Encoding::Ucs2, 2));
    }

    #[test]
    fn smart_encoding_keeps_a_body_with_curly_quotes_and_dashes_gsm7() {
        let body = "Doors open at 19:00 \u{2014} don\u{2019}t miss \u{201C}Opening\u{201D}\u{2026}";
        assert_eq!(seg(body).0, Encoding::Ucs2);
        let smart = smart_encode(body);
        assert_eq!(smart, "Doors open at 19:00 - don't miss \"Opening\"...");
        assert_eq!(seg(&smart), (Encoding::Gsm7, 1));
        assert_eq!(seg(&smart_encode("Hi 😀")).0, Encoding::Ucs2);
    }
}
