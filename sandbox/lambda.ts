/**
 * What Lambda does with an asynchronous invocation (SNS, EventBridge): run the handler; on
 * error retry it (`maximumRetryAttempts`, default 2); after the last failure send the event
 * to the function's dead-letter queue (SQS, here in moto) with Lambda's error attributes.
 * Real Lambda waits about 1 and 2 minutes between attempts; the sandbox waits `delayMs`.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';

export interface AsyncInvokeOptions {
  maximumRetryAttempts?: number;
  delayMs?: number;
  dlq?: { sqs: SQSClient; queueUrl: string };
}

export async function invokeAsync<T>(handler: (event: unknown) => Promise<T>, event: unknown, opts: AsyncInvokeOptions = {}): Promise<{ attempts: number; result?: T; deadLettered: boolean }> {
  const tries = 1 + (opts.maximumRetryAttempts ?? 2);
  let last: unknown = null;
  for (let i = 1; i <= tries; i++) {
    try {
      return { attempts: i, result: await handler(event), deadLettered: false };
    } catch (err) {
      last = err;
      if (i < tries) await new Promise((r) => setTimeout(r, opts.delayMs ?? 10));
    }
  }
  if (opts.dlq) {
    await opts.dlq.sqs.send(new SendMessageCommand({
      QueueUrl: opts.dlq.queueUrl, MessageBody: JSON.stringify(event),
      MessageAttributes: {
        ErrorCode: { DataType: 'Number', StringValue: '200' },
        ErrorMessage: { DataType: 'String', StringValue: (last instanceof Error ? last.message : String(last)).slice(0, 1000) },
        RequestID: { DataType: 'String', StringValue: 'sandbox' },
      },
    }));
  }
  return { attempts: tries, deadLettered: Boolean(opts.dlq) };
}

/** The SNS → Lambda event for one message on a topic. */
export function snsEvent(topicArn: string, message: string, subject: string | null = null, at = new Date()): unknown {
  return {
    Records: [{
      EventSource: 'aws:sns', EventVersion: '1.0', EventSubscriptionArn: `${topicArn}:sandbox`,
      Sns: {
        Type: 'Notification', MessageId: `sandbox-${Math.random().toString(16).slice(2)}`, TopicArn: topicArn, Subject: subject, Message: message,
        Timestamp: at.toISOString(), SignatureVersion: '1', Signature: 'sandbox', SigningCertUrl: 'https://sns.example/cert', UnsubscribeUrl: 'https://sns.example/unsub', MessageAttributes: {},
      },
    }],
  };
}
