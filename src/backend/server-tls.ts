// TLS towards PostgreSQL: the SSLRequest and its one-byte answer, the handshake and the certificate checks
// server_tls_sslmode asks for, and allow's second try over TLS. ServerConn logs in over whichever socket comes out.

import type { Socket, SocketHandler } from "bun";
import { log } from "../log.ts";
import {
  certificateProblem,
  peerEndPoint,
  requiresTls,
  type ServerTls,
  serverTls,
  SSL_NO,
  SSL_REQUEST,
  SSL_YES,
  tlsLabel,
  tlsStats,
} from "../net/tls.ts";
import type { ServerConn } from "./server.ts";

/** The TLS settings a connection started with: a reload meanwhile does not change what its handshake checks. */
const plans = new WeakMap<ServerConn, ServerTls>();
/** Plain sockets that became TLS: their handlers keep firing with the ciphertext, which the TLS socket reads. */
const upgraded = new WeakSet<Socket<ServerConn>>();

let base: SocketHandler<ServerConn> | null = null;
let negotiating: SocketHandler<ServerConn> | null = null;
let encrypted: SocketHandler<ServerConn> | null = null;
const ignoring: SocketHandler<ServerConn> = { data() {}, close() {}, error() {} };

/**
 * The handlers a new server connection starts with: ServerConn's own when no TLS is asked for (disable, and allow's
 * first, plain-text try), else ones that send SSLRequest first and hand over to ServerConn's once TLS is settled.
 */
export function serverSocketHandlers(conn: ServerConn, own: SocketHandler<ServerConn>): SocketHandler<ServerConn> {
  const tls = serverTls();
  // No TLS over a Unix socket, as libpq and PostgreSQL have it.
  if (tls === null || conn.target.host.startsWith("/")) return own;
  ready(own);
  if (tls.mode === "allow") return own;
  plans.set(conn, tls);
  return negotiating!;
}

/** For SHOW SERVERS and logs: how the connection to PostgreSQL is encrypted ("" in plain text). */
export function serverTlsLabel(conn: ServerConn): string {
  return tlsLabel(conn.socket as Socket<unknown> | null);
}

/** On a TLS connection, the server certificate's tls-server-end-point data for SCRAM-SHA-256-PLUS; null in plain text. */
export function serverChannelBinding(socket: Socket<ServerConn>): (() => Uint8Array | null) | null {
  return tlsLabel(socket as Socket<unknown>) === "" ? null : () => peerEndPoint(socket as Socket<unknown>);
}

/**
 * server_tls_sslmode = allow, as libpq does it: PostgreSQL refused the plain-text login, so try once more over TLS.
 * True when the second try is under way (the login goes on there).
 */
export function retryOverTls(conn: ServerConn): boolean {
  const tls = serverTls();
  const old = conn.socket;
  if (tls?.mode !== "allow" || plans.has(conn) || old === null || base === null || conn.target.host.startsWith("/")) return false;
  plans.set(conn, tls);
  // The plain socket's end must not end the login that goes on over the new one.
  old.reload({ socket: ignoring });
  old.end();
  conn.outbox?.dispose();
  conn.socket = null;
  conn.outbox = null;
  log.debug("server", "plain-text login refused; trying TLS (server_tls_sslmode = allow)", { server: conn.id });
  Bun.connect<ServerConn>({ hostname: conn.target.host, port: conn.target.port, socket: negotiating!, data: conn }).catch((err: Error) =>
    conn.onConnectError(err.message),
  );
  return true;
}

function ready(own: SocketHandler<ServerConn>): void {
  if (base === own) return;
  base = own;
  negotiating = {
    binaryType: "uint8array",
    open(raw) {
      const conn = raw.data;
      if (conn.state === "closed") raw.end();
      else if (raw.write(SSL_REQUEST) !== SSL_REQUEST.length) fail(conn, raw, "could not send SSLRequest");
    },
    data(raw, chunk) {
      if (!upgraded.has(raw)) answered(raw, chunk);
    },
    close(raw, err) {
      if (!upgraded.has(raw)) own.close?.(raw, err);
    },
    error(raw, err) {
      if (!upgraded.has(raw)) own.error?.(raw, err);
    },
    connectError(raw, err) {
      own.connectError?.(raw, err);
    },
    end(raw) {
      raw.end();
    },
  };
  encrypted = {
    ...own,
    // Bytes written before the handshake ends are lost: the startup message waits for handshake().
    open() {},
    handshake: onHandshake,
    close(tls, err) {
      const conn = tls.data;
      if (conn.state === "connecting" && conn.socket !== tls) {
        tlsStats.serverHandshakeFailures++;
        log.warn("server", "TLS handshake with the server failed", { server: conn.id, error: err?.message ?? "closed during the handshake" });
      }
      own.close?.(tls, err);
    },
  };
}

/** The server's one-byte answer to SSLRequest. */
function answered(raw: Socket<ServerConn>, chunk: Uint8Array): void {
  const conn = raw.data;
  if (conn.state === "closed") return;
  const plan = plans.get(conn)!;
  const answer = chunk[0];
  // Nothing may follow the answer before the handshake: such bytes would be a man in the middle's plain text (CVE-2021-23222).
  if (chunk.length !== 1) {
    fail(conn, raw, `the server sent ${chunk.length - 1} unexpected bytes after its answer to SSLRequest`);
    return;
  }
  if (answer === SSL_NO) {
    if (requiresTls(plan.mode)) {
      fail(conn, raw, `the server does not support TLS, and server_tls_sslmode = ${plan.mode} refuses plain text`);
      return;
    }
    raw.reload({ socket: base! });
    conn.opened(raw);
    return;
  }
  if (answer !== SSL_YES) {
    fail(conn, raw, `the server answered SSLRequest with byte ${answer}, neither S nor N`);
    return;
  }
  try {
    // The plain side's later events come with the socket object upgradeTLS returns.
    const [plain] = raw.upgradeTLS<ServerConn>({ data: conn, tls: plan.options(conn.target.host), socket: encrypted! });
    upgraded.add(plain);
    upgraded.add(raw);
  } catch (err) {
    fail(conn, raw, `TLS could not start: ${(err as Error).message}`);
  }
}

function onHandshake(tls: Socket<ServerConn>, ok: boolean, authorizationError: Error | null): void {
  const conn = tls.data;
  if (conn.state !== "connecting" || conn.socket !== null) return;
  const problem = certificateProblem(plans.get(conn)!.mode, ok, authorizationError);
  if (problem !== null) {
    tlsStats.serverHandshakeFailures++;
    fail(conn, tls, problem);
    return;
  }
  tlsStats.serverHandshakes++;
  conn.opened(tls);
}

function fail(conn: ServerConn, socket: Socket<ServerConn>, reason: string): void {
  conn.onConnectError(reason);
  socket.end();
}
