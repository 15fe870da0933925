/**
 * The sandbox's one AWS endpoint: an HTTP server in front of moto_server. It parses each
 * request (service and action), injects the API faults of the fault matrix, hands the
 * operations the emulated services fill in (sandbox/services/) to them and forwards every
 * other request to moto.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ec2Error, type Handler, jsonError, type ParsedRequest, queryError, type Reply, type Routes, s3Error } from './protocol';

/**
 * An AWS API fault for the fault matrix: calls whose `service:Action` (REST S3: `s3:METHOD`)
 * matches answer with throttling or a 5xx — `before` doing anything, or `after` the call was
 * carried out (the answer is lost, the change is made: a retry then repeats it) — for the first
 * `times` calls of each matching operation.
 */
export interface ApiFault {
  match: RegExp;
  kind: 'throttle' | 'server-error';
  when: 'before' | 'after';
  times: number;
}

export interface InjectedApiFault {
  key: string;
  kind: ApiFault['kind'];
  when: ApiFault['when'];
}

/** What the emulated services answer: their routes, and `unrouted` for every other request. */
export interface Services {
  routes: Routes;
  unrouted: Handler;
}

export class Gateway {
  /** Faults to inject (see ApiFault), and every fault injected so far. */
  readonly apiFaults: ApiFault[] = [];
  readonly injected: InjectedApiFault[] = [];
  private readonly faultCounts = new Map<string, number>();
  private services: Services | undefined;

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
    private readonly motoUrl: string,
  ) {}

  /** Listens on a free 127.0.0.1 port; answers 503 until `serve` gives it the services. */
  static async start(motoUrl: string): Promise<Gateway> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const gateway = new Gateway(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, motoUrl);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void gateway.handle(req, res));
    return gateway;
  }

  serve(services: Services): void {
    this.services = services;
  }

  clearFaults(): void {
    this.apiFaults.length = 0;
    this.injected.length = 0;
    this.faultCounts.clear();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const services = this.services;
    if (!services) {
      res.writeHead(503).end();
      return;
    }
    let reply: Reply;
    try {
      const parsed = await parseRequest(req);
      const fault = this.faultFor(parsed);
      const late = signatureTime(parsed, Date.now());
      if (late) {
        reply = late;
      } else if (fault?.when === 'before') {
        reply = faultReply(parsed.service, fault.kind);
      } else {
        const handler = services.routes[`${parsed.service}:${parsed.action}`] ?? services.unrouted;
        reply = await handler(parsed);
        if (fault) reply = faultReply(parsed.service, fault.kind);
      }
    } catch (err) {
      reply = { status: 500, headers: { 'content-type': 'text/plain' }, body: `sandbox error: ${err instanceof Error ? err.stack : String(err)}` };
    }
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body);
  }

  private faultFor(r: ParsedRequest): ApiFault | undefined {
    const key = `${r.service}:${r.action || r.method}`;
    for (const [i, f] of this.apiFaults.entries()) {
      if (!f.match.test(key)) continue;
      const counted = `${i}|${key}`;
      const n = this.faultCounts.get(counted) ?? 0;
      if (n >= f.times) continue;
      this.faultCounts.set(counted, n + 1);
      this.injected.push({ key, kind: f.kind, when: f.when });
      return f;
    }
    return undefined;
  }

  /**
   * DynamoDB applies a conditional write atomically (the locks depend on it). moto_server serves
   * requests on threads; rather than rely on it checking a condition and writing as one step
   * under concurrent requests, the sandbox passes DynamoDB requests to it one at a time.
   */
  private dynamoQueue: Promise<unknown> = Promise.resolve();

  /** Sends the request on to moto_server as it came, and moto's answer back. */
  forward(r: ParsedRequest): Promise<Reply> {
    if (r.service !== 'dynamodb') return this.send(r);
    const turn = this.dynamoQueue.then(() => this.send(r));
    this.dynamoQueue = turn.catch(() => undefined);
    return turn;
  }

  private async send(r: ParsedRequest): Promise<Reply> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers)) {
      if (v === undefined || ['host', 'connection', 'content-length', 'transfer-encoding', 'expect'].includes(k)) continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const hasBody = !['GET', 'HEAD'].includes(r.method);
    const res = await fetch(`${this.motoUrl}${r.url}`, { method: r.method, headers, ...(hasBody ? { body: r.body } : {}), redirect: 'manual' });
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      // (A HEAD answer has no body: its content-length is the object's size and must stay.)
      if (!['transfer-encoding', 'connection', 'content-encoding'].includes(k) && (k !== 'content-length' || r.method === 'HEAD')) out[k] = v;
    });
    return { status: res.status, headers: out, body: Buffer.from(await res.arrayBuffer()) };
  }
}

async function parseRequest(req: IncomingMessage): Promise<ParsedRequest> {
  const chunks: Buffer[] = [];
  // S3 checks a PUT's checksum as the bytes arrive; so does the sandbox (not after buffering).
  const hash = req.method === 'PUT' && req.headers['x-amz-checksum-sha256'] !== undefined ? createHash('sha256') : null;
  for await (const c of req) {
    chunks.push(c as Buffer);
    hash?.update(c as Buffer);
  }
  const body = Buffer.concat(chunks);
  const sha256 = hash?.digest('base64') ?? null;
  const auth = String(req.headers.authorization ?? '');
  // Signed header, or a presigned URL's X-Amz-Credential (the masters' S3 transfers).
  const presigned = new URL(req.url ?? '/', 'http://sandbox').searchParams.get('X-Amz-Credential') ?? '';
  const service = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(auth)?.[1] ?? /^[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(presigned)?.[1] ?? '';
  const target = req.headers['x-amz-target'];
  let action = '';
  let form: URLSearchParams | null = null;
  let jsonBody: Record<string, unknown> | null = null;
  if (typeof target === 'string') {
    action = target.split('.').pop() ?? '';
    try {
      jsonBody = JSON.parse(body.toString() || '{}') as Record<string, unknown>;
    } catch {
      jsonBody = null;
    }
  } else if (String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    form = new URLSearchParams(body.toString());
    action = form.get('Action') ?? '';
  }
  return { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, sha256, service, action, form, json: jsonBody };
}

/** SigV4's time window: a request's time stamp within 15 minutes of AWS's time. */
const MAX_SKEW_MS = 15 * 60_000;

const amzDate = (v: string | null | undefined): number | null => {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v ?? '');
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) : null;
};

/**
 * AWS refuses a signature outside its time window (the AWS Common Errors, RequestExpired: "more
 * than 15 minutes after the date stamp on the request or more than 15 minutes after the request
 * expiration date (such as for pre-signed URLs), or the date stamp on the request is more than 15
 * minutes in the future"); moto checks none. A presigned URL (the masters' S3 transfers) is
 * refused by S3 with 403 AccessDenied, "Request is not yet valid" or "Request has expired"; a
 * signed request with the service's skew error, which the SDK corrects itself from the answer's
 * Date and retries (its clock-skew codes: RequestTimeTooSkewed, RequestExpired,
 * InvalidSignatureException).
 */
function signatureTime(r: ParsedRequest, now: number): Reply | null {
  const q = new URL(r.url, 'http://sandbox').searchParams;
  const presignedAt = amzDate(q.get('X-Amz-Date'));
  if (presignedAt !== null) {
    const expires = Number(q.get('X-Amz-Expires') ?? '0');
    if (presignedAt - now > MAX_SKEW_MS) return s3Error(403, 'AccessDenied', 'Request is not yet valid');
    if (now > presignedAt + expires * 1000) return s3Error(403, 'AccessDenied', 'Request has expired');
    return null;
  }
  const header = r.headers['x-amz-date'];
  const signedAt = amzDate(Array.isArray(header) ? header[0] : header);
  if (signedAt === null || Math.abs(signedAt - now) <= MAX_SKEW_MS) return null;
  if (r.service === 's3') return s3Error(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  if (r.service === 'ssm' || r.service === 'dynamodb') return jsonError('InvalidSignatureException', `Signature expired: ${String(header)} is now earlier or later than 15 min from now`, 400);
  return r.service === 'ec2' ? ec2Error(400, 'RequestExpired', 'Request has expired.') : queryError('RequestExpired', 'Request has expired.', 400);
}

/** The error each protocol's AWS service answers when throttling or failing (the SDK retries both). */
function faultReply(service: string, kind: ApiFault['kind']): Reply {
  const throttle = kind === 'throttle';
  if (service === 'ssm' || service === 'dynamodb') {
    return throttle ? jsonError('ThrottlingException', 'Rate exceeded') : jsonError('InternalServerError', 'Internal server error', 500);
  }
  if (service === 'ec2') {
    return throttle ? ec2Error(503, 'RequestLimitExceeded', 'Request limit exceeded.') : ec2Error(500, 'InternalError', 'An internal error has occurred');
  }
  if (service === 's3') {
    return throttle ? s3Error(503, 'SlowDown', 'Please reduce your request rate.') : s3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
  }
  return throttle ? queryError('Throttling', 'Rate exceeded') : queryError('InternalFailure', 'Internal failure', 500);
}
