//! `Cancel`: the cancellation tokens a run is tied to. It is the one place
//! that knows whether the `cancellation` feature is on; without it a `Cancel`
//! is always empty and never fires.

use std::future::Future;
use std::task::Poll;

use crate::error::{Error, Result};

#[cfg(feature = "cancellation")]
type Token = tokio_util::sync::CancellationToken;

/// Without the feature there is no token to hold: this type has no values.
#[cfg(not(feature = "cancellation"))]
#[derive(Clone, Debug)]
enum Token {}

#[cfg(not(feature = "cancellation"))]
impl Token {
    fn is_cancelled(&self) -> bool {
        match *self {}
    }

    async fn cancelled(&self) {
        match *self {}
    }
}

/// The tokens that abandon a run: any one of them cancelled cancels it.
/// Empty (the default) means the run cannot be cancelled.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cancel {
    tokens: Vec<Token>,
}

impl Cancel {
    /// Cancelled when `token` is.
    #[cfg(feature = "cancellation")]
    pub(crate) fn on(token: Token) -> Cancel {
        Cancel {
            tokens: vec![token],
        }
    }

    /// Cancelled when any of `cancels` is (a pipeline's stages).
    pub(crate) fn any<'a>(cancels: impl IntoIterator<Item = &'a Cancel>) -> Cancel {
        Cancel {
            tokens: cancels
                .into_iter()
                .flat_map(|c| c.tokens.iter().cloned())
                .collect(),
        }
    }

    /// Whether there is a token at all.
    pub(crate) fn is_armed(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Whether a token has been cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.tokens.iter().any(Token::is_cancelled)
    }

    /// [`Error::Cancelled`] for `program` once a token has been cancelled.
    pub(crate) fn check(&self, program: &str) -> Result<()> {
        if self.is_cancelled() {
            return Err(cancelled(program));
        }
        Ok(())
    }

    /// Resolves when a token is cancelled; never without one.
    pub(crate) async fn cancelled(&self) {
        if self.tokens.is_empty() {
            return std::future::pending().await;
        }
        let mut waits: Vec<_> = self
            .tokens
            .iter()
            .map(|t| Box::pin(t.cancelled()))
            .collect();
        std::future::poll_fn(|cx| {
            if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Sleeps for `delay` (on tokio's clock), ending early with
    /// [`Error::Cancelled`] for `program` when a token is cancelled.
    pub(crate) async fn sleep(&self, program: &str, delay: std::time::Duration) -> Result<()> {
        tokio::select! {
            biased;
            () = self.cancelled() => Err(cancelled(program)),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

/// The error for a run abandoned through its token.
pub(crate) fn cancelled(program: &str) -> Error {
    Error::Cancelled {
        program: program.to_owned(),
    }
}
