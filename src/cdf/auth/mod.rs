//! Access tokens for CDF: fetched with the OAuth2 client-credentials grant and cached until
//! shortly before they expire.

mod client_credentials;
mod token_cache;

pub(crate) use client_credentials::ClientCredentialsFetcher;
pub(crate) use token_cache::{AccessToken, TokenCache};
