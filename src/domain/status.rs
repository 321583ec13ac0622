//! Alert status and acknowledgment status, with the rule that `resolved` is final.

use std::fmt;
use std::str::FromStr;

/// Where an alert stands; the latest acknowledgment decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    /// Raised, nobody has reacted.
    Open,
    /// Someone has seen it.
    Acknowledged,
    /// Handed up for more urgent attention.
    Escalated,
    /// Done; final.
    Resolved,
}

impl AlertStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Resolved => "resolved",
        }
    }

    /// `resolved` is final: no acknowledgment may follow it.
    pub fn accepts_acknowledgment(self) -> bool {
        self != AlertStatus::Resolved
    }
}

impl FromStr for AlertStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "open" => AlertStatus::Open,
            "acknowledged" => AlertStatus::Acknowledged,
            "escalated" => AlertStatus::Escalated,
            "resolved" => AlertStatus::Resolved,
            _ => return Err("must be one of open, acknowledged, escalated, resolved".to_owned()),
        })
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an acknowledgment sets the alert to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckStatus {
    /// Seen.
    Acknowledged,
    /// Needs more urgent attention.
    Escalated,
    /// Done.
    Resolved,
}

impl AckStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        self.alert_status().as_str()
    }

    /// The alert status this acknowledgment leads to.
    pub fn alert_status(self) -> AlertStatus {
        match self {
            AckStatus::Acknowledged => AlertStatus::Acknowledged,
            AckStatus::Escalated => AlertStatus::Escalated,
            AckStatus::Resolved => AlertStatus::Resolved,
        }
    }
}

impl FromStr for AckStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "acknowledged" => AckStatus::Acknowledged,
            "escalated" => AckStatus::Escalated,
            "resolved" => AckStatus::Resolved,
            _ => return Err("must be one of acknowledged, escalated, resolved".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resolved_is_final() {
        assert!(AlertStatus::Open.accepts_acknowledgment());
        assert!(AlertStatus::Acknowledged.accepts_acknowledgment());
        assert!(AlertStatus::Escalated.accepts_acknowledgment());
        assert!(!AlertStatus::Resolved.accepts_acknowledgment());
    }

    #[test]
    fn open_is_not_an_acknowledgment() {
        assert!("open".parse::<AckStatus>().is_err());
        assert_eq!("escalated".parse::<AckStatus>(), Ok(AckStatus::Escalated));
    }
}
