// The TLS settings of both sides read with the config: certificate, key and CA files loaded and checked, and the
// protocol and cipher choices turned into what the TLS library takes. A bad file stops a start, or a reload, in one line.

import { constants, createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { createSecureContext } from "node:tls";
import { ConfigError } from "./errors.ts";
import type { Settings, TlsMode } from "./schema.ts";

/** One side's TLS: its mode and everything a handshake needs, PEM text already read. */
export interface TlsSide {
  mode: TlsMode;
  cert?: string;
  key?: string;
  ca?: string;
  /** SSL_OP_NO_* bits for the protocol versions client_tls_protocols / server_tls_protocols leave out. */
  secureOptions: number;
  /** An OpenSSL cipher list, or undefined for the library's default. */
  ciphers?: string;
  /** The files it was read from, for log lines. */
  files: string;
}

/** null: that side does no TLS (sslmode disable). */
export interface TlsConfig {
  client: TlsSide | null;
  server: TlsSide | null;
}

type Side = "client" | "server";

const VERSIONS = ["tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"] as const;
const NO_VERSION: Record<(typeof VERSIONS)[number], number> = {
  "tlsv1.0": constants.SSL_OP_NO_TLSv1,
  "tlsv1.1": constants.SSL_OP_NO_TLSv1_1,
  "tlsv1.2": constants.SSL_OP_NO_TLSv1_2,
  "tlsv1.3": constants.SSL_OP_NO_TLSv1_3,
};
const PROTOCOL_WORDS: Record<string, readonly string[]> = {
  secure: ["tlsv1.2", "tlsv1.3"],
  default: ["tlsv1.2", "tlsv1.3"],
  all: VERSIONS,
  legacy: VERSIONS,
  "tlsv1": ["tlsv1.0"],
};
/** Shorthands for cipher lists (TLS 1.2 and older; TLS 1.3 suites are the library's own). */
const CIPHER_WORDS: Record<string, string | undefined> = {
  default: undefined,
  secure: "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL",
  fast: "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL",
  normal: "HIGH:!aNULL:!MD5",
  compat: "HIGH:MEDIUM:!aNULL:!MD5",
  legacy: "HIGH:MEDIUM:!aNULL:!MD5",
  insecure: "ALL",
  all: "ALL",
};

export function readTls(s: Settings, cwd: string): TlsConfig {
  return { client: readSide("client", s, cwd), server: readSide("server", s, cwd) };
}

function readSide(side: Side, s: Settings, cwd: string): TlsSide | null {
  const mode = s[`${side}_tls_sslmode`];
  if (mode === "disable") return null;
  const key = `${side}_tls_key_file` as const;
  const cert = `${side}_tls_cert_file` as const;
  const ca = `${side}_tls_ca_file` as const;
  const verify = mode === "verify-ca" || mode === "verify-full";
  if (side === "client" && (s[key] === "" || s[cert] === "")) {
    const missing = s[cert] === "" ? cert : key;
    throw new ConfigError(`client_tls_sslmode = ${mode} needs a certificate and its key: set ${missing} (--${missing.replace(/_/g, "-")}), or client_tls_sslmode = disable`, { key: missing });
  }
  if (side === "client" && verify && s[ca] === "") {
    throw new ConfigError(`client_tls_sslmode = ${mode} checks client certificates against client_tls_ca_file: set it (--client-tls-ca-file) to the CA's PEM file`, { key: ca });
  }
  if (side === "server" && (s[key] === "") !== (s[cert] === "")) {
    const missing = s[key] === "" ? key : cert;
    throw new ConfigError(`${missing} is empty but ${missing === key ? cert : key} is set: a client certificate for PostgreSQL needs both`, { key: missing });
  }
  const out: TlsSide = {
    mode,
    secureOptions: protocolOptions(side, s[`${side}_tls_protocols`]),
    ciphers: cipherList(side, s[`${side}_tls_ciphers`]),
    files: [s[cert], s[key], s[ca]].filter((f) => f !== "").join(", "),
  };
  if (s[cert] !== "") {
    out.cert = pem(cert, s[cert], cwd, (t) => new X509Certificate(t));
    out.key = pem(key, s[key], cwd, (t) => createPrivateKey(t));
  }
  // A CA file is only used to verify, so it is read only where something is verified.
  if (s[ca] !== "" && (side === "server" || verify)) out.ca = pem(ca, s[ca], cwd, (t) => new X509Certificate(t));
  try {
    createSecureContext({ cert: out.cert, key: out.key, ca: out.ca, ciphers: out.ciphers, secureOptions: out.secureOptions });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === "ERR_SSL_NO_CIPHER_MATCH") {
      throw invalid(`${side}_tls_ciphers`, s[`${side}_tls_ciphers`], "no cipher of that list is known; expected an OpenSSL cipher list or default, secure, fast, normal, compat, legacy, insecure, all");
    }
    if (/KEY_VALUES_MISMATCH/i.test(`${e.code} ${e.message}`)) {
      throw new ConfigError(`${key} ${JSON.stringify(s[key])} is not the key of ${cert} ${JSON.stringify(s[cert])}: give the private key the certificate was made for`, { key });
    }
    throw new ConfigError(`${side}_tls_* files cannot be used together: ${e.message}`, { key: cert, cause: err });
  }
  return out;
}

/** The file's text, checked by `parse`; errors name the setting and the file. */
function pem(setting: string, given: string, cwd: string, parse: (text: string) => unknown): string {
  const path = isAbsolute(given) ? given : resolve(cwd, given);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const e = err as Error & { code?: string };
    throw new ConfigError(`${setting} ${JSON.stringify(given)} cannot be read (${e.code ?? e.message}${isAbsolute(given) ? "" : `, relative to ${cwd}`})`, { key: setting, value: given, cause: err });
  }
  try {
    parse(text);
  } catch (err) {
    const what = setting.endsWith("key_file") ? "a PEM private key" : "a PEM certificate";
    throw new ConfigError(`${setting} ${JSON.stringify(given)} is not ${what} (${(err as Error).message})`, { key: setting, value: given, cause: err });
  }
  return text;
}

function protocolOptions(side: Side, text: string): number {
  const allowed = new Set<string>();
  for (const word of text.toLowerCase().split(/[\s,:]+/).filter((w) => w !== "")) {
    const versions = PROTOCOL_WORDS[word] ?? ((VERSIONS as readonly string[]).includes(word) ? [word] : null);
    if (versions === null) {
      throw invalid(`${side}_tls_protocols`, text, "expected tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, all, secure or legacy, comma-separated");
    }
    for (const v of versions) allowed.add(v);
  }
  if (allowed.size === 0) throw invalid(`${side}_tls_protocols`, text, "expected at least one protocol, e.g. secure");
  let options = 0;
  for (const v of VERSIONS) if (!allowed.has(v)) options |= NO_VERSION[v];
  return options;
}

function cipherList(side: Side, text: string): string | undefined {
  const t = text.trim();
  if (t === "") throw invalid(`${side}_tls_ciphers`, text, "expected an OpenSSL cipher list or default");
  return Object.hasOwn(CIPHER_WORDS, t.toLowerCase()) ? CIPHER_WORDS[t.toLowerCase()] : t;
}

function invalid(key: string, value: string, allowed: string): ConfigError {
  return new ConfigError(`invalid value ${JSON.stringify(value)} for ${key}: ${allowed}`, { key, value, allowed });
}
