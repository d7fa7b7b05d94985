// SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL uses it: verifiers, the server side for clients, the client side for servers.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

export class ScramError extends Error {
  readonly code = "SCRAM_ERROR";
}

export interface ScramVerifier {
  iterations: number;
  salt: Uint8Array;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

const hmac = (key: Uint8Array, data: string | Uint8Array) => createHmac("sha256", key).update(data).digest();
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** SASLprep, approximated by NFKC as PostgreSQL falls back to the raw password when preparation fails. */
function prep(password: string): string {
  try {
    return password.normalize("NFKC");
  } catch {
    return password;
  }
}

/** PBKDF2 costs milliseconds; a pooler reconnecting to the same server reuses the result. */
const saltedCache = new Map<string, Buffer>();

function saltedPassword(password: string, salt: Uint8Array, iterations: number): Buffer {
  const key = `${iterations}:${b64(salt)}:${password}`;
  let v = saltedCache.get(key);
  if (v === undefined) {
    v = pbkdf2Sync(prep(password), salt, iterations, 32, "sha256");
    if (saltedCache.size >= 256) saltedCache.delete(saltedCache.keys().next().value!);
    saltedCache.set(key, v);
  }
  return v;
}

export function isScramVerifier(s: string): boolean {
  return s.startsWith("SCRAM-SHA-256$");
}

export function parseScramVerifier(s: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(s);
  if (!m) return null;
  const iterations = Number(m[1]);
  const storedKey = unb64(m[3]!);
  const serverKey = unb64(m[4]!);
  if (!(iterations > 0) || storedKey.length !== 32 || serverKey.length !== 32) return null;
  return { iterations, salt: unb64(m[2]!), storedKey, serverKey };
}

export function formatScramVerifier(v: ScramVerifier): string {
  return `SCRAM-SHA-256$${v.iterations}:${b64(v.salt)}$${b64(v.storedKey)}:${b64(v.serverKey)}`;
}

export function scramVerifierFromPassword(password: string, salt: Uint8Array = randomBytes(16), iterations = 4096): ScramVerifier {
  const salted = saltedPassword(password, salt, iterations);
  return {
    iterations,
    salt,
    storedKey: sha256(hmac(salted, "Client Key")),
    serverKey: hmac(salted, "Server Key"),
  };
}

function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

const nonce = () => randomBytes(18).toString("base64");

/** pgbun authenticating a client against a stored verifier. */
export class ScramServerExchange {
  private clientFirstBare = "";
  private serverFirst = "";
  private fullNonce = "";
  private done = false;

  constructor(
    private readonly verifier: ScramVerifier,
    private readonly serverNonce: string = nonce(),
  ) {}

  get ok(): boolean {
    return this.done;
  }

  clientFirst(message: string): { reply: string } | { error: string } {
    let rest: string;
    if (message.startsWith("n,,") || message.startsWith("y,,")) rest = message.slice(3);
    else if (message.startsWith("p=")) return { error: "channel binding is not supported (pgbun offers SCRAM-SHA-256 only)" };
    else return { error: "malformed gs2 header" };
    const attrs = attributes(rest);
    const clientNonce = attrs.get("r");
    if (!clientNonce) return { error: "client nonce missing" };
    this.clientFirstBare = rest;
    this.fullNonce = clientNonce + this.serverNonce;
    this.serverFirst = `r=${this.fullNonce},s=${b64(this.verifier.salt)},i=${this.verifier.iterations}`;
    return { reply: this.serverFirst };
  }

  clientFinal(message: string): { reply: string } | { error: string } {
    const proofAt = message.lastIndexOf(",p=");
    if (proofAt < 0 || !this.serverFirst) return { error: "malformed client-final-message" };
    const withoutProof = message.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get("r") !== this.fullNonce) return { error: "nonce mismatch" };
    const c = attrs.get("c");
    if (c !== "biws" && c !== "eSws") return { error: "unexpected channel binding" };
    const proof = unb64(message.slice(proofAt + 3));
    if (proof.length !== 32) return { error: "malformed proof" };
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.verifier.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) return { error: "wrong password" };
    this.done = true;
    return { reply: `v=${b64(hmac(this.verifier.serverKey, authMessage))}` };
  }
}

/** pgbun logging into PostgreSQL with a plain password. */
export class ScramClientExchange {
  private clientFirstBare: string;
  private expectedServerSignature = "";

  constructor(
    private readonly password: string,
    private readonly clientNonce: string = nonce(),
  ) {
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
  }

  clientFirst(): string {
    return "n,," + this.clientFirstBare;
  }

  serverFirst(message: string): string {
    const attrs = attributes(message);
    const r = attrs.get("r");
    const s = attrs.get("s");
    const i = Number(attrs.get("i"));
    if (!r || !s || !Number.isInteger(i) || i < 1) throw new ScramError("malformed SCRAM server-first-message");
    if (!r.startsWith(this.clientNonce)) throw new ScramError("SCRAM server nonce does not extend ours");
    const salted = saltedPassword(this.password, unb64(s), i);
    const clientKey = hmac(salted, "Client Key");
    const withoutProof = `c=biws,r=${r}`;
    const authMessage = `${this.clientFirstBare},${message},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.expectedServerSignature = b64(hmac(hmac(salted, "Server Key"), authMessage));
    return `${withoutProof},p=${b64(proof)}`;
  }

  serverFinal(message: string): void {
    const attrs = attributes(message);
    const e = attrs.get("e");
    if (e) throw new ScramError(`server rejected SCRAM authentication: ${e}`);
    if (attrs.get("v") !== this.expectedServerSignature) throw new ScramError("SCRAM server signature mismatch");
  }
}
