// A short-lived connection outside any pool (a health check's login): connect, exchange a few messages, close, within a deadline.

import type { Socket } from "bun";
import { connectSocket, describeTarget } from "./address.ts";

/** One conversation over a one-shot connection. */
export interface Exchange<T> {
  /** Sent as soon as the connection opens. */
  readonly hello: Uint8Array;
  /** Each chunk from the peer. `send` replies; `finish` ends the exchange with its result and closes the connection. */
  data(chunk: Uint8Array, send: (bytes: Uint8Array) => void, finish: (result: T) => void): void;
  /** The result when the connection fails, closes or times out before `finish`, or `data` throws. */
  failed(why: string): T;
}

/** Runs one exchange with host:port; always resolves (failures become `x.failed(why)`), at the latest after timeoutMs. */
export function oneShot<T>(host: string, port: number, timeoutMs: number, x: Exchange<T>): Promise<T> {
  return new Promise<T>((resolve) => {
    let socket: Socket<undefined> | null = null;
    let done = false;
    // Bun may take only part of a write: the rest waits for drain.
    let unsent: Uint8Array | null = null;
    const finish = (result: T) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket?.end();
      resolve(result);
    };
    const fail = (why: string) => {
      if (!done) finish(x.failed(why));
    };
    const flush = () => {
      if (socket === null || unsent === null) return;
      const n = socket.write(unsent);
      unsent = n >= unsent.length ? null : unsent.subarray(Math.max(0, n));
    };
    const send = (bytes: Uint8Array) => {
      if (done) return;
      if (unsent === null) unsent = bytes;
      else {
        const joined = new Uint8Array(unsent.length + bytes.length);
        joined.set(unsent);
        joined.set(bytes, unsent.length);
        unsent = joined;
      }
      flush();
    };
    const timer = setTimeout(() => {
      fail(`no answer within ${timeoutMs} ms`);
      // A connect still pending is abandoned; if it opens later, open() ends it.
    }, timeoutMs);
    connectSocket<undefined>(
      host,
      port,
      {
        binaryType: "uint8array",
        open(s) {
          if (done) {
            s.end();
            return;
          }
          socket = s;
          send(x.hello);
        },
        data(_s, chunk) {
          if (done) return;
          try {
            x.data(chunk, send, finish);
          } catch (err) {
            fail((err as Error).message);
          }
        },
        drain() {
          flush();
        },
        close(_s, err) {
          fail(err ? `connection error: ${err.message}` : "the server closed the connection");
        },
        end(s) {
          s.end();
        },
        error(_s, err) {
          fail(`connection error: ${err.message}`);
        },
        connectError(_s, err) {
          fail(`cannot connect to ${describeTarget(host, port)}: ${describe(err)}`);
        },
      },
      undefined,
    ).catch((err: Error) => fail(`cannot connect to ${describeTarget(host, port)}: ${describe(err)}`));
  });
}

/** "Failed to connect" alone does not say refused from unreachable: add the errno name. */
function describe(err: Error): string {
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === "string" && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}
