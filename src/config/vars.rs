//! Reading variables: one lookup (the process environment, or a map in tests) and the parsing
//! rules every area shares (empty counts as unset; booleans as true/false, 1/0, yes/no, on/off).

use super::ConfigError;

/// Variables from any lookup, so tests can build a configuration without touching the
/// process environment.
pub struct Vars<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    /// `WEAUTH_ENV=production`: variables with a development default become required.
    pub production: bool,
    /// Required variables found missing so far, reported together by [`Vars::finish`].
    missing: std::cell::RefCell<Vec<String>>,
}

impl<'a> Vars<'a> {
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Result<Vars<'a>, ConfigError> {
        let mut vars = Vars {
            get,
            production: false,
            missing: Default::default(),
        };
        vars.production = match vars.str(&["WEAUTH_ENV"]).as_deref() {
            None | Some("development") | Some("dev") => false,
            Some("production") | Some("prod") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "WEAUTH_ENV must be development or production, got {other:?}"
                )))
            }
        };
        Ok(vars)
    }

    /// The first of `names` that is set to a non-blank value.
    pub fn str(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|name| (self.get)(name).filter(|v| !v.trim().is_empty()))
    }

    /// [`Vars::str`] with a default.
    pub fn str_or(&self, names: &[&str], default: &str) -> String {
        self.str(names).unwrap_or_else(|| default.to_string())
    }

    /// A value every production deployment must set; development falls back to `dev_default`.
    /// In production a missing value is recorded (and `""` returned), so that [`Vars::finish`]
    /// names every missing variable at once.
    pub fn required(&self, names: &[&str], dev_default: &str) -> String {
        match self.str(names) {
            Some(value) => value,
            None if !self.production => dev_default.to_string(),
            None => {
                self.missing.borrow_mut().push(names.join(" or "));
                String::new()
            }
        }
    }

    /// Fails if any required variable was missing.
    pub fn finish(&self) -> Result<(), ConfigError> {
        let missing = self.missing.borrow();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ConfigError(format!(
            "{} {} required in production",
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" }
        )))
    }

    pub fn parse<T: std::str::FromStr>(
        &self,
        names: &[&str],
        default: T,
    ) -> Result<T, ConfigError> {
        match self.str(names) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                ConfigError(format!("{} must be a valid value, got {raw:?}", names[0]))
            }),
        }
    }

    pub fn bool(&self, names: &[&str], default: bool) -> Result<bool, ConfigError> {
        match self.str(names).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError(format!(
                "{} must be true or false, got {v:?}",
                names[0]
            ))),
        }
    }

    /// Milliseconds, as a [`std::time::Duration`].
    pub fn millis(&self, names: &[&str], default: u64) -> Result<std::time::Duration, ConfigError> {
        Ok(std::time::Duration::from_millis(
            self.parse(names, default)?,
        ))
    }

    /// A Go duration as GoTrue's envconfig reads one (`1m`, `90s`, `1h30m`, `500ms`); a bare
    /// number is taken as seconds.
    pub fn go_duration(
        &self,
        names: &[&str],
        default: std::time::Duration,
    ) -> Result<std::time::Duration, ConfigError> {
        match self.str(names) {
            None => Ok(default),
            Some(raw) => parse_go_duration(raw.trim()).ok_or_else(|| {
                ConfigError(format!(
                    "{} must be a duration such as 60s or 1m, got {raw:?}",
                    names[0]
                ))
            }),
        }
    }

    /// A comma-separated list, items trimmed, empty items dropped.
    pub fn list(&self, names: &[&str], default: &str) -> Vec<String> {
        self.str_or(names, default)
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Go's `time.ParseDuration` for the units configuration uses (`ms`, `s`, `m`, `h`), or a bare
/// number of seconds.
fn parse_go_duration(raw: &str) -> Option<std::time::Duration> {
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod duration_tests {
    use super::parse_go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_go_duration("5 minutes"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("m"), None);
    }
}
