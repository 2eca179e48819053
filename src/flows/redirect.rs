//! Where weauth may send a browser after a link or an OAuth sign-in: GoTrue's
//! `utilities.IsRedirectURLValid` and `GetReferrer` (`internal/utilities/request.go`).
//!
//! A `redirect_to` is allowed when it points back at `GOTRUE_SITE_URL` (same scheme, host and
//! port; any port on a loopback host, RFC 8252 §7.3) or matches one of `GOTRUE_URI_ALLOW_LIST`'s
//! globs. Everything else falls back to the site URL: an open redirect would let anyone mail a
//! link that lands a freshly signed-in session on their own site.

use crate::config::ServerConfig;

/// `redirect_to` when it is allowed, else the `Referer` when that is, else the site URL.
pub fn target(server: &ServerConfig, redirect_to: Option<&str>, referer: Option<&str>) -> String {
    [redirect_to, referer]
        .into_iter()
        .flatten()
        .find(|url| is_allowed(server, url))
        .map_or_else(|| server.site_url.clone(), str::to_string)
}

/// GoTrue's `IsRedirectURLValid`.
pub fn is_allowed(server: &ServerConfig, url: &str) -> bool {
    let (Some(site), Some(to)) = (Parts::of(&server.site_url), Parts::of(url)) else {
        return false;
    };
    if site.host == to.host
        && site.scheme == to.scheme
        && (site.port == to.port || is_localhost(to.host))
    {
        return true;
    }
    let is_http = to.scheme == "http" || to.scheme == "https";
    if !to.host.is_empty() && to.host.bytes().all(|b| b.is_ascii_digit()) {
        // 2130706433 is 127.0.0.1 to a browser; GoTrue refuses decimal IPs outright.
        return false;
    }
    if let Ok(ip) = to.host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    if is_http && !is_regular_hostname(to.host) {
        return false;
    }
    let without_fragment = url.split_once('#').map_or(url, |(u, _)| u);
    server
        .uri_allow_list
        .iter()
        .any(|pattern| Glob::new(pattern).matches(without_fragment))
}

fn is_localhost(host: &str) -> bool {
    ["localhost", "127.0.0.1", "::1", "0.0.0.0", "::"]
        .iter()
        .any(|h| host.eq_ignore_ascii_case(h))
}

/// `^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`
fn is_regular_hostname(host: &str) -> bool {
    let b = host.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-')
}

/// The parts of a URL the checks compare, taken from the text as written (as Go's `url.Parse`
/// keeps them), not normalised the way a WHATWG parser would (which turns `0x7f.1` into
/// `127.0.0.1`).
struct Parts<'a> {
    /// Lower-cased.
    scheme: String,
    /// Without brackets for IPv6; empty for `mailto:`-like URLs.
    host: &'a str,
    port: &'a str,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Parts<'a>> {
        if url.is_empty() || url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return None;
        }
        let (scheme, rest) = url.split_once(':')?;
        let mut chars = scheme.chars();
        if !chars.next()?.is_ascii_alphabetic()
            || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let Some(after) = rest.strip_prefix("//") else {
            return Some(Parts {
                scheme,
                host: "",
                port: "",
            });
        };
        let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        if authority.contains('\\') {
            return None;
        }
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (host, rest) = v6.split_once(']')?;
            (host, rest.strip_prefix(':').unwrap_or(rest))
        } else {
            host_port.rsplit_once(':').unwrap_or((host_port, ""))
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Parts { scheme, host, port })
    }
}

/// A `gobwas/glob` pattern compiled with the separators `.` and `/`, as GoTrue compiles
/// `GOTRUE_URI_ALLOW_LIST`: `*` is any run of non-separators, `**` any run at all, `?` one
/// non-separator, `[abc]`/`[a-z]`/`[!…]` one character of a class, `{a,b}` alternatives, `\`
/// escapes. A malformed pattern (unclosed `[` or `{`) matches its characters literally.
pub struct Glob {
    tokens: Vec<Token>,
}

#[derive(Clone, Debug)]
enum Token {
    Char(char),
    /// `*`
    Star,
    /// `**`
    SuperStar,
    /// `?`
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alternatives(Vec<Vec<Token>>),
}

const SEPARATORS: [char; 2] = ['.', '/'];

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let (tokens, _) = parse(&chars, 0, false);
        Glob { tokens }
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        matches(&self.tokens, &text)
    }
}

/// Parses from `at` until the end, or (inside `{…}`) until the `,` or `}` that ends this
/// alternative; returns the tokens and where it stopped.
fn parse(chars: &[char], mut at: usize, in_braces: bool) -> (Vec<Token>, usize) {
    let mut tokens = Vec::new();
    while at < chars.len() {
        let c = chars[at];
        match c {
            ',' | '}' if in_braces => return (tokens, at),
            '\\' if at + 1 < chars.len() => {
                tokens.push(Token::Char(chars[at + 1]));
                at += 2;
            }
            '*' if chars.get(at + 1) == Some(&'*') => {
                tokens.push(Token::SuperStar);
                at += 2;
            }
            '*' => {
                tokens.push(Token::Star);
                at += 1;
            }
            '?' => {
                tokens.push(Token::One);
                at += 1;
            }
            '[' => match parse_class(chars, at + 1) {
                Some((token, next)) => {
                    tokens.push(token);
                    at = next;
                }
                None => {
                    tokens.push(Token::Char('['));
                    at += 1;
                }
            },
            '{' => match parse_alternatives(chars, at + 1) {
                Some((token, next)) => {
                    tokens.push(token);
                    at = next;
                }
                None => {
                    tokens.push(Token::Char('{'));
                    at += 1;
                }
            },
            _ => {
                tokens.push(Token::Char(c));
                at += 1;
            }
        }
    }
    (tokens, at)
}

fn parse_class(chars: &[char], mut at: usize) -> Option<(Token, usize)> {
    let negated = chars.get(at) == Some(&'!');
    if negated {
        at += 1;
    }
    let mut ranges = Vec::new();
    while at < chars.len() && chars[at] != ']' {
        let lo = chars[at];
        if chars.get(at + 1) == Some(&'-') && chars.get(at + 2).is_some_and(|c| *c != ']') {
            ranges.push((lo, chars[at + 2]));
            at += 3;
        } else {
            ranges.push((lo, lo));
            at += 1;
        }
    }
    (at < chars.len()).then_some((Token::Class { negated, ranges }, at + 1))
}

fn parse_alternatives(chars: &[char], mut at: usize) -> Option<(Token, usize)> {
    let mut alternatives = Vec::new();
    loop {
        let (tokens, stop) = parse(chars, at, true);
        alternatives.push(tokens);
        match chars.get(stop) {
            Some(',') => at = stop + 1,
            Some('}') => return Some((Token::Alternatives(alternatives), stop + 1)),
            _ => return None,
        }
    }
}

fn matches(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Char(c) => text.first() == Some(c) && matches(rest, &text[1..]),
        Token::One => text
            .first()
            .is_some_and(|c| !SEPARATORS.contains(c) && matches(rest, &text[1..])),
        Token::Class { negated, ranges } => text.first().is_some_and(|c| {
            let inside = ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c));
            inside != *negated && matches(rest, &text[1..])
        }),
        Token::Star => {
            // Any run of non-separators, shortest first.
            for skip in 0..=text.len() {
                if matches(rest, &text[skip..]) {
                    return true;
                }
                if text.get(skip).is_none_or(|c| SEPARATORS.contains(c)) {
                    return false;
                }
            }
            false
        }
        Token::SuperStar => (0..=text.len()).any(|skip| matches(rest, &text[skip..])),
        Token::Alternatives(alternatives) => alternatives.iter().any(|alt| {
            let joined: Vec<Token> = alt.iter().chain(rest).cloned().collect();
            matches(&joined, text)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(site: &str, allow: &[&str]) -> ServerConfig {
        let site = site.to_string();
        let mut c = crate::config::Config::from_lookup(&|name| {
            (name == "GOTRUE_SITE_URL").then(|| site.clone())
        })
        .unwrap()
        .server;
        c.uri_allow_list = allow.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn globs_follow_gobwas_rules_with_dot_and_slash_separators() {
        let g = |p: &str, t: &str| Glob::new(p).matches(t);
        assert!(g("https://*.example.com", "https://app.example.com"));
        assert!(!g("https://*.example.com", "https://a.b.example.com"));
        assert!(!g("https://*.example.com", "https://evil.com/.example.com"));
        assert!(g("https://**.example.com", "https://a.b.example.com"));
        assert!(g(
            "https://app.example.com/**",
            "https://app.example.com/a/b?c=d"
        ));
        assert!(!g(
            "https://app.example.com/*",
            "https://app.example.com/a/b"
        ));
        assert!(g("http://localhost:300?", "http://localhost:3001"));
        assert!(g(
            "https://{app,admin}.example.com/**",
            "https://admin.example.com/x"
        ));
        assert!(!g(
            "https://{app,admin}.example.com/**",
            "https://api.example.com/x"
        ));
        assert!(g(
            "https://app[0-9].example.com",
            "https://app7.example.com"
        ));
        assert!(!g(
            "https://app[!0-9].example.com",
            "https://app7.example.com"
        ));
        assert!(g("https://x.com/\\*", "https://x.com/*"));
        assert!(!g("https://x.com/\\*", "https://x.com/a"));
        assert!(g("https://x.com/[oops", "https://x.com/[oops"));
        assert!(g("myapp://callback", "myapp://callback"));
        assert!(!g("myapp://callback", "myapp://callback/extra"));
    }

    #[test]
    fn the_site_url_and_loopback_ports_are_allowed() {
        let s = server("https://app.example.com", &[]);
        assert!(is_allowed(&s, "https://app.example.com/welcome?x=1#frag"));
        assert!(
            !is_allowed(&s, "http://app.example.com/"),
            "scheme must match"
        );
        assert!(
            !is_allowed(&s, "https://app.example.com:8443/"),
            "port must match"
        );
        let local = server("http://localhost:3000", &[]);
        assert!(is_allowed(&local, "http://localhost:5173/cb"));
        assert!(is_allowed(&local, "http://127.0.0.1:9/"), "loopback IP");
        assert!(!is_allowed(&local, "http://2130706433/"), "decimal IP");
    }

    #[test]
    fn everything_else_needs_the_allow_list() {
        let s = server(
            "https://app.example.com",
            &[
                "https://*.example.com/**",
                "com.example.app://login-callback",
            ],
        );
        assert!(is_allowed(&s, "https://admin.example.com/cb"));
        assert!(is_allowed(&s, "com.example.app://login-callback"));
        for evil in [
            "https://evil.com",
            "https://evil.com/?https://app.example.com",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://evil.com#https://admin.example.com/x",
            "//evil.com",
            "https:\\\\evil.com",
            "https://app.example.com\\@evil.com",
            "javascript:alert(1)",
            "https://evil_com.example.com/x",
            "https://evil.com\t.example.com/",
            "",
        ] {
            assert!(!is_allowed(&s, evil), "{evil:?} must not be allowed");
        }
    }

    #[test]
    fn target_falls_back_to_the_referer_then_the_site_url() {
        let s = server("https://app.example.com", &["https://*.example.com/**"]);
        assert_eq!(
            target(
                &s,
                Some("https://evil.com"),
                Some("https://admin.example.com/p")
            ),
            "https://admin.example.com/p"
        );
        assert_eq!(
            target(&s, Some("https://evil.com"), None),
            "https://app.example.com"
        );
        assert_eq!(
            target(&s, Some("https://app.example.com/x"), None),
            "https://app.example.com/x"
        );
    }
}
