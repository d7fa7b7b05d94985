// The TLS in force on each side (set at start and at every reload), the options a handshake gets, and what the admin
// console, the logs and /metrics say about a connection's TLS.

import type { Socket, TLSOptions } from "bun";
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import type { TlsMode } from "../config/schema.ts";
import type { TlsConfig, TlsSide } from "../config/tls.ts";
import { tlsServerEndPoint } from "../protocol/cert-hash.ts";

/** SSLRequest: length 8 and the code 80877103. */
export const SSL_REQUEST = new Uint8Array([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
export const SSL_YES = 0x53; // 'S'
export const SSL_NO = 0x4e; // 'N'
/** The host name does not match; verify-ca does not ask for it to. */
const HOST_MISMATCH = "ERR_TLS_CERT_ALTNAME_INVALID";

/** ALPN "postgresql" in its wire form (a length byte, then the name), as PostgreSQL 17's direct TLS asks for it. */
const ALPN_POSTGRESQL = Buffer.from("\x0apostgresql", "latin1");

/** TLS towards clients: pgbun is the TLS server. */
export interface ClientTls {
  mode: TlsMode;
  /** Client certificates are asked for and checked (verify-ca, verify-full). */
  verify: boolean;
  options: TLSOptions;
  /** tls-server-end-point data of pgbun's certificate, for SCRAM-SHA-256-PLUS; null when none can be computed. */
  endPoint: Uint8Array | null;
  files: string;
}

/** TLS towards PostgreSQL: pgbun is the TLS client. */
export interface ServerTls {
  mode: TlsMode;
  options(host: string): TLSOptions;
}

let client: ClientTls | null = null;
let server: ServerTls | null = null;

/** Counted since start, for /metrics. */
export const tlsStats = { clientHandshakes: 0, clientHandshakeFailures: 0, serverHandshakes: 0, serverHandshakeFailures: 0 };

/** Puts a config's TLS in force for connections made from now on; connections already encrypted keep theirs. */
export function configureTls(tls: TlsConfig | undefined): void {
  client = tls?.client ? clientSide(tls.client) : null;
  server = tls?.server ? serverSide(tls.server) : null;
}

export function clientTls(): ClientTls | null {
  return client;
}

export function serverTls(): ServerTls | null {
  return server;
}

function clientSide(t: TlsSide): ClientTls {
  const verify = t.mode === "verify-ca" || t.mode === "verify-full";
  const options: TLSOptions = {
    cert: t.cert,
    key: t.key,
    ...(verify ? { ca: t.ca, requestCert: true } : {}),
    // pgbun decides what a bad client certificate gets: a FATAL the client can read beats a TLS alert.
    rejectUnauthorized: false,
    secureOptions: t.secureOptions,
    ...(t.ciphers !== undefined ? { ciphers: t.ciphers } : {}),
    ALPNProtocols: ALPN_POSTGRESQL,
  };
  const first = t.cert === undefined ? null : new X509Certificate(t.cert);
  return { mode: t.mode, verify, options, endPoint: first === null ? null : tlsServerEndPoint(first.raw), files: t.files };
}

function serverSide(t: TlsSide): ServerTls {
  const base: TLSOptions = {
    ...(t.cert !== undefined ? { cert: t.cert, key: t.key } : {}),
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
    // The handshake callback decides per sslmode: require accepts any certificate, verify-ca ignores the host name.
    rejectUnauthorized: false,
    secureOptions: t.secureOptions,
    ...(t.ciphers !== undefined ? { ciphers: t.ciphers } : {}),
  };
  // SNI carries names only; managed services route by it. The certificate is checked against IP addresses too.
  return { mode: t.mode, options: (host) => (isIP(host) === 0 ? { ...base, serverName: host } : base) };
}

interface TlsFacts {
  getTLSVersion?(): string | null;
  getCipher?(): { name?: string } | undefined;
}

/** "TLSv1.3/TLS_AES_256_GCM_SHA384" for an encrypted socket, "" for a plain one (SHOW CLIENTS / SERVERS, logs). */
export function tlsLabel(socket: Socket<unknown> | null): string {
  const s = socket as unknown as TlsFacts | null;
  const version = s?.getTLSVersion?.() ?? null;
  if (version === null || version === "") return "";
  const cipher = s?.getCipher?.()?.name;
  return cipher ? `${version}/${cipher}` : version;
}

/** The server's tls-server-end-point data, from its certificate on this socket; null when there is none to bind to. */
export function peerEndPoint(socket: Socket<unknown>): Uint8Array | null {
  const cert = (socket as unknown as { getPeerX509Certificate?(): X509Certificate | undefined }).getPeerX509Certificate?.();
  return cert ? tlsServerEndPoint(cert.raw) : null;
}

/** server_tls_sslmode require or stricter: never plain text to the server. */
export function requiresTls(mode: TlsMode): boolean {
  return mode === "require" || mode === "verify-ca" || mode === "verify-full";
}

/** What server_tls_sslmode finds wrong with the server's certificate after a handshake, or null. */
export function certificateProblem(mode: TlsMode, ok: boolean, err: Error | null): string | null {
  if (mode !== "verify-ca" && mode !== "verify-full") return null;
  if (ok && err === null) return null;
  const code = (err as (Error & { code?: string }) | null)?.code;
  if (mode === "verify-ca" && code === HOST_MISMATCH) return null;
  const why = err?.message ?? "the certificate did not verify";
  return code === HOST_MISMATCH
    ? `the server certificate does not name this host (server_tls_sslmode = verify-full): ${why}`
    : `the server certificate is not trusted (server_tls_sslmode = ${mode}, server_tls_ca_file): ${why}`;
}
