// A separate process that opens N raw client connections, logs each in (SCRAM, md5 or cleartext) and then holds them idle.
//
// bun bench/idle-clients.ts PORT COUNT USER PASSWORD DB [CONCURRENCY] [TIMEOUT_S]
// Prints one JSON line {ready, failed, ms, errors} once every login has ended, keeps the connections open until its
// stdin closes or it gets SIGTERM/SIGINT, then prints {lost} (ready connections the server closed meanwhile) and exits.

import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { md5Response } from "../src/protocol/md5.ts";
import { passwordMessage, saslInitialResponse, saslResponse, startupMessage } from "../src/protocol/messages.ts";
import { AUTH_CLEARTEXT, AUTH_MD5, AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL, B_AUTHENTICATION, B_ERROR_RESPONSE, B_READY_FOR_QUERY } from "../src/protocol/tags.ts";

const [portArg, countArg, user = "postgres", password = "postgres", db = "postgres", concurrencyArg = "100", timeoutArg = "300"] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const concurrency = Math.max(1, Number(concurrencyArg));
const deadline = Date.now() + Number(timeoutArg) * 1000;
if (!Number.isInteger(port) || !Number.isInteger(count) || count < 0) {
  console.error("usage: bun bench/idle-clients.ts PORT COUNT [USER PASSWORD DB CONCURRENCY TIMEOUT_S]");
  process.exit(2);
}

// The salted password depends only on the server's salt and iteration count, which a pooler or PostgreSQL keeps per
// user; caching it keeps this process's CPU out of the way of the pooler being measured.
const saltedCache = new Map<string, Buffer>();
const hmac = (key: Uint8Array, data: string) => createHmac("sha256", key).update(data).digest();

function scramFinal(clientFirstBare: string, serverFirst: string): string {
  const attrs = new Map(serverFirst.split(",").map((a) => [a.slice(0, 1), a.slice(2)] as const));
  const nonce = attrs.get("r") ?? "";
  const saltB64 = attrs.get("s") ?? "";
  const iterations = Number(attrs.get("i"));
  const key = `${saltB64}:${iterations}`;
  let salted = saltedCache.get(key);
  if (!salted) {
    salted = pbkdf2Sync(password, Buffer.from(saltB64, "base64"), iterations, 32, "sha256");
    saltedCache.set(key, salted);
  }
  const clientKey = hmac(salted, "Client Key");
  const storedKey = createHash("sha256").update(clientKey).digest();
  const withoutProof = `c=biws,r=${nonce}`;
  const signature = hmac(storedKey, `${clientFirstBare},${serverFirst},${withoutProof}`);
  const proof = Buffer.alloc(clientKey.length);
  for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
  return `${withoutProof},p=${proof.toString("base64")}`;
}

type LoginState = "connecting" | "authenticating" | "ready" | "failed";

interface Conn {
  state: LoginState;
  buf: Uint8Array;
  clientFirstBare: string;
  socket: Bun.Socket<Conn> | null;
  done: (ok: boolean, why?: string) => void;
}

const startup = startupMessage({ user, database: db, application_name: "pgbun-bench-idle" });
const decoder = new TextDecoder();

function onMessage(c: Conn, tag: number, body: Uint8Array): void {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  switch (tag) {
    case B_AUTHENTICATION: {
      const code = view.getInt32(0);
      if (code === AUTH_OK) return;
      if (code === AUTH_SASL) {
        c.clientFirstBare = `n=,r=${randomBytes(18).toString("base64")}`;
        c.socket!.write(saslInitialResponse("SCRAM-SHA-256", `n,,${c.clientFirstBare}`));
      } else if (code === AUTH_SASL_CONTINUE) {
        c.socket!.write(saslResponse(scramFinal(c.clientFirstBare, decoder.decode(body.subarray(4)))));
      } else if (code === AUTH_MD5) {
        c.socket!.write(passwordMessage(md5Response(user, password, body.subarray(4, 8))));
      } else if (code === AUTH_CLEARTEXT) {
        c.socket!.write(passwordMessage(password));
      } else if (code !== AUTH_SASL_FINAL) {
        c.done(false, `unsupported authentication request ${code}`);
      }
      return;
    }
    case B_ERROR_RESPONSE: {
      const text = decoder.decode(body).split("\0").find((f) => f.startsWith("M"))?.slice(1) ?? "error";
      c.done(false, text);
      return;
    }
    case B_READY_FOR_QUERY:
      c.done(true);
      return;
    default:
      return; // ParameterStatus, BackendKeyData, NoticeResponse: nothing to decide
  }
}

function onData(c: Conn, chunk: Uint8Array): void {
  if (c.state !== "authenticating") return;
  const all = c.buf.length === 0 ? chunk : new Uint8Array(c.buf.length + chunk.length);
  if (all !== chunk) {
    all.set(c.buf);
    all.set(chunk, c.buf.length);
  }
  let at = 0;
  while (all.length - at >= 5 && c.state === "authenticating") {
    const len = new DataView(all.buffer, all.byteOffset + at + 1, 4).getInt32(0);
    if (all.length - at < 1 + len) break;
    onMessage(c, all[at]!, all.subarray(at + 5, at + 1 + len));
    at += 1 + len;
  }
  c.buf = all.slice(at);
}

const sockets: Array<Bun.Socket<Conn>> = [];
let ready = 0;
let failed = 0;
/** Connections the pooler closed after their login succeeded: they no longer count in its RSS. */
let lost = 0;
const errors = new Map<string, number>();

function openOne(): Promise<void> {
  return new Promise<void>((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const c: Conn = {
      state: "connecting",
      buf: new Uint8Array(0),
      clientFirstBare: "",
      socket: null,
      done(ok, why) {
        if (c.state === "ready" || c.state === "failed") return;
        clearTimeout(timer);
        c.state = ok ? "ready" : "failed";
        if (ok) ready++;
        else {
          failed++;
          errors.set(why ?? "?", (errors.get(why ?? "?") ?? 0) + 1);
          c.socket?.end();
        }
        resolve();
      },
    };
    timer = setTimeout(() => c.done(false, "login timed out"), Math.max(1000, deadline - Date.now()));
    Bun.connect<Conn>({
      hostname: "127.0.0.1",
      port,
      data: c,
      socket: {
        open(s) {
          c.socket = s;
          c.state = "authenticating";
          sockets.push(s);
          s.write(startup);
        },
        data(s, chunk) {
          onData(s.data, chunk);
        },
        close(s) {
          if (s.data.state === "ready") lost++;
          s.data.done(false, "closed during login");
        },
        error(s, err) {
          s.data.done(false, err.message);
        },
        connectError(s, err) {
          s.data.done(false, `connect: ${err.message}`);
        },
      },
    }).catch((err: Error) => c.done(false, `connect: ${err.message}`));
  });
}

const t0 = performance.now();
let next = 0;
async function lane(): Promise<void> {
  while (next < count && Date.now() < deadline) {
    next++;
    await openOne();
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
const top = [...errors].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([m, n]) => `${n}x ${m}`);
process.stdout.write(JSON.stringify({ ready, failed: failed + (count - next), ms: Math.round(performance.now() - t0), errors: top }) + "\n");

const finish = () => {
  process.stdout.write(JSON.stringify({ lost }) + "\n");
  for (const s of sockets) s.end();
  process.exit(0);
};
process.on("SIGTERM", finish);
process.on("SIGINT", finish);
// The parent closes our stdin when it has measured; a dead parent closes it too.
for await (const _ of Bun.stdin.stream()) {
  /* nothing to read: we only wait for EOF */
}
finish();
