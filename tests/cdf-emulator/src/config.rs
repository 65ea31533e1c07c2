//! Start-up settings of one emulator instance.

use std::time::Duration;

/// Settings an emulator starts with. Most of them can be changed later through
/// [`crate::Control`] or `POST /__emulator/settings`, so tests can shorten lifetimes.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The only project the emulator serves; any other project answers 403.
    pub project: String,
    /// Client id accepted by the token endpoint.
    pub client_id: String,
    /// Client secret accepted by the token endpoint.
    pub client_secret: String,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// Age after which a sync cursor is rejected as expired (CDF: 3 days).
    pub cursor_expiry: Duration,
    /// Age after which soft-deleted instances are purged for good (CDF: 3 days).
    pub tombstone_retention: Duration,
    /// Emit `null` for properties without a value instead of leaving them out.
    pub explicit_nulls: bool,
}

/// Leaves the client secret out of debug output.
impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("project", &self.project)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("cursor_expiry", &self.cursor_expiry)
            .field("tombstone_retention", &self.tombstone_retention)
            .field("explicit_nulls", &self.explicit_nulls)
            .finish()
    }
}

/// Three days, the CDF cursor lifetime and tombstone grace period.
pub const THREE_DAYS: Duration = Duration::from_secs(3 * 24 * 3600);

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            project: "emulated-project".to_string(),
            client_id: "emulator-client".to_string(),
            client_secret: "emulator-secret".to_string(),
            token_ttl: Duration::from_secs(3600),
            cursor_expiry: THREE_DAYS,
            tombstone_retention: THREE_DAYS,
            explicit_nulls: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_hides_the_secret() {
        let text = format!("{:?}", super::EmulatorConfig::default());
        assert!(!text.contains("emulator-secret"), "{text}");
        assert!(text.contains("emulator-client"));
    }
}
