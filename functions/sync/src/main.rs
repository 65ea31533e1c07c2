//! AWS Lambda function `cdf-s3-sync`: connects the Lambda runtime to
//! [`cdf_s3_replicator::lambda::Function`], which holds all the logic.

use std::sync::Arc;

use cdf_s3_replicator::lambda::event::Payload;
use cdf_s3_replicator::lambda::{self, Function, FunctionKind, Invocation};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let function = Arc::new(lambda::cold_start(FunctionKind::Sync).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| {
        handle(function.clone(), event)
    }))
    .await
}

async fn handle(function: Arc<Function>, event: LambdaEvent<Payload>) -> Result<Value, Diagnostic> {
    let invocation =
        Invocation::from_runtime_deadline(event.context.request_id.clone(), event.context.deadline);
    function
        .invoke(event.payload, &invocation)
        .await
        .map_err(|error| Diagnostic {
            error_type: error.error_type(),
            error_message: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::eventbridge::EventBridgeEvent;
    use cdf_s3_replicator::lambda::FunctionError;
    use cdf_s3_replicator::lambda::event::{Trigger, parse_payload, parse_request};

    use super::*;

    /// The sample scheduled event is what `aws_lambda_events` models as an EventBridge
    /// event, and the library reads that event, re-encoded, as a scheduled trigger.
    #[test]
    fn scheduled_event_matches_the_canonical_eventbridge_type() {
        let text = include_str!("../../../events/sync-scheduled-event.json");
        let typed: EventBridgeEvent = serde_json::from_str(text).unwrap();
        assert_eq!(typed.detail_type, "Scheduled Event");
        let reencoded = serde_json::to_value(&typed).unwrap();
        let request = parse_request(FunctionKind::Sync, &reencoded).unwrap();
        let Trigger::EventBridge {
            source, resources, ..
        } = request.trigger
        else {
            panic!("not read as an EventBridge event: {reencoded}");
        };
        assert_eq!(source, "aws.events");
        assert_eq!(resources.len(), 1);
    }

    /// The body as `lambda_runtime` 1.5 deserializes it into the handler's event type
    /// (serde_path_to_error over serde_json, in its `deserializer` module).
    fn as_runtime_delivers(body: &str) -> Payload {
        let mut json = serde_json::Deserializer::from_slice(body.as_bytes());
        serde_path_to_error::deserialize(&mut json).unwrap()
    }

    /// A duplicate key reaches the function (the runtime's deserialization accepts every JSON
    /// document) and is refused there as `Permanent.InvalidRequest`, naming the key.
    #[test]
    fn duplicate_payload_keys_are_an_invalid_payload() {
        let payload = as_runtime_delivers(r#"{"dryRun": true, "dryRun": false}"#);
        let error = FunctionError::from(parse_payload(FunctionKind::Sync, &payload).unwrap_err());
        assert_eq!(error.error_type(), "Permanent.InvalidRequest");
        assert!(error.to_string().contains("`dryRun`"), "{error}");

        let payload = as_runtime_delivers(include_str!("../../../events/sync-dry-run.json"));
        assert!(parse_payload(FunctionKind::Sync, &payload).unwrap().dry_run);
    }
}
