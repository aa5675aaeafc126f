//! The SQS side of the worker: one client, and the five calls it makes (receive, delete,
//! change visibility, send to the dead-letter queue, read queue attributes).
//!
//! Every call runs on the worker's own tokio runtime; job threads call in with
//! [`Queue::block_on`], the receive loop and the heartbeat use the async functions directly.

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a queue call failed; the message names the queue and the SQS error.
#[derive(Debug, thiserror::Error)]
#[error("SQS {op} on {queue}: {reason}")]
pub struct QueueError {
    /// The API call.
    pub op: &'static str,
    /// The queue URL.
    pub queue: String,
    /// The SDK's description, with the service error code when there is one.
    pub reason: String,
}

/// One received message, with what the worker needs of it.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS message id (the job id in logs).
    pub message_id: String,
    /// Handle for delete and visibility calls.
    pub receipt_handle: String,
    /// The body as sent.
    pub body: String,
    /// How many times SQS has delivered this message (1 on the first delivery).
    pub receive_count: u32,
    /// How long the message waited in the queue, from `SentTimestamp`.
    pub queue_wait: Option<Duration>,
}

/// A queue and, optionally, the dead-letter queue the worker sends permanent failures to.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    url: String,
    dlq_url: Option<String>,
    handle: tokio::runtime::Handle,
}

fn sqs_error<E>(op: &'static str, queue: &str, error: aws_sdk_sqs::error::SdkError<E>) -> QueueError
where
    E: std::error::Error + Send + Sync + 'static,
{
    QueueError {
        op,
        queue: queue.to_owned(),
        reason: aws_sdk_sqs::error::DisplayErrorContext(&error).to_string(),
    }
}

impl Queue {
    /// A client for `url` (and `dlq_url`) from the standard AWS configuration (environment,
    /// profile, ECS task role; `AWS_ENDPOINT_URL` for a local server), on `handle`'s runtime.
    pub async fn connect(url: String, dlq_url: Option<String>) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    // Longer than the 20 s long poll, so a receive is never cut short.
                    .operation_attempt_timeout(Duration::from_secs(40))
                    .build(),
            )
            .load()
            .await;
        Self {
            client: Client::new(&config),
            url,
            dlq_url,
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The explicit dead-letter queue, if any.
    pub fn dlq_url(&self) -> Option<&str> {
        self.dlq_url.as_deref()
    }

    /// Runs `future` on the worker's runtime from a plain thread (a job thread).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// The queue's `VisibilityTimeout` and whether it has a `RedrivePolicy`; also proves the
    /// queue exists and is reachable before the worker takes any message.
    ///
    /// # Errors
    /// [`QueueError`] when the queue does not exist or cannot be reached.
    pub async fn attributes(&self) -> Result<(Option<u64>, bool), QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", &self.url, e))?;
        let attrs = out.attributes();
        let visibility = attrs
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|v| v.parse().ok());
        let redrive = attrs.is_some_and(|a| {
            a.get(&QueueAttributeName::RedrivePolicy)
                .is_some_and(|p| !p.trim().is_empty())
        });
        if let Some(dlq) = &self.dlq_url {
            self.client
                .get_queue_attributes()
                .queue_url(dlq)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| sqs_error("GetQueueAttributes", dlq, e))?;
        }
        Ok((visibility, redrive))
    }

    /// The queue's approximate (visible, in flight) message counts: the backlog and the work
    /// taken. SQS's own figures, eventually consistent (they lag by up to a minute).
    ///
    /// # Errors
    /// [`QueueError`] on a failed call.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", &self.url, e))?;
        // A missing or unreadable count is an error, not 0: an empty-looking queue would hide
        // the backlog the figure exists to show.
        let count = |name: QueueAttributeName| {
            let text = out.attributes().and_then(|a| a.get(&name));
            text.and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| QueueError {
                    op: "GetQueueAttributes",
                    queue: self.url.clone(),
                    reason: format!("{name} is {text:?}, not a count"),
                })
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages)?,
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        ))
    }

    /// Long-polls for up to `max` messages (1–10), waiting up to `wait`, each hidden for
    /// `visibility` once received.
    ///
    /// # Errors
    /// [`QueueError`] on a failed receive.
    pub async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(secs_i32(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", &self.url, e))?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes().and_then(|a| a.get(&name)).cloned()
                };
                Some(Received {
                    message_id: m.message_id()?.to_owned(),
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                    queue_wait: attr(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|t| t.parse::<u64>().ok())
                        .map(|sent| Duration::from_millis(now_ms.saturating_sub(sent))),
                })
            })
            .collect())
    }

    /// Deletes a message (its job is complete, or it was sent to the DLQ).
    ///
    /// # Errors
    /// [`QueueError`]; the message then comes back after its visibility timeout.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| sqs_error("DeleteMessage", &self.url, e))?;
        Ok(())
    }

    /// Hides a message for `timeout` from now (0 = visible again at once).
    ///
    /// # Errors
    /// [`QueueError`], e.g. for a receipt handle that is no longer valid.
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs_i32(timeout))
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibility", &self.url, e))?;
        Ok(())
    }

    /// Sends `body` to the explicit dead-letter queue with the failure as message attributes
    /// (`longwave_error_type`, `longwave_error`, `longwave_source_message_id`).
    ///
    /// # Errors
    /// [`QueueError`]; also when no DLQ is configured.
    pub async fn send_to_dlq(
        &self,
        body: &str,
        message_id: &str,
        error_type: &str,
        error: &str,
    ) -> Result<(), QueueError> {
        let Some(dlq) = &self.dlq_url else {
            return Err(QueueError {
                op: "SendMessage",
                queue: "(none)".to_owned(),
                reason: "no dead-letter queue configured".to_owned(),
            });
        };
        let attr = |value: &str| {
            // SQS attribute values are limited to the message size; errors are short, but cap.
            let value: String = value.chars().take(1024).collect();
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(if value.is_empty() { "-".into() } else { value })
                .build()
                .map_err(|e| QueueError {
                    op: "SendMessage",
                    queue: dlq.clone(),
                    reason: e.to_string(),
                })
        };
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_attributes("longwave_error_type", attr(error_type)?)
            .message_attributes("longwave_error", attr(error)?)
            .message_attributes("longwave_source_message_id", attr(message_id)?)
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", dlq, e))?;
        Ok(())
    }
}

/// A duration as SQS's integer seconds (0 ..= 12 h).
fn secs_i32(d: Duration) -> i32 {
    d.as_secs().min(12 * 3600) as i32
}
