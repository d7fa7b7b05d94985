// A short-lived connection outside any pool (a health check's login): connect, exchange a few messages, close, within a deadline.

import type { Socket } from "bun";
import { connectSocket, describeTarget } from "./address.ts";
import { certificateProblem, requiresTls, type ServerTls, serverTls, SSL_NO, SSL_REQUEST, SSL_YES } from "./tls.ts";

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
      (socket ?? handshaking)?.end();
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
    const tls: ServerTls | null = serverTls();
    let negotiating = false;
    /** The plain socket became TLS: its handlers keep firing with the ciphertext, which they leave alone. */
    let upgraded = false;
    let handshaking: Socket<undefined> | null = null;
    const received = (chunk: Uint8Array) => {
      try {
        x.data(chunk, send, finish);
      } catch (err) {
        fail((err as Error).message);
      }
    };
    const closed = (err?: Error) => fail(err ? `connection error: ${err.message}` : "the server closed the connection");
    const startTls = (s: Socket<undefined>) => {
      upgraded = true;
      socket = null;
      try {
        [, handshaking] = s.upgradeTLS<undefined>({
          tls: tls!.options(host),
          socket: {
            binaryType: "uint8array",
            handshake(t, ok, err) {
              const problem = certificateProblem(tls!.mode, ok, err);
              if (problem !== null) return fail(problem);
              socket = t;
              send(x.hello);
            },
            data: (_t, chunk) => void (done || received(chunk)),
            drain: () => flush(),
            close: (_t, err) => closed(err),
            error: (_t, err) => fail(`connection error: ${err.message}`),
          },
        });
      } catch (err) {
        fail(`TLS could not start: ${(err as Error).message}`);
      }
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
          // As the pools' connections do: TLS first when server_tls_sslmode asks for it (the login sends credentials).
          if (tls !== null && tls.mode !== "allow" && !host.startsWith("/")) {
            if (s.write(SSL_REQUEST) !== SSL_REQUEST.length) fail("could not send SSLRequest");
            negotiating = true;
            return;
          }
          send(x.hello);
        },
        data(s, chunk) {
          if (done || upgraded) return;
          if (!negotiating) received(chunk);
          else if (chunk.length !== 1) fail("the server sent unexpected bytes after its answer to SSLRequest");
          else if (chunk[0] === SSL_NO && !requiresTls(tls!.mode)) {
            negotiating = false;
            send(x.hello);
          } else if (chunk[0] === SSL_NO) fail(`the server does not support TLS, and server_tls_sslmode = ${tls!.mode} refuses plain text`);
          else if (chunk[0] !== SSL_YES) fail(`the server answered SSLRequest with byte ${chunk[0]}, neither S nor N`);
          else startTls(s);
        },
        drain() {
          flush();
        },
        close(_s, err) {
          if (!upgraded) closed(err);
        },
        end(s) {
          s.end();
        },
        error(_s, err) {
          if (!upgraded) fail(`connection error: ${err.message}`);
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
