/**
 * A slow raft link, for a follower that follows the leader but lags far behind it — what a
 * member that just rejoined over a slow or saturated network looks like. On loopback a real etcd
 * follower catches up within milliseconds, so the sandbox puts a TCP proxy in front of a member's
 * peer URL (the test moves the member's advertised peer URL to it with `member update`) and slows
 * one stream through it. Over mutual TLS it terminates TLS with a peer certificate of the cluster
 * (to read the stream paths) and dials the member with it.
 *
 * etcd's rafthttp (server/etcdserver/api/rafthttp, 3.4 and 3.5): a follower DIALS the leader for
 * the messages the leader sends it, with one long-lived GET per stream type —
 * `/raft/stream/msgapp/<follower ID>` carries the log entries (MsgApp), `/raft/stream/message/<ID>`
 * everything else, heartbeats included. Throttling only the leader's answer on the follower's
 * msgapp stream leaves its heartbeats on time: it keeps following the leader (its status says so)
 * while its raft index falls behind. A full stream buffer makes the leader drop MsgApp ("dropped
 * internal Raft message since sending buffer is full"), never fall back to another path.
 */
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { TlsFiles } from './pki';

export interface PeerThrottleOptions {
  /** The real peer listener: where the proxy forwards. */
  target: { host: string; port: number };
  /** The follower (hex member ID) whose msgapp stream is slowed (also settable later: `slowFor()`). */
  slowFor: string;
  /** Bytes per second on that stream. */
  bytesPerSec: number;
  /**
   * For an https peer URL (mutual TLS): the peer certificate the proxy presents on both sides —
   * it terminates TLS to read the stream paths, then dials the member with the same certificate.
   */
  tls?: TlsFiles;
}

const sameId = (a: string, b: string): boolean => {
  try {
    return BigInt(`0x${a}`) === BigInt(`0x${b}`);
  } catch {
    return false;
  }
};

export class PeerThrottle {
  private readonly sockets = new Set<Socket>();
  /** Starts at full speed: a restarted member must catch up with its own join before it serves. */
  private slow = false;
  /** msgapp streams of the slowed follower seen so far. */
  slowStreams = 0;
  /** Bytes the slowed stream has carried (what the test can report). */
  slowedBytes = 0;

  private follower: string;

  private constructor(private readonly server: Server, readonly port: number, private readonly o: PeerThrottleOptions) {
    this.follower = o.slowFor;
  }

  static async start(o: PeerThrottleOptions): Promise<PeerThrottle> {
    let self: PeerThrottle | null = null;
    const onClient = (client: Socket) => self?.accept(client);
    const creds = o.tls && { ca: readFileSync(o.tls.cacert), cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key) };
    const server: Server = creds ? createTlsServer({ ...creds, requestCert: true, rejectUnauthorized: true }, onClient) : createServer(onClient);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('peer throttle: no port');
    self = new PeerThrottle(server, address.port, o);
    return self;
  }

  get url(): string {
    return `${this.o.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Which follower's stream to slow (hex member ID), for streams opened from now on. */
  slowFor(memberId: string): void {
    this.follower = memberId;
  }

  /** From now on the follower's log entries come at `bytesPerSec`. */
  slowDown(): void {
    this.slow = true;
  }

  /** From now on the link runs at full speed (the follower catches up). */
  release(): void {
    this.slow = false;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    return s;
  }

  private accept(client: Socket): void {
    this.track(client);
    const tls = this.o.tls;
    const upstream = this.track(tls
      ? tlsConnect({ ...this.o.target, ca: readFileSync(tls.cacert), cert: readFileSync(tls.cert), key: readFileSync(tls.key) })
      : createConnection(this.o.target));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.indexOf('\r\n\r\n') < 0 && head.length < 16_384) return;
      client.off('data', onData);
      const path = /^GET (\/raft\/stream\/msgapp\/([0-9a-fA-F]+))\s/.exec(head.toString('latin1'))?.[2];
      upstream.write(head);
      client.pipe(upstream);
      if (path !== undefined && sameId(path, this.follower)) {
        this.slowStreams++;
        this.throttle(upstream, client);
      } else {
        upstream.pipe(client);
      }
    };
    client.on('data', onData);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Forwards `from` → `to` at bytesPerSec (in 10 chunks a second) while slow, then at once. */
  private throttle(from: Socket, to: Socket): void {
    const queue: Buffer[] = [];
    let queued = 0;
    from.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      queued += chunk.length;
      if (queued > 1_000_000) from.pause(); // backpressure to the leader, as a full link gives
    });
    const tick = setInterval(() => {
      if (to.destroyed) return clearInterval(tick);
      let budget = this.slow ? Math.max(1, Math.round(this.o.bytesPerSec / 10)) : Number.MAX_SAFE_INTEGER;
      while (budget > 0 && queue.length) {
        const head = queue[0]!;
        const part = head.length <= budget ? head : head.subarray(0, budget);
        if (part === head) queue.shift();
        else queue[0] = head.subarray(budget);
        budget -= part.length;
        queued -= part.length;
        this.slowedBytes += part.length;
        to.write(part);
      }
      if (queued < 500_000 && from.isPaused()) from.resume();
    }, 100);
    tick.unref();
    from.on('close', () => clearInterval(tick));
  }
}
