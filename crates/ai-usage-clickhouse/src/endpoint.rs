//! Where ClickHouse is: the URL as users write it (`https://user:pass@host:8443`)
//! split into the base address, credentials and database.

use base64::Engine;
use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// Default database of the fleet's tables.
pub const DEFAULT_DATABASE: &str = "ai_usage";

/// A ClickHouse HTTP endpoint and database.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host:port/path` without credentials, query or fragment.
    base: String,
    user: Option<String>,
    password: Option<String>,
    database: String,
}

impl std::fmt::Debug for Endpoint {
    // The password never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish()
    }
}

impl Endpoint {
    /// Parses `http[s]://[user[:password]@]host[:port][/]` and checks the
    /// database name (letters, digits and `_`, so it can be quoted safely).
    pub fn parse(url: &str, database: &str) -> Result<Endpoint> {
        // The text of a URL that does not parse is never repeated: it may
        // hold a password, and nothing can say where that password ends.
        let parsed = url::Url::parse(url.trim()).map_err(|e| Error::InvalidUrl(wrong_part(e)))?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => {
                return Err(Error::InvalidUrl(format!(
                    "scheme {other:?} (use http:// or https://)"
                )))
            }
        }
        if cfg!(not(feature = "https")) && parsed.scheme() == "https" {
            return Err(Error::InvalidUrl(
                "https:// needs the `https` feature of ai-usage-clickhouse".into(),
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| Error::InvalidUrl("no host".into()))?;
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let password = parsed.password().map(decode);
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| Error::InvalidUrl("no port".into()))?;
        let path = parsed.path().trim_end_matches('/');
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        check_identifier(database)?;
        Ok(Endpoint {
            base: format!("{}://{host}:{port}{path}/", parsed.scheme()),
            user,
            password,
            database: database.to_string(),
        })
    }

    /// The address requests go to (no credentials).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Address and database without credentials, e.g. for a checkpoint.
    pub fn display_target(&self) -> String {
        format!("{}{}", self.base, self.database)
    }

    /// The `Authorization: Basic …` header value, if the URL had a user.
    pub(crate) fn authorization(&self) -> Option<String> {
        let user = self.user.as_deref()?;
        let pair = format!("{user}:{}", self.password.as_deref().unwrap_or(""));
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }
}

/// Database and table names are put into SQL unquoted-safe: only
/// `[A-Za-z0-9_]`, not starting with a digit.
fn check_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidUrl(format!(
            "database name {name:?}: use letters, digits and _"
        )))
    }
}

/// Names the part of an unparsable URL that is wrong, without quoting it.
fn wrong_part(e: url::ParseError) -> String {
    use url::ParseError as P;
    let part = match e {
        P::EmptyHost => "the host is empty",
        P::InvalidPort => "the port is not a number from 1 to 65535",
        P::InvalidIpv4Address => "the host is not a valid IPv4 address",
        P::InvalidIpv6Address => "the host is not a valid IPv6 address (check the [ ] brackets)",
        P::InvalidDomainCharacter => {
            "the host holds a character not allowed in a host name (a space?)"
        }
        P::IdnaError => "the host is not a valid international domain name",
        P::RelativeUrlWithoutBase => "no scheme (write http://host:8123 or https://host:8443)",
        P::SetHostOnCannotBeABaseUrl | P::RelativeUrlWithCannotBeABaseBase => {
            "not a http:// or https:// address"
        }
        P::Overflow => "the address is too long",
        _ => "the address is not a URL",
    };
    format!("{part} (the address is not shown: it may hold a password)")
}

/// The URL with any password replaced, for error messages. A URL that does
/// not parse is not shown at all (it may hold a password in a place no
/// parser can find): `<unparsable URL>`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_credentials_from_the_address() {
        let e = Endpoint::parse("https://bob:p%40ss@ch.example.com:8443/", "ai_usage").unwrap();
        assert_eq!(e.base(), "https://ch.example.com:8443/");
        assert_eq!(e.user.as_deref(), Some("bob"));
        assert_eq!(e.password.as_deref(), Some("p@ss"));
        assert_eq!(e.authorization().unwrap(), "Basic Ym9iOnBAc3M=");
        assert!(!format!("{e:?}").contains("p@ss"));
        let plain = Endpoint::parse("http://127.0.0.1:8123", "x").unwrap();
        assert_eq!(plain.base(), "http://127.0.0.1:8123/");
        assert_eq!(plain.authorization(), None);
        assert_eq!(
            Endpoint::parse("http://h", "d").unwrap().base(),
            "http://h:80/"
        );
    }

    #[test]
    fn rejects_bad_schemes_and_database_names() {
        assert!(Endpoint::parse("ftp://h", "d").is_err());
        assert!(Endpoint::parse("not a url", "d").is_err());
        assert!(Endpoint::parse("http://h", "a;drop").is_err());
        assert!(Endpoint::parse("http://h", "1abc").is_err());
        assert_eq!(redact("http://u:secret@h/"), "http://u:***@h/");
        assert_eq!(redact("http://u:secret@h:999999/"), "<unparsable URL>");
    }

    #[test]
    fn an_unparsable_address_is_never_quoted_and_names_the_wrong_part() {
        let cases = [
            ("http://bob:S3CRETpw@127.0.0.1:999999/", "port"),
            ("http://bob:S3CRETpw@[::1/", "IPv6"),
            ("http://bob:S3CRETpw@ho st:8123/", "host"),
            ("http://bob:S3CRETpw@:8123/", "host"),
            ("http://bob:S3CRETpw@/", "host"),
        ];
        for (url, part) in cases {
            let message = Endpoint::parse(url, "ai_usage").unwrap_err().to_string();
            assert!(!message.contains("S3CRET"), "{url}: {message}");
            assert!(!message.contains("bob"), "{url}: {message}");
            assert!(message.contains(part), "{url}: {message}");
        }
    }
}
