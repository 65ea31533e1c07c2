//! AWS Lambda function `cdf-s3-snapshot`: connects the Lambda runtime to
//! [`cdf_s3_replicator::lambda::Function`], which holds all the logic.

use std::sync::Arc;

use cdf_s3_replicator::lambda::event::Payload;
use cdf_s3_replicator::lambda::{self, Function, FunctionKind, Invocation};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let function = Arc::new(lambda::cold_start(FunctionKind::Snapshot).await);
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
    use cdf_s3_replicator::lambda::event::{Trigger, parse_request};

    use super::*;

    /// The sample scheduled event is what `aws_lambda_events` models as an EventBridge
    /// event, and the library reads that event, re-encoded, as a scheduled trigger.
    #[test]
    fn scheduled_event_matches_the_canonical_eventbridge_type() {
        let text = include_str!("../../../events/snapshot-scheduled-event.json");
        let typed: EventBridgeEvent = serde_json::from_str(text).unwrap();
        assert_eq!(typed.detail_type, "Scheduled Event");
        let reencoded = serde_json::to_value(&typed).unwrap();
        let request = parse_request(FunctionKind::Snapshot, &reencoded).unwrap();
        let Trigger::EventBridge {
            source, resources, ..
        } = request.trigger
        else {
            panic!("not read as an EventBridge event: {reencoded}");
        };
        assert_eq!(source, "aws.events");
        assert_eq!(resources.len(), 1);
    }
}
