// TLS for client connections: the answer to SSLRequest, PostgreSQL 17's direct TLS, the handshake and client
// certificates. The connection moves to the TLS socket; the plain one is detached, since its handlers keep firing.

import type { Socket, SocketHandler } from "bun";
import { log } from "../log.ts";
import { beginBatch, endBatch } from "../net/outbox.ts";
import { type ClientTls, clientTls, tlsLabel, tlsStats } from "../net/tls.ts";
import type { ClientConn } from "./client.ts";

type Phase = "requested" | "handshake" | "encrypted" | "failed";

interface ClientTlsState {
  phase: Phase;
  /** Direct TLS (no SSLRequest): ALPN must have said postgresql, as PostgreSQL requires. */
  direct: boolean;
  tls: ClientTls;
  /** The peer's address: the TLS socket knows it only once the handshake is done. */
  addr: string;
  /** Called once the handshake succeeded: the login goes on with the startup packet. */
  ready: (() => void) | null;
}

const states = new WeakMap<ClientConn, ClientTlsState>();

const SSL_ACCEPTED = new Uint8Array([0x53]); // 'S'
/** The first byte of a TLS record carrying a handshake message (a ClientHello, when a connection starts with it). */
export const TLS_HANDSHAKE_RECORD = 0x16;

/** What the plain socket's handlers see once TLS has taken over: they get the ciphertext, and must do nothing with it. */
const DETACHED = { id: 0, state: "closed", onData() {}, onClose() {}, outbox: { drain() {} } } as unknown as ClientConn;

/** The TLS socket's handlers: the listener's, except that open() makes no client and the handshake is watched. */
const tlsHandlers: SocketHandler<ClientConn> = {
  binaryType: "uint8array",
  open() {},
  handshake: onHandshake,
  data(socket, chunk) {
    const began = beginBatch();
    socket.data.onData(chunk);
    endBatch(began);
  },
  drain(socket) {
    socket.data.outbox.drain();
  },
  close(socket) {
    const c = socket.data;
    const st = states.get(c);
    if (st !== undefined) handshakeFailed(c, "the connection closed during the TLS handshake");
    c.onClose();
  },
  error(socket, err) {
    log.debug("client", "socket error", { client: socket.data.id, error: err.message });
  },
  end(socket) {
    socket.end();
  },
};

/** Whether this client talks TLS (its handshake is done). */
export function clientEncrypted(c: ClientConn): boolean {
  return states.get(c)?.phase === "encrypted";
}

/** tls-server-end-point data to offer SCRAM-SHA-256-PLUS with; null over plain text. */
export function clientChannelBinding(c: ClientConn): Uint8Array | null {
  const st = states.get(c);
  return st?.phase === "encrypted" ? st.tls.endPoint : null;
}

/** client_tls_sslmode require or stricter: a client in plain text may not log in. */
export function clientTlsRequired(): boolean {
  const mode = clientTls()?.mode;
  return mode === "require" || mode === "verify-ca" || mode === "verify-full";
}

/**
 * An SSLRequest: true when TLS starts (answered 'S'), false when client TLS is off and the caller answers 'N'. The
 * upgrade waits until the chunk that carried the request is handled: any byte after it, before the handshake, is plain
 * text slipped in ahead of TLS (the CVE-2021-23214 class), and the connection is closed instead.
 */
export function acceptSslRequest(c: ClientConn, ready: () => void): boolean {
  const tls = clientTls();
  if (tls === null) return false;
  if (states.has(c)) {
    c.close("SSLRequest on a connection that already negotiated TLS");
    return true;
  }
  states.set(c, { phase: "requested", direct: false, tls, addr: c.remote, ready });
  queueMicrotask(() => upgrade(c, null));
  return true;
}

/** PostgreSQL 17's direct TLS: the connection's first byte starts a TLS handshake. True when taken. */
export function acceptDirectTls(c: ClientConn, chunk: Uint8Array): boolean {
  const tls = clientTls();
  if (tls === null || states.has(c) || chunk[0] !== TLS_HANDSHAKE_RECORD) return false;
  states.set(c, { phase: "requested", direct: true, tls, addr: c.remote, ready: null });
  upgrade(c, chunk);
  return true;
}

function upgrade(c: ClientConn, initialData: Uint8Array | null): void {
  const st = states.get(c)!;
  if (c.state === "closed") return;
  if (c.framer.buffered > 0) {
    log.warn("client", "plain-text bytes after SSLRequest, before the TLS handshake: connection closed", { client: c.id, addr: c.remote });
    c.close("plain-text bytes after SSLRequest");
    return;
  }
  const raw = c.socket;
  const addr = c.remote;
  let plain: Socket<ClientConn>;
  let encrypted: Socket<ClientConn>;
  try {
    if (initialData === null && raw.write(SSL_ACCEPTED) !== 1) {
      c.close("could not answer SSLRequest");
      return;
    }
    // isServer and initialData are real options of Bun's upgradeTLS that its types do not list.
    const options = { data: c, tls: st.tls.options, socket: tlsHandlers, isServer: true, ...(initialData !== null ? { initialData } : {}) };
    [plain, encrypted] = raw.upgradeTLS<ClientConn>(options as Parameters<typeof raw.upgradeTLS<ClientConn>>[0]);
  } catch (err) {
    handshakeFailed(c, (err as Error).message);
    c.close(`TLS could not start: ${(err as Error).message}`);
    return;
  }
  // The plain side's events come with the socket object upgradeTLS returned (the one it was called on goes dead).
  plain.data = DETACHED;
  st.addr = addr;
  // ClientConn's socket is the one it pauses, resumes and reports; from now on that is the TLS socket.
  (c as unknown as { socket: Socket<ClientConn> }).socket = encrypted;
  c.outbox.moveTo(encrypted as Socket<unknown>);
  st.phase = "handshake";
}

function onHandshake(socket: Socket<ClientConn>, ok: boolean, authorizationError: Error | null): void {
  const c = socket.data;
  const st = states.get(c);
  if (st === undefined || st.phase !== "handshake" || c.state === "closed") return;
  try {
    handshakeDone(c, st, socket, ok, authorizationError);
  } catch (err) {
    // No exception leaves a socket handler: the client is told and let go.
    log.error("client", "unexpected error after the TLS handshake", { client: c.id, stack: (err as Error).stack });
    c.fatal("XX000", "pgbun internal error");
  }
}

function handshakeDone(c: ClientConn, st: ClientTlsState, socket: Socket<ClientConn>, ok: boolean, authorizationError: Error | null): void {
  if (!ok) {
    handshakeFailed(c, authorizationError?.message ?? "handshake failed");
    c.close("TLS handshake failed");
    return;
  }
  // Writes are possible from here on: refusals are FATAL errors the client can read, over TLS.
  if (st.direct && socket.alpnProtocol !== "postgresql") {
    handshakeFailed(c, "direct TLS without ALPN postgresql");
    c.fatal("08P01", "received direct SSL connection request without ALPN protocol negotiation extension");
    return;
  }
  if (st.tls.verify) {
    const peer = (socket as unknown as { getPeerX509Certificate?(): unknown }).getPeerX509Certificate?.();
    const mode = st.tls.mode;
    if (!peer) {
      handshakeFailed(c, "no client certificate");
      c.fatal("28000", `pgbun: connection requires a valid client certificate (client_tls_sslmode = ${mode})`);
      return;
    }
    if (authorizationError !== null) {
      handshakeFailed(c, `client certificate rejected: ${authorizationError.message}`);
      c.fatal("28000", `pgbun: client certificate rejected (client_tls_sslmode = ${mode}, client_tls_ca_file): ${authorizationError.message}`);
      return;
    }
  }
  st.phase = "encrypted";
  tlsStats.clientHandshakes++;
  if (c.ctx.settings.log_connections) log.info("client", "TLS established", { client: c.id, addr: c.remote, tls: tlsLabel(socket as Socket<unknown>) });
  const ready = st.ready;
  st.ready = null;
  ready?.();
}

function handshakeFailed(c: ClientConn, why: string): void {
  const st = states.get(c);
  if (st === undefined || st.phase === "encrypted" || st.phase === "failed") return;
  st.phase = "failed";
  tlsStats.clientHandshakeFailures++;
  log.warn("client", "TLS handshake failed", { client: c.id, addr: st.addr, error: why });
}
