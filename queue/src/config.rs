//! Reading typed settings from the environment, with an error that names the variable.

use std::{str::FromStr, time::Duration};

use anyhow::{anyhow, Context};

/// Reads `name`, or returns `default` when it is unset or empty.
pub fn var_or<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|error| anyhow!("{name}={value:?} is invalid: {error}")),
        _ => Ok(default),
    }
}

/// Reads a required variable.
pub fn required(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .with_context(|| format!("{name} must be set"))
}

/// Reads a duration in whole seconds; it must be positive.
pub fn secs_or(name: &str, default_secs: u64) -> anyhow::Result<Duration> {
    let secs: u64 = var_or(name, default_secs)?;
    if secs == 0 {
        return Err(anyhow!("{name} must be at least 1 second"));
    }
    Ok(Duration::from_secs(secs))
}

/// Reads a flag: 1/true/yes or 0/false/no.
pub fn flag(name: &str) -> anyhow::Result<bool> {
    match std::env::var(name)
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "0" | "false" | "no" => Ok(false),
        "1" | "true" | "yes" => Ok(true),
        other => Err(anyhow!("{name}={other:?} is invalid: expected 1 or 0")),
    }
}
