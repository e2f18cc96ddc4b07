//! The assistant: writes a reply into its `ReplyWriter` token by token, from a built-in
//! offline responder (no key, no network) or from any OpenAI-compatible endpoint.

use std::time::Duration;

use chatvault_core::{Conversation, ErrorKind, MessageStatus, ReplyWriter, Role, Usage};
use chatvault_llm::{FileMode, HistoryOptions, PrepareHistory};

use crate::openai::{self, Chunk, Endpoint, Failure};

/// How often a streamed reply is checkpointed: what the page sees at a time.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The newest messages sent to a model.
const HISTORY_MESSAGES: usize = 50;

/// Who answers.
#[derive(Clone, Debug)]
pub(crate) enum Responder {
    /// The built-in responder: a canned answer about the question, a token every
    /// `token_delay`.
    Offline {
        /// The pause between two tokens.
        token_delay: Duration,
    },
    /// A model behind an OpenAI-compatible Chat Completions endpoint, streamed.
    OpenAi {
        /// Where it is.
        endpoint: Endpoint,
        /// The HTTP client.
        client: reqwest::Client,
    },
}

impl Responder {
    /// The endpoint `OPENAI_BASE_URL` names, else the offline responder (its pace from
    /// `CHATVAULT_DEMO_TOKEN_MS`, default 40 ms a token).
    pub(crate) fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        if let Some(endpoint) = Endpoint::from_env() {
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?;
            return Ok(Responder::OpenAi { endpoint, client });
        }
        let ms = match std::env::var("CHATVAULT_DEMO_TOKEN_MS") {
            Ok(v) => v.trim().parse()?,
            Err(_) => 40,
        };
        Ok(Responder::Offline {
            token_delay: Duration::from_millis(ms),
        })
    }

    /// Who answers, for the log.
    pub(crate) fn describe(&self) -> String {
        match self {
            Responder::Offline { .. } => "the built-in offline responder".to_owned(),
            Responder::OpenAi { endpoint, .. } => {
                format!("{} at {}", endpoint.model, endpoint.base_url)
            }
        }
    }

    /// Writes the reply `reply` of `conversation` (whose active path ends with it) to
    /// its end: complete, failed with a reason a person can read, or stopped by a reader
    /// (then it just ends: the stop already stored the reply).
    pub(crate) async fn answer(&self, conversation: Conversation, mut reply: ReplyWriter) {
        let outcome = match self {
            Responder::Offline { token_delay } => {
                offline(&conversation, &mut reply, *token_delay).await
            }
            Responder::OpenAi { endpoint, client } => {
                remote(&conversation, &mut reply, endpoint, client).await
            }
        };
        let id = reply.message_id().clone();
        let ended = match outcome {
            Ok(usage) => reply.finish(usage).await.map(|_| ()),
            Err(Ended::Stopped) => return,
            Err(Ended::Failed(Failure(reason))) => reply.fail(reason).await.map(|_| ()),
            Err(Ended::Store(e)) => Err(e),
        };
        match ended {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Stopped => {}
            Err(e) => tracing::warn!(reply = %id, error = %e, "could not store the reply"),
        }
    }
}

/// Why a reply ended before its text did.
enum Ended {
    /// A reader stopped it.
    Stopped,
    /// The model could not answer.
    Failed(Failure),
    /// The store refused a write.
    Store(chatvault_core::Error),
}

impl From<chatvault_core::Error> for Ended {
    fn from(e: chatvault_core::Error) -> Self {
        if e.kind() == ErrorKind::Stopped {
            Ended::Stopped
        } else {
            Ended::Store(e)
        }
    }
}

/// The offline answer: words of a canned text about the question, one at a time.
async fn offline(
    conversation: &Conversation,
    reply: &mut ReplyWriter,
    token_delay: Duration,
) -> Result<Option<Usage>, Ended> {
    let question = conversation
        .last_messages(2)
        .await?
        .into_iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content())
        .unwrap_or_default();
    let (version, _) = conversation.version_of(reply.message().seq);
    let text = offline_text(&question, version + 1);
    let mut tokens = 0;
    for token in text.split_inclusive(' ') {
        tokio::time::sleep(token_delay).await;
        reply.push_text(token).await?;
        tokens += 1;
    }
    let asked = question.split_whitespace().count() as u64;
    Ok(Some(Usage::new("chatvault-offline", asked, tokens)))
}

/// What the offline responder says to `question`, on its `attempt`th try.
pub(crate) fn offline_text(question: &str, attempt: usize) -> String {
    let question: String = question.split_whitespace().collect::<Vec<_>>().join(" ");
    let quoted: String = question.chars().take(120).collect();
    let opening = match attempt {
        1 => "Here is a streamed answer from ChatVault's built-in offline responder.".to_owned(),
        n => format!("Take {n}: another streamed answer from the offline responder."),
    };
    format!(
        "{opening} You asked: \u{201c}{quoted}\u{201d}. I have no model behind me, so I cannot \
         answer that for real, but every word you see was pushed to a reply writer, \
         checkpointed into the vault and followed live by this page over server-sent \
         events. Reload the page now and the reply carries on where it was; press Stop and \
         the words written so far stay. Set OPENAI_BASE_URL to talk to a real model."
    )
}

/// The answer of a model behind an OpenAI-compatible endpoint.
async fn remote(
    conversation: &Conversation,
    reply: &mut ReplyWriter,
    endpoint: &Endpoint,
    client: &reqwest::Client,
) -> Result<Option<Usage>, Ended> {
    let options = HistoryOptions::new(FileMode::Base64).recent(HISTORY_MESSAGES);
    let history = conversation.prepare_history(&options).await?;
    let request = chatvault_llm::openai::to_request(&endpoint.model, &history)?;
    let mut answer = openai::start(client, endpoint, request)
        .await
        .map_err(Ended::Failed)?;
    let mut usage = None;
    while let Some(chunk) = answer.next().await.map_err(Ended::Failed)? {
        match chunk {
            Chunk::Text(text) => reply.push_text(&text).await?,
            Chunk::Usage(u) => usage = Some(u),
            Chunk::Done => {}
        }
    }
    if reply.message().content().is_empty() && reply.message().status != MessageStatus::Stopped {
        return Err(Ended::Failed(Failure(
            "the model sent an empty answer".into(),
        )));
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offline_text_quotes_the_question_and_counts_attempts() {
        let first = offline_text("  Where   to eat?\n", 1);
        assert!(first.contains("\u{201c}Where to eat?\u{201d}"), "{first}");
        assert!(first.starts_with("Here is"));
        assert!(offline_text("q", 2).starts_with("Take 2:"));
        assert!(
            first.split_inclusive(' ').count() > 50,
            "long enough to stop"
        );
    }
}
