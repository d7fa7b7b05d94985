// A raw PostgreSQL client for the fuzzer and the ledger: exact bytes out, replies framed and handed to a watcher, RST on demand.

import type { Socket } from "bun";
import { Framer } from "../../src/protocol/framer.ts";
import { md5Response } from "../../src/protocol/md5.ts";
import { parseErrorFields } from "../../src/protocol/messages.ts";
import { ScramClientExchange } from "../../src/protocol/scram.ts";
import { concatBytes, encode, fe } from "./wire.ts";

/** One backend message: its tag letter and its body (after the length). */
export interface Reply {
  tag: string;
  body: Uint8Array;
}

export type WaitResult = "matched" | "closed" | "timeout";

const decoder = new TextDecoder();

export class WireClient {
  private socket!: Socket<undefined>;
  private readonly framer = new Framer(1 << 30);
  private pending: Uint8Array[] = [];
  private watcher: ((r: Reply) => boolean) | null = null;
  private wake: (() => void) | null = null;
  private matched = false;
  private singleBytes = 0;
  closed = false;
  /** Set when pgbun sent bytes that do not frame as backend messages (a finding in itself). */
  framingError: string | null = null;
  replies = 0;
  /** The SQLSTATE and severity of the last ErrorResponse. */
  lastError: { code: string; severity: string; message: string } | null = null;

  static async connect(port: number, host = "127.0.0.1"): Promise<WireClient> {
    const c = new WireClient();
    c.socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, chunk) => c.receive(chunk),
        drain: () => c.flushPending(),
        close: () => {
          c.closed = true;
          c.wake?.();
        },
        error: () => {},
      },
    });
    return c;
  }

  /** The next `n` answers may be SSLRequest's and GSSENCRequest's single bytes ('N', 'S', 'G'), not messages. */
  expectSingleByteAnswers(n: number): void {
    this.singleBytes = n;
  }

  private receive(chunk: Uint8Array): void {
    if (this.framingError !== null) return;
    while (this.singleBytes > 0 && chunk.length > 0) {
      const b = chunk[0]!;
      if (b !== 0x4e && b !== 0x53 && b !== 0x47) {
        this.singleBytes = 0;
        break;
      }
      this.singleBytes--;
      chunk = chunk.subarray(1);
    }
    try {
      this.framer.feed(chunk, {
        frame: (tag, buf, start, end) => {
          const r: Reply = { tag: String.fromCharCode(tag), body: buf.subarray(start + 5, end) };
          this.replies++;
          if (r.tag === "E") this.lastError = errorOf(r);
          if (this.watcher !== null && !this.matched && this.watcher(r)) {
            this.matched = true;
            this.wake?.();
          }
        },
      });
    } catch (err) {
      this.framingError = (err as Error).message;
    }
  }

  /** Writes bytes; what Bun does not take now goes on drain, in order. */
  send(bytes: Uint8Array): void {
    if (this.closed) return;
    if (this.pending.length > 0) {
      this.pending.push(bytes);
      return;
    }
    const n = this.socket.write(bytes);
    if (n < bytes.length) this.pending.push(bytes.subarray(Math.max(n, 0)));
  }

  private flushPending(): void {
    while (this.pending.length > 0 && !this.closed) {
      const head = this.pending[0]!;
      const n = this.socket.write(head);
      if (n < head.length) {
        this.pending[0] = head.subarray(Math.max(n, 0));
        return;
      }
      this.pending.shift();
    }
  }

  /** Stops (or restarts) reading, as a slow client does: pgbun's writes back up behind it. */
  pauseReading(on: boolean): void {
    if (on) this.socket.pause();
    else this.socket.resume();
  }

  /** Bytes still waiting for the socket to drain. */
  get backlog(): number {
    return this.pending.reduce((n, p) => n + p.length, 0);
  }

  /** Resolves when `match` accepts a reply (from now on), the connection closes, or time runs out. */
  async waitFor(match: (r: Reply) => boolean, timeoutMs: number): Promise<WaitResult> {
    this.watcher = match;
    this.matched = false;
    if (this.closed) return "closed";
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
    this.wake = null;
    this.watcher = null;
    return this.matched ? "matched" : this.closed ? "closed" : "timeout";
  }

  /** Waits for ReadyForQuery; the replies before it go to `each`. */
  untilReady(timeoutMs: number, each: (r: Reply) => void = () => {}): Promise<WaitResult> {
    return this.waitFor((r) => {
      each(r);
      return r.tag === "Z";
    }, timeoutMs);
  }

  /**
   * Sends bytes and collects replies until `readyCount` ReadyForQuery have come, as short strings:
   * "C:INSERT 0 1", "E:FATAL:57P01", "Z:I", or the bare tag letter; `each` sees every reply. lastError is
   * cleared first, so afterwards it is this request's.
   */
  async request(bytes: Uint8Array, readyCount: number, timeoutMs: number, each?: (r: Reply) => void): Promise<{ replies: string[]; result: WaitResult }> {
    const replies: string[] = [];
    let ready = 0;
    this.lastError = null;
    const done = this.waitFor((r) => {
      each?.(r);
      if (r.tag === "C") replies.push(`C:${commandTag(r)}`);
      else if (r.tag === "E") replies.push(`E:${errorOf(r).severity}:${errorOf(r).code}`);
      else if (r.tag === "Z") replies.push(`Z:${String.fromCharCode(r.body[0]!)}`);
      else replies.push(r.tag);
      return r.tag === "Z" && ++ready === readyCount;
    }, timeoutMs);
    this.send(bytes);
    return { replies, result: await done };
  }

  /** Logs in with cleartext, md5 or SCRAM as asked; true once ReadyForQuery arrives. */
  async login(user: string, database: string, password: string, timeoutMs = 5000): Promise<boolean> {
    let scram: ScramClientExchange | null = null;
    const ready = this.waitFor((r) => {
      if (r.tag === "Z") return true;
      if (r.tag !== "R") return r.tag === "E";
      const code = new DataView(r.body.buffer, r.body.byteOffset).getInt32(0);
      if (code === 3) this.send(encode([fe.password(password)]));
      else if (code === 5) this.send(encode([fe.password(md5Response(user, password, r.body.slice(4, 8)))]));
      else if (code === 10) {
        scram = new ScramClientExchange(password);
        this.send(encode([fe.saslInitial("SCRAM-SHA-256", new TextEncoder().encode(scram.clientFirst()))]));
      } else if (code === 11 && scram !== null) {
        this.send(encode([fe.saslResponse(new TextEncoder().encode(scram.serverFirst(decoder.decode(r.body.subarray(4)))))]));
      }
      return false;
    }, timeoutMs);
    this.send(encode([fe.startup({ user, database })]));
    return (await ready) === "matched" && this.lastError === null;
  }

  /** A polite close: Terminate, then FIN. */
  end(): void {
    if (this.closed) return;
    this.send(encode([fe.terminate()]));
    this.socket.end();
  }

  /** FIN without Terminate, as a client that vanished. */
  hangUp(): void {
    this.socket.end();
  }

  /** An abrupt close: the peer gets an RST. */
  reset(): void {
    this.socket.terminate();
  }
}

export function errorOf(r: Reply): { code: string; severity: string; message: string } {
  const full = concatBytes([new Uint8Array(5), r.body]);
  const f = parseErrorFields(full, 0, full.length);
  return { code: f.get("C") ?? "?", severity: f.get("V") ?? f.get("S") ?? "?", message: f.get("M") ?? "" };
}

/** The text of column `col` of a DataRow (null for SQL NULL). */
export function cell(r: Reply, col = 0): string | null {
  const v = new DataView(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  let at = 2;
  for (let i = 0; ; i++) {
    const len = v.getInt32(at);
    at += 4;
    if (i === col) return len < 0 ? null : decoder.decode(r.body.subarray(at, at + len));
    if (len > 0) at += len;
  }
}

/** The command tag of a CommandComplete ("COMMIT", "INSERT 0 1"). */
export function commandTag(r: Reply): string {
  return decoder.decode(r.body.subarray(0, Math.max(0, r.body.length - 1)));
}
