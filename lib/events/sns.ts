/** The SNS → Lambda event the notifier receives, validated at the edge. */
import { z } from 'zod';

const schema = z.object({
  Records: z.array(z.object({
    EventSource: z.literal('aws:sns'),
    Sns: z.object({
      MessageId: z.string().max(128),
      Subject: z.string().max(256).nullish(),
      Message: z.string().max(262_144),
      Timestamp: z.string().max(64),
    }).loose(),
  }).loose()).min(1).max(10),
}).loose();

export class SnsEventError extends Error {
  override readonly name = 'SnsEventError';
}

export interface SnsRecord {
  messageId: string;
  subject: string | null;
  message: string;
  timestamp: string;
}

export function parseSnsEvent(input: unknown): SnsRecord[] {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new SnsEventError(`invalid SNS event: ${parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data.Records.map((r) => ({ messageId: r.Sns.MessageId, subject: r.Sns.Subject ?? null, message: r.Sns.Message, timestamp: r.Sns.Timestamp }));
}
