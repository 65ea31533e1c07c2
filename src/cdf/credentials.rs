//! OAuth2 client-credentials settings and the redacting secret type that carries them.

pub use crate::secret::Secret;

/// Identity provider settings for the OAuth2 client-credentials grant.
///
/// `audience` and `resource` are only sent when set: Auth0-style and ADFS-style providers
/// want them, Entra ID v2 rejects unknown parameters less predictably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The identity provider's token endpoint.
    pub token_url: String,
    /// The OAuth2 client (application) id.
    pub client_id: String,
    /// The client secret; redacted in `Debug` output and in every error message.
    pub client_secret: Secret,
    /// Sent space-separated in one `scope` field; left out when empty.
    pub scopes: Vec<String>,
    /// The `audience` form field; sent only when set.
    pub audience: Option<String>,
    /// The `resource` form field; sent only when set.
    pub resource: Option<String>,
}

impl ClientCredentials {
    /// The form fields of the token request, in a stable order.
    pub(crate) fn form_fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        if let Some(audience) = self.audience.as_deref() {
            fields.push(("audience", audience));
        }
        if let Some(resource) = self.resource.as_deref() {
            fields.push(("resource", resource));
        }
        fields
    }

    /// The `scope` field value, or `None` when no scopes are configured.
    pub(crate) fn scope_field(&self) -> Option<String> {
        let scopes: Vec<&str> = self
            .scopes
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if scopes.is_empty() {
            None
        } else {
            Some(scopes.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> ClientCredentials {
        ClientCredentials {
            token_url: "https://idp.example/token".into(),
            client_id: "id-1".into(),
            client_secret: Secret::new("very-secret"),
            scopes: vec![
                "https://api.cognitedata.com/.default".into(),
                "other".into(),
            ],
            audience: None,
            resource: None,
        }
    }

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let creds = credentials();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("***"));
        assert_eq!(format!("{}", creds.client_secret), "***");
        assert_eq!(creds.client_secret.expose(), "very-secret");
    }

    #[test]
    fn form_leaves_out_unset_optional_fields() {
        let creds = credentials();
        let names: Vec<&str> = creds.form_fields().iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["grant_type", "client_id", "client_secret"]);
        assert_eq!(
            creds.scope_field().as_deref(),
            Some("https://api.cognitedata.com/.default other")
        );
    }

    #[test]
    fn form_includes_audience_and_resource_when_set() {
        let creds = ClientCredentials {
            audience: Some("aud".into()),
            resource: Some("res".into()),
            scopes: vec![" ".into()],
            ..credentials()
        };
        let fields = creds.form_fields();
        assert!(fields.contains(&("audience", "aud")));
        assert!(fields.contains(&("resource", "res")));
        assert_eq!(creds.scope_field(), None);
    }
}
