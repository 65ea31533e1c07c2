//! A single cached access token shared by every request of one client.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cdf::{CdfError, Secret};

/// How long before its expiry a token is replaced, so that a request never leaves with a
/// token that dies in flight.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token as issued by the identity provider.
#[derive(Debug, Clone)]
pub(crate) struct FetchedToken {
    pub(crate) access_token: Secret,
    pub(crate) expires_in: Duration,
}

/// Gets a new token from the identity provider.
pub(crate) trait TokenFetcher: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<FetchedToken, CdfError>> + Send;
}

/// A token handed to a request. `generation` identifies which fetch produced it, so that a
/// 401 only forces a refresh if no other request has refreshed in the meantime.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub(crate) secret: Secret,
    pub(crate) generation: u64,
}

#[derive(Debug)]
struct CachedToken {
    token: AccessToken,
    obtained_at: Instant,
    expires_in: Duration,
}

#[derive(Debug, Default)]
struct CacheState {
    current: Option<CachedToken>,
    generation: u64,
}

/// Caches one token; concurrent callers that find it stale share a single refresh, because
/// the refresh happens while the lock is held.
#[derive(Debug)]
pub(crate) struct TokenCache<F> {
    fetcher: F,
    state: Mutex<CacheState>,
}

/// True once `now` is within `margin` of the token's expiry (or past it).
pub(crate) fn needs_refresh(
    obtained_at: Instant,
    expires_in: Duration,
    now: Instant,
    margin: Duration,
) -> bool {
    obtained_at
        .checked_add(expires_in.saturating_sub(margin))
        .is_some_and(|refresh_at| now >= refresh_at)
}

impl<F: TokenFetcher> TokenCache<F> {
    pub(crate) fn new(fetcher: F) -> Self {
        Self {
            fetcher,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// A token that is valid for at least `REFRESH_MARGIN` more, fetching one if needed.
    pub(crate) async fn token(&self) -> Result<AccessToken, CdfError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.current
            && !needs_refresh(
                cached.obtained_at,
                cached.expires_in,
                Instant::now(),
                REFRESH_MARGIN,
            )
        {
            return Ok(cached.token.clone());
        }
        self.refresh_locked(&mut state).await
    }

    /// Called after CDF rejected `rejected` with 401: replaces it unless another request has
    /// already done so, in which case that newer token is returned.
    pub(crate) async fn refresh_rejected(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, CdfError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.current
            && cached.token.generation != rejected.generation
        {
            return Ok(cached.token.clone());
        }
        self.refresh_locked(&mut state).await
    }

    async fn refresh_locked(&self, state: &mut CacheState) -> Result<AccessToken, CdfError> {
        // Drop the stale token first: if the fetch fails, the next caller must not reuse it.
        state.current = None;
        let fetched = self.fetcher.fetch().await?;
        state.generation += 1;
        let token = AccessToken {
            secret: fetched.access_token,
            generation: state.generation,
        };
        tracing::debug!(
            expires_in_s = fetched.expires_in.as_secs(),
            generation = state.generation,
            "obtained CDF access token"
        );
        state.current = Some(CachedToken {
            token: token.clone(),
            obtained_at: Instant::now(),
            expires_in: fetched.expires_in,
        });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Issues `token-1`, `token-2`, ... and counts the fetches.
    struct CountingFetcher {
        fetches: AtomicU32,
        expires_in: Duration,
        delay: Duration,
        fail_first: bool,
    }

    impl CountingFetcher {
        fn new(expires_in: Duration) -> Self {
            Self {
                fetches: AtomicU32::new(0),
                expires_in,
                delay: Duration::ZERO,
                fail_first: false,
            }
        }

        fn count(&self) -> u32 {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    impl TokenFetcher for CountingFetcher {
        async fn fetch(&self) -> Result<FetchedToken, CdfError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail_first && n == 1 {
                return Err(CdfError::Auth {
                    token_url: "http://idp/token".into(),
                    status: Some(503),
                    error: "temporarily_unavailable".into(),
                    description: None,
                    retryable: true,
                    source: None,
                });
            }
            Ok(FetchedToken {
                access_token: Secret::new(format!("token-{n}")),
                expires_in: self.expires_in,
            })
        }
    }

    #[test]
    fn refresh_math_uses_a_sixty_second_margin() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!needs_refresh(t0, hour, at(0), REFRESH_MARGIN));
        assert!(!needs_refresh(t0, hour, at(3539), REFRESH_MARGIN));
        assert!(needs_refresh(t0, hour, at(3540), REFRESH_MARGIN));
        assert!(needs_refresh(t0, hour, at(4000), REFRESH_MARGIN));
        // Tokens shorter-lived than the margin are always refreshed.
        assert!(needs_refresh(
            t0,
            Duration::from_secs(30),
            t0,
            REFRESH_MARGIN
        ));
    }

    #[test]
    fn a_lifetime_beyond_the_clock_range_does_not_panic() {
        let t0 = Instant::now();
        assert!(!needs_refresh(t0, Duration::MAX, t0, REFRESH_MARGIN));
    }

    #[tokio::test]
    async fn cached_token_is_reused_until_the_margin_then_refreshed() {
        // Reuse is shown with a token far from its margin, so no slow moment between the
        // calls can push it into the margin.
        let cache = TokenCache::new(CountingFetcher::new(Duration::from_secs(3600)));
        assert_eq!(cache.token().await.unwrap().secret.expose(), "token-1");
        assert_eq!(cache.token().await.unwrap().secret.expose(), "token-1");
        assert_eq!(cache.fetcher.count(), 1);

        // Valid for 400 ms beyond the refresh margin: after sleeping longer than that (a
        // sleep only ever lasts longer on a busy machine) the token is in its margin.
        let cache = TokenCache::new(CountingFetcher::new(
            REFRESH_MARGIN + Duration::from_millis(400),
        ));
        assert_eq!(cache.token().await.unwrap().secret.expose(), "token-1");
        tokio::time::sleep(Duration::from_millis(450)).await;
        let refreshed = cache.token().await.unwrap();
        assert_eq!(refreshed.secret.expose(), "token-2");
        assert_eq!(refreshed.generation, 2);
        assert_eq!(cache.fetcher.count(), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let mut fetcher = CountingFetcher::new(Duration::from_secs(3600));
        fetcher.delay = Duration::from_millis(200);
        let cache = Arc::new(TokenCache::new(fetcher));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let cache = Arc::clone(&cache);
            tasks.spawn(async move { cache.token().await.map(|t| t.secret.expose().to_owned()) });
        }
        let mut tokens = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            tokens.push(joined.unwrap().unwrap());
        }
        assert_eq!(tokens.len(), 32);
        assert!(tokens.iter().all(|t| t == "token-1"), "{tokens:?}");
        assert_eq!(cache.fetcher.count(), 1);
    }

    #[tokio::test]
    async fn rejected_token_is_refreshed_once_for_all_rejecting_callers() {
        let cache = Arc::new(TokenCache::new(CountingFetcher::new(Duration::from_secs(
            3600,
        ))));
        let first = cache.token().await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let cache = Arc::clone(&cache);
            let rejected = first.clone();
            tasks.spawn(async move { cache.refresh_rejected(&rejected).await.unwrap() });
        }
        while let Some(joined) = tasks.join_next().await {
            assert_eq!(joined.unwrap().secret.expose(), "token-2");
        }
        assert_eq!(cache.fetcher.count(), 2);
        // A later rejection of the new token refreshes again.
        let second = cache.token().await.unwrap();
        let third = cache.refresh_rejected(&second).await.unwrap();
        assert_eq!(third.secret.expose(), "token-3");
    }

    #[tokio::test]
    async fn failed_fetch_is_reported_and_the_next_call_tries_again() {
        let mut fetcher = CountingFetcher::new(Duration::from_secs(3600));
        fetcher.fail_first = true;
        let cache = TokenCache::new(fetcher);
        let err = cache.token().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(cache.token().await.unwrap().secret.expose(), "token-2");
    }
}
