//! The price table (`PRICE_TABLE_PATH`, else `config/prices.toml` built into the binary): what
//! a message costs in US dollars when its provider reports no price, by channel, provider kind
//! and destination (the longest calling-code prefix that starts the recipient), per segment or
//! per message; and what a unit of each currency a provider may report a price in is worth in
//! US dollars. Checked whole when it is loaded: a bad table stops the service at start.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::domain::{Channel, ProviderKind};

/// The table shipped with the service.
const DEFAULT_TABLE: &str = include_str!("../config/prices.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    currencies: BTreeMap<String, f64>,
    prices: Vec<RowFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowFile {
    channel: String,
    provider: Option<String>,
    prefix: Option<String>,
    per_segment: Option<f64>,
    per_message: Option<f64>,
}

#[derive(Clone, Debug)]
struct Row {
    channel: Channel,
    provider: Option<ProviderKind>,
    prefix: String,
    /// Micro-dollars per unit.
    micros: f64,
    per_segment: bool,
}

/// A price in some currency, in millionths of its unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    pub micros: i64,
    /// ISO 4217, upper case.
    pub currency: String,
}

impl Price {
    pub fn usd(micros: i64) -> Self {
        Self {
            micros,
            currency: "USD".into(),
        }
    }
}

/// A message's recorded cost: in US dollars, and as it was priced (the provider's currency,
/// or USD from the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    pub usd_micros: i64,
    pub priced: Price,
}

/// The loaded price table.
#[derive(Clone, Debug)]
pub struct PriceTable {
    rows: Vec<Row>,
    /// USD per unit of each currency.
    rates: BTreeMap<String, f64>,
}

impl PriceTable {
    /// The table at `path` (TOML, or JSON when the name ends in `.json`), or the built-in one.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else {
            return Self::parse(DEFAULT_TABLE, false);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("PRICE_TABLE_PATH {}: {e}", path.display()))?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, json).map_err(|e| format!("PRICE_TABLE_PATH {}: {e}", path.display()))
    }

    /// Parses and checks a table.
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        let file: TableFile = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| e.to_string())?
        };
        let mut rates = BTreeMap::new();
        for (code, rate) in file.currencies {
            if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(format!("currencies: {code:?} is not an ISO 4217 code"));
            }
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("currencies.{code}: must be a positive number"));
            }
            rates.insert(code, rate);
        }
        let mut rows = Vec::with_capacity(file.prices.len());
        for (i, row) in file.prices.into_iter().enumerate() {
            let at = |e: String| format!("prices[{i}]: {e}");
            let channel: Channel = row.channel.parse().map_err(at)?;
            let provider = row
                .provider
                .map(|p| p.parse::<ProviderKind>())
                .transpose()
                .map_err(at)?;
            let prefix = row.prefix.unwrap_or_default();
            let digits = prefix.strip_prefix('+').unwrap_or("");
            let well_formed =
                (1..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
            if !prefix.is_empty() && !well_formed {
                return Err(at(format!("prefix {prefix:?} is not + and digits")));
            }
            let (usd, per_segment) = match (row.per_segment, row.per_message) {
                (Some(p), None) => (p, true),
                (None, Some(p)) => (p, false),
                _ => return Err(at("give per_segment or per_message, one of them".into())),
            };
            if !(usd.is_finite() && usd >= 0.0) {
                return Err(at("a price is a number of dollars, 0 or more".into()));
            }
            rows.push(Row {
                channel,
                provider,
                prefix,
                micros: usd * 1_000_000.0,
                per_segment,
            });
        }
        Ok(Self { rows, rates })
    }

    /// The table's price of a message, in micro-dollars; `None` when no row covers it.
    pub fn price(
        &self,
        channel: Channel,
        provider: Option<ProviderKind>,
        recipient: &str,
        segments: i32,
    ) -> Option<i64> {
        let row = self
            .rows
            .iter()
            .filter(|r| r.channel == channel)
            .filter(|r| r.provider.is_none() || r.provider == provider)
            .filter(|r| recipient.starts_with(&r.prefix))
            .max_by_key(|r| (r.prefix.len(), r.provider.is_some()))?;
        let units = if row.per_segment {
            f64::from(segments.max(1))
        } else {
            1.0
        };
        Some((row.micros * units).round() as i64)
    }

    /// A price in another currency in micro-dollars, by the table's rates; `None` for a
    /// currency it has no rate for.
    pub fn to_usd(&self, price: &Price) -> Option<i64> {
        if price.currency == "USD" {
            return Some(price.micros);
        }
        let rate = self.rates.get(&price.currency)?;
        Some((price.micros as f64 * rate).round() as i64)
    }

    /// What a message costs: the provider's price when it reported one in a currency the table
    /// converts, else the table's (0 when no row covers it).
    pub fn cost(
        &self,
        reported: Option<&Price>,
        channel: Channel,
        provider: Option<ProviderKind>,
        recipient: &str,
        segments: i32,
    ) -> Cost {
        if let Some(price) = reported {
            match self.to_usd(price) {
                Some(usd_micros) => {
                    return Cost {
                        usd_micros,
                        priced: price.clone(),
                    };
                }
                None => tracing::warn!(
                    currency = %price.currency,
                    "a provider reported a price in a currency the price table has no rate for; the table's price is recorded"
                ),
            }
        }
        let usd_micros = self
            .price(channel, provider, recipient, segments)
            .unwrap_or(0);
        Cost {
            usd_micros,
            priced: Price::usd(usd_micros),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_loads_and_prices_by_the_longest_prefix() {
        let t = PriceTable::load(None).unwrap();
        assert_eq!(t.price(Channel::Sms, None, "+14155552671", 1), Some(7_900));
        assert_eq!(
            t.price(Channel::Sms, None, "+447700900123", 2),
            Some(80_000)
        );
        assert_eq!(
            t.price(Channel::Sms, None, "+5511912345678", 1),
            Some(7_900)
        );
        assert_eq!(
            t.price(Channel::Sms, Some(ProviderKind::AwsSns), "+14155552671", 1),
            Some(5_810),
            "a row for the provider wins at the same prefix"
        );
        assert_eq!(t.price(Channel::Email, None, "a@b.example", 1), Some(100));
    }

    #[test]
    fn reported_prices_are_converted_or_the_table_is_used() {
        let t = PriceTable::load(None).unwrap();
        let eur = Price {
            micros: 33_300,
            currency: "EUR".into(),
        };
        let cost = t.cost(Some(&eur), Channel::Sms, None, "+447700900123", 1);
        assert_eq!(cost.usd_micros, 35_964);
        assert_eq!(cost.priced, eur);
        let xyz = Price {
            micros: 1,
            currency: "XYZ".into(),
        };
        let cost = t.cost(Some(&xyz), Channel::Sms, None, "+447700900123", 1);
        assert_eq!(
            cost,
            Cost {
                usd_micros: 40_000,
                priced: Price::usd(40_000)
            }
        );
    }

    #[test]
    fn bad_tables_are_refused_naming_the_row() {
        for (text, wanted) in [
            (
                "[[prices]]\nchannel = \"FAX\"\nper_message = 1",
                "prices[0]",
            ),
            (
                "[[prices]]\nchannel = \"SMS\"\nprefix = \"44\"\nper_segment = 1",
                "prefix",
            ),
            (
                "[[prices]]\nchannel = \"SMS\"",
                "per_segment or per_message",
            ),
            (
                "[[prices]]\nchannel = \"SMS\"\nper_message = -1",
                "0 or more",
            ),
            (
                "[currencies]\neur = 1.0\n[[prices]]\nchannel = \"SMS\"\nper_message = 1",
                "ISO",
            ),
        ] {
            let err = PriceTable::parse(text, false).unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
        }
        let json =
            r#"{"currencies": {"EUR": 1.1}, "prices": [{"channel": "SMS", "per_segment": 0.01}]}"#;
        let t = PriceTable::parse(json, true).unwrap();
        assert_eq!(
            t.price(Channel::Sms, None, "+4915112345678", 3),
            Some(30_000)
        );
    }
}
