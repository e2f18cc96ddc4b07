//! A streamed chat completion from any OpenAI-compatible endpoint (OpenAI, Ollama,
//! llama.cpp, vLLM...): `POST {base}/chat/completions` with `"stream": true`, read as
//! server-sent events, one text delta at a time.

use std::time::Duration;

use chatvault_core::Usage;
use futures_util::StreamExt;
use serde_json::Value;

/// The longest wait for the next bytes of a streamed answer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the model is: from `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_MODEL`.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// The API's base URL, up to and including `/v1` (no trailing slash).
    pub(crate) base_url: String,
    /// Sent as `Authorization: Bearer ...` when set (local servers need none).
    pub(crate) api_key: Option<String>,
    /// The model asked for.
    pub(crate) model: String,
}

impl Endpoint {
    /// The endpoint the environment names, if `OPENAI_BASE_URL` is set.
    pub(crate) fn from_env() -> Option<Self> {
        let base_url = std::env::var("OPENAI_BASE_URL")
            .ok()
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())?;
        let api_key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|key| !key.trim().is_empty());
        let model = std::env::var("OPENAI_MODEL")
            .ok()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "gpt-4o-mini".to_owned());
        Some(Endpoint {
            base_url,
            api_key,
            model,
        })
    }
}

/// What one event of the stream carries.
#[derive(Debug, PartialEq)]
pub(crate) enum Chunk {
    /// More text of the answer.
    Text(String),
    /// The token counts (the last chunk, when the server sends them).
    Usage(Usage),
    /// `[DONE]`: the answer is complete.
    Done,
}

/// Why a streamed answer failed, in words a person can read.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

/// A streamed answer being read.
pub(crate) struct Answer {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
    model: String,
    done: bool,
}

/// Starts a streamed chat completion of `request` (a Chat Completions body without
/// `stream`); the answer's chunks come from [`Answer::next`].
pub(crate) async fn start(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    mut request: Value,
) -> Result<Answer, Failure> {
    request["stream"] = Value::Bool(true);
    request["stream_options"] = serde_json::json!({ "include_usage": true });
    let url = format!("{}/chat/completions", endpoint.base_url);
    let mut call = client.post(&url).json(&request);
    if let Some(key) = &endpoint.api_key {
        call = call.bearer_auth(key);
    }
    let response = call.send().await.map_err(|e| {
        Failure(format!(
            "the model server at {} could not be reached ({})",
            endpoint.base_url,
            reason(&e)
        ))
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        return Err(Failure(format!(
            "the model server answered {status}{}",
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        )));
    }
    Ok(Answer {
        body: response.bytes_stream().boxed(),
        buffer: Vec::new(),
        model: endpoint.model.clone(),
        done: false,
    })
}

/// The cause of a request error, without the URL reqwest puts in its message.
fn reason(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connection refused or no route"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    }
}

impl Answer {
    /// The next chunk; `None` when the stream ends (after [`Chunk::Done`], or when the
    /// server closes it: some servers send no `[DONE]`).
    pub(crate) async fn next(&mut self) -> Result<Option<Chunk>, Failure> {
        loop {
            if let Some(line) = self.take_line() {
                if let Some(chunk) = parse_line(&line, &self.model)? {
                    if chunk == Chunk::Done {
                        self.done = true;
                    }
                    return Ok(Some(chunk));
                }
                continue;
            }
            if self.done {
                return Ok(None);
            }
            match tokio::time::timeout(IDLE_TIMEOUT, self.body.next()).await {
                Err(_) => return Err(Failure("the model stopped answering".into())),
                Ok(None) => {
                    self.done = true;
                    if self.buffer.is_empty() {
                        return Ok(None);
                    }
                    self.buffer.push(b'\n');
                }
                Ok(Some(Err(e))) => {
                    return Err(Failure(format!(
                        "the connection to the model broke ({})",
                        reason(&e)
                    )));
                }
                Ok(Some(Ok(bytes))) => self.buffer.extend_from_slice(&bytes),
            }
        }
    }

    /// The next whole line of the buffer, without its line ending.
    fn take_line(&mut self) -> Option<String> {
        let end = self.buffer.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.buffer.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        Some(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// What one line of the event stream says: `None` for lines that carry nothing (blank
/// lines, comments, other fields, a chunk without text).
pub(crate) fn parse_line(line: &str, model: &str) -> Result<Option<Chunk>, Failure> {
    let Some(data) = line.strip_prefix("data:") else {
        return Ok(None);
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Some(Chunk::Done));
    }
    let Ok(event) = serde_json::from_str::<Value>(data) else {
        return Ok(None);
    };
    if let Some(message) = event["error"]["message"].as_str() {
        return Err(Failure(format!("the model reported an error: {message}")));
    }
    if let Some(text) = event["choices"][0]["delta"]["content"].as_str()
        && !text.is_empty()
    {
        return Ok(Some(Chunk::Text(text.to_owned())));
    }
    let usage = &event["usage"];
    if let (Some(input), Some(output)) = (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
    ) {
        let model = event["model"].as_str().unwrap_or(model);
        return Ok(Some(Chunk::Usage(Usage::new(model, input, output))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_usage_done_and_errors() {
        let text = r#"data: {"choices":[{"index":0,"delta":{"content":"Hé"}}]}"#;
        assert!(matches!(parse_line(text, "m"), Ok(Some(Chunk::Text(t))) if t == "Hé"));
        let role_only = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
        assert!(matches!(parse_line(role_only, "m"), Ok(None)));
        let usage =
            r#"data: {"model":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#;
        match parse_line(usage, "m") {
            Ok(Some(Chunk::Usage(u))) => {
                assert_eq!((u.input_tokens, u.output_tokens), (3, 5));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_line("data: [DONE]", "m"),
            Ok(Some(Chunk::Done))
        ));
        assert!(matches!(parse_line(": keep-alive", "m"), Ok(None)));
        assert!(matches!(parse_line("", "m"), Ok(None)));
        let error = r#"data: {"error":{"message":"overloaded"}}"#;
        assert!(matches!(parse_line(error, "m"), Err(Failure(f)) if f.contains("overloaded")));
    }
}
