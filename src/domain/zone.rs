//! A time zone, as pledges, participants and campaign files name one: an IANA zone,
//! kept parsed (a [`Tz`]) and printed as its current IANA name.

use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;

/// An IANA time zone. A renamed zone is kept under its current name
/// (`Europe/Kiev` → `Europe/Kyiv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Zone(Tz);

/// The name is not an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone “{0}”: use an IANA name such as Europe/Berlin")]
pub struct UnknownZone(String);

impl UnknownZone {
    /// The name as given (cut short if it was long).
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Zone {
    pub const UTC: Zone = Zone(Tz::UTC);

    /// An IANA name, surrounding white space ignored; a renamed zone's old name is read as
    /// its current one.
    pub fn parse(s: &str) -> Result<Zone, UnknownZone> {
        let name = current_name(s.trim());
        name.parse::<Tz>()
            .map(Zone)
            .map_err(|_| UnknownZone(name.chars().take(80).collect()))
    }

    pub fn tz(self) -> Tz {
        self.0
    }

    /// The IANA name.
    pub fn as_str(&self) -> &'static str {
        self.0.name()
    }
}

/// UTC: the zone of anyone who has not said theirs.
impl Default for Zone {
    fn default() -> Zone {
        Zone::UTC
    }
}

impl From<Tz> for Zone {
    fn from(tz: Tz) -> Zone {
        Zone::parse(tz.name()).unwrap_or(Zone(tz))
    }
}

impl From<Zone> for Tz {
    fn from(z: Zone) -> Tz {
        z.0
    }
}

impl AsRef<str> for Zone {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Zone {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Zone {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl FromStr for Zone {
    type Err = UnknownZone;
    fn from_str(s: &str) -> Result<Zone, UnknownZone> {
        Zone::parse(s)
    }
}

impl serde::Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Zone::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The current name of a renamed IANA zone. Browsers (Chromium 156 among them) still
/// report some zones by their old names, and a participant should see the name their
/// country uses now; chrono-tz reads both but keeps the name it was given.
pub fn current_name(name: &str) -> &str {
    RENAMED
        .iter()
        .find(|(old, _)| *old == name)
        .map_or(name, |(_, new)| new)
}

/// (old name, current name) of zones renamed in the IANA database.
const RENAMED: &[(&str, &str)] = &[
    ("Asia/Calcutta", "Asia/Kolkata"),
    ("Europe/Kiev", "Europe/Kyiv"),
    ("Europe/Uzhgorod", "Europe/Kyiv"),
    ("Europe/Zaporozhye", "Europe/Kyiv"),
    ("Asia/Katmandu", "Asia/Kathmandu"),
    ("Asia/Saigon", "Asia/Ho_Chi_Minh"),
    ("Asia/Rangoon", "Asia/Yangon"),
    ("Asia/Dacca", "Asia/Dhaka"),
    ("Asia/Thimbu", "Asia/Thimphu"),
    ("Asia/Ulan_Bator", "Asia/Ulaanbaatar"),
    ("Asia/Ujung_Pandang", "Asia/Makassar"),
    ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
    ("America/Godthab", "America/Nuuk"),
    ("Atlantic/Faeroe", "Atlantic/Faroe"),
    ("Pacific/Enderbury", "Pacific/Kanton"),
    ("Pacific/Truk", "Pacific/Chuuk"),
    ("Pacific/Ponape", "Pacific/Pohnpei"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_holds_the_parsed_tz_and_prints_its_iana_name() {
        let z = Zone::parse(" Europe/Berlin ").unwrap();
        assert_eq!(z.tz(), Tz::Europe__Berlin);
        assert_eq!(z.to_string(), "Europe/Berlin");
        assert_eq!(z, "Europe/Berlin");
        assert_eq!(serde_json::to_string(&z).unwrap(), "\"Europe/Berlin\"");
    }

    #[test]
    fn renamed_zones_are_kept_under_their_current_names() {
        assert_eq!(Zone::parse("Asia/Calcutta").unwrap(), "Asia/Kolkata");
        assert_eq!(Zone::from(Tz::Europe__Kiev), "Europe/Kyiv");
        assert_eq!(current_name("Europe/Berlin"), "Europe/Berlin");
        for (old, new) in RENAMED {
            assert!(
                old.parse::<Tz>().is_ok() && new.parse::<Tz>().is_ok(),
                "{old} {new}"
            );
        }
    }

    #[test]
    fn an_unknown_zone_is_refused_with_how_to_name_one() {
        let err = Zone::parse("Mars/Olympus").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown time zone “Mars/Olympus”: use an IANA name such as Europe/Berlin"
        );
        assert_eq!(err.name(), "Mars/Olympus");
        assert!(Zone::parse("").is_err());
        assert!(serde_json::from_str::<Zone>("\"Nowhere\"").is_err());
    }
}
