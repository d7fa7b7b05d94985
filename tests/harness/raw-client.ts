// A minimal wire-protocol client for tests that must send exact message sequences (pipelines, Flush, bad bytes).

import type { Socket } from "bun";
import { Framer } from "../../src/protocol/framer.ts";
import { parseErrorFields, startupMessage } from "../../src/protocol/messages.ts";
import { Writer } from "../../src/protocol/writer.ts";
import { ScramClientExchange } from "../../src/protocol/scram.ts";
import { md5Response } from "../../src/protocol/md5.ts";

export interface Msg {
  tag: string;
  body: Uint8Array;
}

export class RawClient {
  private socket!: Socket<undefined>;
  private framer = new Framer(1 << 30);
  readonly received: Msg[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  /** When set, DataRows are only counted, not kept (for huge results). */
  countDataRows = false;
  dataRows = 0;
  bytes = 0;

  static async connect(port: number, host = "127.0.0.1"): Promise<RawClient> {
    const c = new RawClient();
    c.socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, chunk) => {
          try {
            c.framer.feed(chunk, {
              frame: (tag, buf, start, end) => {
                c.bytes += end - start;
                if (c.countDataRows && tag === 0x44) c.dataRows++;
                else c.received.push({ tag: String.fromCharCode(tag), body: buf.slice(start + 5, end) });
              },
            });
          } catch {
            /* tests inspect raw bytes when framing fails */
          }
          c.wake();
        },
        close: () => {
          c.closed = true;
          c.wake();
        },
        error: () => {},
      },
    });
    return c;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Stops (or restarts) reading from the socket, as a slow client would. */
  pauseReading(on: boolean): void {
    if (on) this.socket.pause();
    else this.socket.resume();
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Logs in with a plain startup packet; answers cleartext, md5 and SCRAM requests. */
  async login(user: string, database: string, password = "", extra: Record<string, string> = {}): Promise<Msg[]> {
    this.send(startupMessage({ user, database, ...extra }));
    let scram: ScramClientExchange | null = null;
    const seen: Msg[] = [];
    for (;;) {
      const m = await this.next();
      seen.push(m);
      if (m.tag === "E") return seen;
      if (m.tag === "R") {
        const code = new DataView(m.body.buffer, m.body.byteOffset).getInt32(0);
        if (code === 3) this.send(new Writer().start(0x70).cstr(password).end().take());
        else if (code === 5) this.send(new Writer().start(0x70).cstr(md5Response(user, password, m.body.slice(4, 8))).end().take());
        else if (code === 10) {
          scram = new ScramClientExchange(password);
          const first = new TextEncoder().encode(scram.clientFirst());
          this.send(new Writer().start(0x70).cstr("SCRAM-SHA-256").int32(first.length).bytes(first).end().take());
        } else if (code === 11) {
          this.send(new Writer().start(0x70).str(scram!.serverFirst(new TextDecoder().decode(m.body.slice(4)))).end().take());
        }
      }
      if (m.tag === "Z") return seen;
    }
  }

  /** Waits for the next message (consumes it). */
  async next(timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length === 0) {
      if (this.closed) throw new Error("connection closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a message");
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, left);
      });
    }
    return this.received.shift()!;
  }

  /** Collects messages until `count` ReadyForQuery have arrived; returns their tags (and errors' SQLSTATEs). */
  async untilReady(count = 1, timeoutMs = 5000): Promise<string[]> {
    const tags: string[] = [];
    let seen = 0;
    while (seen < count) {
      const m = await this.next(timeoutMs);
      if (m.tag === "E") tags.push("E:" + errorCode(m));
      else if (m.tag === "Z") tags.push("Z:" + String.fromCharCode(m.body[0]!));
      else tags.push(m.tag);
      if (m.tag === "Z") seen++;
    }
    return tags;
  }

  /** Waits until the server closes the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("connection still open");
      await Bun.sleep(10);
    }
  }

  close(): void {
    this.socket.end();
  }
}

export function errorCode(m: Msg): string {
  const full = new Uint8Array(m.body.length + 5);
  full.set(m.body, 5);
  return parseErrorFields(full, 0, full.length).get("C") ?? "?";
}

export function errorMessage(m: Msg): string {
  const full = new Uint8Array(m.body.length + 5);
  full.set(m.body, 5);
  return parseErrorFields(full, 0, full.length).get("M") ?? "";
}

// Frontend message builders for tests.
const w = new Writer();
export const msg = {
  query: (sql: string) => w.start(0x51).cstr(sql).end().take(),
  parse: (name: string, sql: string, types: number[] = []) => {
    w.start(0x50).cstr(name).cstr(sql).int16(types.length);
    for (const t of types) w.int32(t);
    return w.end().take();
  },
  bind: (portal: string, stmt: string, params: Array<string | null> = []) => {
    w.start(0x42).cstr(portal).cstr(stmt).int16(0).int16(params.length);
    for (const p of params) {
      if (p === null) w.int32(-1);
      else {
        const b = new TextEncoder().encode(p);
        w.int32(b.length).bytes(b);
      }
    }
    return w.int16(0).end().take();
  },
  describe: (kind: "S" | "P", name: string) => w.start(0x44).byte(kind.charCodeAt(0)).cstr(name).end().take(),
  execute: (portal = "", maxRows = 0) => w.start(0x45).cstr(portal).int32(maxRows).end().take(),
  close: (kind: "S" | "P", name: string) => w.start(0x43).byte(kind.charCodeAt(0)).cstr(name).end().take(),
  sync: () => w.start(0x53).end().take(),
  flush: () => w.start(0x48).end().take(),
  terminate: () => w.start(0x58).end().take(),
  copyData: (data: string) => w.start(0x64).bytes(new TextEncoder().encode(data)).end().take(),
  copyDone: () => w.start(0x63).end().take(),
  copyFail: (why: string) => w.start(0x66).cstr(why).end().take(),
};

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
