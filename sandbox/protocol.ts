/**
 * What the sandbox gateway and the emulated services exchange: a parsed AWS request, a reply,
 * and the answers AWS gives in each wire protocol (JSON for SSM and DynamoDB, EC2's XML, the
 * query protocol's XML for Auto Scaling, ELBv2 and the rest, S3's REST XML).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export interface ParsedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** Base64 SHA-256 of the body, computed while it arrived (PUTs that carry x-amz-checksum-sha256). */
  sha256: string | null;
  service: string;
  /** AmazonSSM.SendCommand → SendCommand; query protocol → Action. */
  action: string;
  form: URLSearchParams | null;
  json: Record<string, unknown> | null;
}

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

export type Handler = (req: ParsedRequest) => Promise<Reply>;

/** The operations an emulated service fills in or overrides, by `service:Action`. */
export type Routes = Record<string, Handler>;

export function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function json(status: number, body: unknown): Reply {
  return { status, headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() }, body: JSON.stringify(body) };
}

/** An error of a JSON-protocol service (SSM, DynamoDB). */
export function jsonError(type: string, message: string, status = 400): Reply {
  return json(status, { __type: type, message });
}

export function queryOk(action: string): Reply {
  return {
    status: 200,
    headers: { 'content-type': 'text/xml' },
    body: `<${action}Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><${action}Result/><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
  };
}

export function queryError(code: string, message: string, status = 400): Reply {
  const esc = message.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return {
    status,
    headers: { 'content-type': 'text/xml' },
    body: `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${esc}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
  };
}

export function ec2Error(status: number, code: string, message: string): Reply {
  return { status, headers: { 'content-type': 'text/xml' }, body: `<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>` };
}

export function s3Error(status: number, code: string, message: string): Reply {
  return {
    status, headers: { 'content-type': 'application/xml' },
    body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>${randomUUID()}</RequestId></Error>`,
  };
}
