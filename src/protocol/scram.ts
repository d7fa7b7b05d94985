// SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: stored verifiers, SASLprep, and both ends of the exchange.

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

/** What ScramServerExchange answers: the next message to send, or why the exchange failed (sent as 28P01). */
export type ScramReply = { reply: string } | { error: string };

const PREFIX = "SCRAM-SHA-256$";
const KEY_LENGTH = 32;
const DEFAULT_ITERATIONS = 4096;
/** PostgreSQL's own sizes: 16 bytes of salt in verifiers, 18 random bytes behind each nonce. */
const DEFAULT_SALT_LENGTH = 16;
const NONCE_BYTES = 18;
/** pbkdf2 takes a signed 32-bit count; above it Node-style crypto throws rather than computes. */
const MAX_ITERATIONS = 0x7fffffff;

/** RFC 5802's "printable": 0x21-0x7E without the comma that separates attributes. */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const ITERATIONS = /^[1-9][0-9]{0,9}$/;

const hmac = (key: Uint8Array, data: string | Uint8Array) => createHmac("sha256", key).update(data).digest();
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const randomNonce = () => randomBytes(NONCE_BYTES).toString("base64");

/**
 * Buffer's own decoder skips characters it does not know and ignores padding bits; a peer's garbage must fail
 * instead, and only the canonical form round-trips through a verifier unchanged.
 */
function unb64(s: string): Uint8Array | null {
  const bytes = Buffer.from(s, "base64");
  return bytes.toString("base64") === s ? new Uint8Array(bytes) : null;
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function parseIterations(s: string | undefined): number | null {
  if (s === undefined || !ITERATIONS.test(s)) return null;
  const n = Number(s);
  return n <= MAX_ITERATIONS ? n : null;
}

// ---- SASLprep (RFC 4013 over RFC 3454's Unicode 3.2 tables), the way PostgreSQL's pg_saslprep applies it ----

/**
 * Sorted [first, last] code point pairs, packed as comma-separated base-36 "gap-length" steps: gap from the
 * end of the previous range, then last - first when the range has more than one code point.
 */
function ranges(packed: string): Uint32Array {
  const steps = packed.split(",");
  const out = new Uint32Array(steps.length * 2);
  let next = 0;
  steps.forEach((step, i) => {
    const [gap = "0", span = "0"] = step.split("-");
    const first = next + parseInt(gap, 36);
    const last = first + parseInt(span, 36);
    out[2 * i] = first;
    out[2 * i + 1] = last;
    next = last + 1;
  });
  return out;
}

function inRanges(table: Uint32Array, c: number): boolean {
  let lo = 0;
  let hi = table.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (c < table[2 * mid]!) hi = mid - 1;
    else if (c > table[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** C.1.2, mapped to SPACE. U+200B is also in B.1; PostgreSQL checks this table first, so it becomes a space. */
const NON_ASCII_SPACE = new Uint32Array([
  0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200b, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000,
]);
/** B.1, mapped to nothing. */
const MAPPED_TO_NOTHING = new Uint32Array([
  0xad, 0xad, 0x34f, 0x34f, 0x1806, 0x1806, 0x180b, 0x180d,
  0x200b, 0x200d, 0x2060, 0x2060, 0xfe00, 0xfe0f, 0xfeff, 0xfeff,
]);
// Generated from RFC 3454: PROHIBITED is C.1.2 through C.9 plus A.1 (unassigned in Unicode 3.2, which SASLprep
// forbids in stored strings); RAND_AL_CAT is D.1 and L_CAT is D.2.
const PROHIBITED = ranges(
  "0-v,2n-x,ao,i-r,2m-1,1r-g,1s-1,e-f,g-3,2-3,1-2,1-4,7,1,k,18,13-8,3r,1z,12-1,2-5,g-w,12-1,7,13,2-5,h,n," +
  "a-a,r-4,5-m,1-d,1-2,1,q-4,m-9,3h,g-1,f,e-1,t-2,r-1g,1e-9a,3,1h-1,i-1,5-2,p-f,3,8-1,2-1,m,7,1-2,4-1,1,7-1," +
  "2-1,3-8,1-3,2,5-1,l-6,1-1,6-3,2-1,m,7,2,2,2-1,1,5-3,2-1,3-a,4,1-6,f-b,3,7,1,3,m,7,2,5-1,a,3,3-1,1-e,1-4," +
  "a-g,3,8-1,2-1,m,7,2-1,4-1,8-2,2-1,3-7,2-3,2,3-3,b-g,2,6-2,3,4-2,2,1,2-2,2-2,3-2,8,3-3,5-2,3,4-8,1-e,c-d," +
  "3,8,3,n,a,5-3,7,3,4-6,2-8,2-3,a-h,2,8,3,n,a,5-3,7,3,4-6,2-6,1,2-3,a-h,2,8,3,n,g-3,6-1,3,4-8,1-7,2-3,a-h," +
  "2,i-2,o,9,1-1,7-2,1-3,6,1,8-h,3-b,1m-3,t-10,2,1-1,2,1-1,1-5,4,7,3,1,1-1,2,d,3-1,5,1,6-1,a-1,2-x,20,y-5," +
  "r-3,8,10,f-1,1-1b,y,5,2,7-2,4-5,q-1x,12-9,15-1,1-3,2i-4,1w-4,2a-5,7,1r,1,4-1,7,1,4-1,13,1,4-1,v,1,4-1,7," +
  "1,4-1,7,7,n,v,1,4-1,7,13,j-5,s-y,2d-b,hi-9,s-2,29-e,d,7-a,n-8,k-b,d,3,2-b,2l-2,a-l,e-1,a-5,2g-7,16-11x," +
  "4c-3,2i-5,m-1,6-1,12-1,6-1,8,1,1,1,v-1,1h,f,e-1,6,j-1,3,9-g,o-7,z-3,1-n,2-1,r-g,i-t,r-k,1n-1,f-6,1d-b," +
  "fz-1c,13-o,b-k,4f,7o-1,2,2t-1,a-3a,4,4-1,s,z,1,4-2,1,7-1,1g-2,o,e-g,s-3,ls-ov,q,2h-b,5y-16,1r,2e-1,2v-4," +
  "14-3,2m,14-1j,19-2,10-c,17-2,25-3,1b,3b-3,2r-1,v,52u-21,g4m-2h,wd-2,1j-1fc,8mc-6l7,8e-1,1n-44,7-b,5-4,q," +
  "5,1,2,2,30-w,a5-f,1s-1,1i-13,d-2,g-f,4-b,n-1,a,j,4-3,5,3r-3,5a-2,6-1,6-1,6-1,3-2,7,7-ls,v,4-b,r-50,12-1," +
  "12-148h,6u-9,13-2,21-7,2r-f5,2d,1z,2-1,1-1,2-1,4,c,1,4,2,1t,4-1,8,7,s,4,5,1-2,7,9e-3,82-3,1e-7wf,wyf-g14," +
  "f2-jp41",
);
const RAND_AL_CAT = ranges(
  "14u,1,2,c-q,5-4,12,3,1-p,5-a,y-2,1-2s,7,7-1,j-4,1-d,2,1-q,2b-11,b,4t9,179p,1-9,1-c,1-4,1,1-1,1-1,1-2z," +
  "x-a2,i-1r,2-1h,14-c,37-4,1-3q",
);
const L_CAT = ranges(
  "1t-p,6-p,1b,a,4,5-m,1-u,1-88,1-h,s-2l,2-8,2-6,e-1,e-4,9,3v,b,1-2,1,1-j,1-17,1-11,a-3m,7-1w,1-11,2-1,6-f," +
  "x-11,2-6,1-12,1,op,1-1g,3-3,8-3,3,7-9,2-c,h-1,1-7,2-1,2-l,1-6,1,3-3,4-2,6-1,2-1,a,4-1,1-2,4-b,2-6,a-5," +
  "4-1,2-l,1-6,1-1,1-1,1-1,4-2,o-3,1,7-9,2-2,e,1-6,1,1-2,1-l,1-6,1-1,1-4,3-3,8,1-1,3,f,5-9,i-1,1-7,2-1,2-l," +
  "1-6,1-1,2-3,3-1,1,6-1,2-1,a,4-1,1-2,4-a,i,1-5,3-2,1-3,3-1,1,1-1,3-1,3-2,3-7,1-2,4-1,1-1,3-2,1-2,a,f-b," +
  "e-2,1-7,1-2,1-m,1-9,1-4,7-3,r-1,4-9,i-1,1-7,1-2,1-m,1-9,1-4,4,1-4,2-1,1-1,9-1,7,1-1,4-9,i-1,1-7,1-2,1-m," +
  "1-f,4-2,5-2,1-2,a,8-1,4-9,i-1,1-h,3-n,1-8,1,2-6,8-2,6-7,i-2,c-1b,1-1,c-6,8-c,11-1,1,2-1,1,2,6-3,1-6,1-2," +
  "1,1,2-1,1-3,1-1,9,2-4,1,9-9,2-1,y-n,2-q,1,1,5-9,1-x,k,5,2-3,1e-7,1-5,2,1c-x,1-4,1-1,1,4,6,7-n,20-11,a-14," +
  "2,4-2h,5-1v,5-29,6-6,1-1q,1,1-3,2-6,1,1-3,2-12,1,1-3,2-u,1,1-3,2-6,1,1-3,2-6,1-6,1-m,1-u,1,1-3,2-6,1-12," +
  "1-i,6-r,z-2c,c-hh,a-p,5-28,f-c,1-3,e-h,3-1,9-h,e-c,1-2,f-1i,7-7,1-1,b-6,1,3-9,12-9,6-2f,8-14,11z-4b,4-2h," +
  "6-l,2-5,2-11,2-5,2-7,1,1,1,1-u,2-1g,1-6,1,3-2,1-6,3-3,2-5,4-c,5-2,1-6,h,2q,d,3m,4,2-9,1,3-4,6,1,1,1-3," +
  "1-2,1-6,3-2,5-4,m-z,c2-1w,q,7a-25,26z-2,p-8,7-4,2-4,4-2d,6-2,1-2h,1-3,5-13,4-2l,1-13,1k-18,3-z,s-r,3-1d," +
  "f-b,4-1a,1-3a,4-2q,2-u,1-52t,22-g4l,2i-wc,1gz-8mb,1ng-565,2-1m,45-6,c-4,sp-p,6-p,b-2g,3-5,2-5,2-5,2-2," +
  "mb-u,1-3,c-q,51-11,2-11,148i-6t,a-12,3-1o,3-8,g-1,7-t,4-1b,f6-2c,1-1y,1-1,2,2-1,2-3,1-b,1,1-3,1-1,1-1s," +
  "1-3,2-7,1-6,1-r,1-3,1-4,1,3-6,1-9d,4-81,7xy-wye,g15-f1,gvz6-1ekd,2-1ekd",
);

/**
 * The password as SCRAM hashes it, or null where PostgreSQL's SASLprep fails; PostgreSQL then hashes the raw
 * password, so callers do too (see preparedPassword). What counts is matching PostgreSQL's verifiers, checked
 * against a live server, so this follows PostgreSQL where it strays from RFC 3454's order of steps.
 */
export function saslPrep(password: string): string | null {
  // PostgreSQL leaves pure ASCII untouched, control characters included, so such passwords must not fail here.
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  // PostgreSQL sees bytes: a lone surrogate is the invalid UTF-8 it refuses to prepare.
  if (!password.isWellFormed()) return null;
  const mapped: number[] = [];
  let mappedText = "";
  for (const ch of password) {
    const c = ch.codePointAt(0)!;
    if (inRanges(NON_ASCII_SPACE, c)) {
      mapped.push(0x20);
      mappedText += " ";
    } else if (!inRanges(MAPPED_TO_NOTHING, c)) {
      mapped.push(c);
      mappedText += ch;
    }
  }
  const first = mapped[0];
  const last = mapped.at(-1);
  if (first === undefined || last === undefined) return null;
  // PostgreSQL checks prohibited code points and bidi rules before normalising, not after: "x\u0340" fails
  // there although NFKC would turn U+0340 into the allowed U+0300.
  let randAL = false;
  let l = false;
  for (const c of mapped) {
    if (inRanges(PROHIBITED, c)) return null;
    if (inRanges(RAND_AL_CAT, c)) randAL = true;
    else if (inRanges(L_CAT, c)) l = true;
  }
  if (randAL && (l || !inRanges(RAND_AL_CAT, first) || !inRanges(RAND_AL_CAT, last))) return null;
  return mappedText.normalize("NFKC");
}

const preparedPassword = (password: string) => saslPrep(password) ?? password;

// ---- SaltedPassword ----

/**
 * PBKDF2 at 4096 iterations costs milliseconds of a single-threaded pooler; a pooler reconnecting to the
 * same server sees the same salt and count every time. Least recently used entries go first.
 */
const SALTED_CACHE_SIZE = 256;
const saltedCache = new Map<string, Buffer>();

function computeSaltedPassword(password: string, salt: Uint8Array, iterations: number): Buffer {
  return pbkdf2Sync(preparedPassword(password), salt, iterations, KEY_LENGTH, "sha256");
}

function saltedPassword(password: string, salt: Uint8Array, iterations: number): Buffer {
  // Base64 and the decimal count hold no ':', so the key cannot be ambiguous.
  const key = `${iterations}:${b64(salt)}:${password}`;
  let salted = saltedCache.get(key);
  if (salted !== undefined) {
    saltedCache.delete(key);
  } else {
    salted = computeSaltedPassword(password, salt, iterations);
    if (saltedCache.size >= SALTED_CACHE_SIZE) {
      for (const oldest of saltedCache.keys()) {
        saltedCache.delete(oldest);
        break;
      }
    }
  }
  saltedCache.set(key, salted);
  return salted;
}

// ---- Stored verifiers ----

/**
 * True for anything that claims to be a verifier, valid or not: such a secret must never be mistaken for a
 * plain-text password. parseScramVerifier says whether it is usable.
 */
export function isScramVerifier(s: string): boolean {
  return s.startsWith(PREFIX);
}

/** "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", the form PostgreSQL keeps in pg_authid. */
export function parseScramVerifier(s: string): ScramVerifier | null {
  if (!s.startsWith(PREFIX)) return null;
  const [params, keys, ...rest] = s.slice(PREFIX.length).split("$");
  if (params === undefined || keys === undefined || rest.length > 0) return null;
  const [iter, saltText, ...more] = params.split(":");
  const [storedText, serverText, ...extra] = keys.split(":");
  if (more.length > 0 || extra.length > 0) return null;
  const iterations = parseIterations(iter);
  const salt = unb64(saltText ?? "");
  const storedKey = unb64(storedText ?? "");
  const serverKey = unb64(serverText ?? "");
  if (iterations === null || salt === null || salt.length === 0) return null;
  if (storedKey?.length !== KEY_LENGTH || serverKey?.length !== KEY_LENGTH) return null;
  return { iterations, salt, storedKey, serverKey };
}

export function formatScramVerifier(v: ScramVerifier): string {
  return `${PREFIX}${v.iterations}:${b64(v.salt)}$${b64(v.storedKey)}:${b64(v.serverKey)}`;
}

/**
 * The verifier PostgreSQL would store for this password. Each call runs PBKDF2 and bypasses the SaltedPassword
 * cache, which is kept for logging into servers: the pooler computes one verifier per plain-text password once
 * and keeps it, and passwords clients try against a stored verifier should neither be kept nor evict entries.
 */
export function scramVerifierFromPassword(
  password: string,
  salt: Uint8Array = randomBytes(DEFAULT_SALT_LENGTH),
  iterations = DEFAULT_ITERATIONS,
): ScramVerifier {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new ScramError(`SCRAM iteration count must be between 1 and ${MAX_ITERATIONS}, not ${iterations}`);
  }
  const salted = computeSaltedPassword(password, salt, iterations);
  return {
    iterations,
    salt: new Uint8Array(salt),
    storedKey: new Uint8Array(sha256(hmac(salted, "Client Key"))),
    serverKey: new Uint8Array(hmac(salted, "Server Key")),
  };
}

// ---- The exchanges ----

/** saslname escaping (RFC 5802 5.1): ',' and '=' may not appear raw in an attribute value. */
const saslName = (user: string) => user.replaceAll("=", "=3D").replaceAll(",", "=2C");

type ServerState = "awaiting-first" | "awaiting-final" | "done" | "failed";

/** pgbun authenticating a client against a stored verifier. Problems are returned, never thrown. */
export class ScramServerExchange {
  private state: ServerState = "awaiting-first";
  private gs2Header = "";
  /**
   * The tls-server-end-point data (RFC 5929) of the TLS connection this login runs over, when pgbun offers
   * SCRAM-SHA-256-PLUS there; null over plain text, where PLUS is never offered.
   */
  channelBinding: Uint8Array | null = null;
  /** What c= must carry after the gs2 header: the channel binding data when the client chose PLUS. */
  private boundTo: Uint8Array | null = null;
  private nonce = "";
  private clientFirstBare = "";
  private serverFirstMessage = "";
  /** Recovered from the client's proof once it is verified: with the verifier it logs in to a server holding the same one. */
  clientKey: Uint8Array | null = null;

  /** `serverNonce` is the server's half of the nonce, fixed only by tests. */
  constructor(
    private readonly verifier: ScramVerifier,
    private readonly serverNonce: string = randomNonce(),
  ) {
    if (!NONCE.test(serverNonce)) throw new ScramError("a SCRAM nonce must be printable ASCII without commas");
    // Checked here so that a bad key fails at setup, not as a RangeError thrown at a client's proof.
    if (verifier.storedKey.length !== KEY_LENGTH || verifier.serverKey.length !== KEY_LENGTH) {
      throw new ScramError("a SCRAM-SHA-256 verifier holds 32-byte keys");
    }
  }

  get ok(): boolean {
    return this.state === "done";
  }

  /** Answers client-first-message ("n,,n=,r=<nonce>") with server-first-message ("r=...,s=...,i=..."). */
  clientFirst(message: string, mechanism = "SCRAM-SHA-256"): ScramReply {
    if (this.state !== "awaiting-first") return this.fail("unexpected SCRAM client-first-message");
    const plus = mechanism === "SCRAM-SHA-256-PLUS";
    if (plus && this.channelBinding === null) return this.fail("SCRAM-SHA-256-PLUS was not offered: channel binding needs TLS");
    if (message.startsWith("p=")) {
      if (this.channelBinding === null) {
        return this.fail("the client requires SCRAM channel binding (SCRAM-SHA-256-PLUS), which pgbun offers only over TLS");
      }
      if (!plus) return this.fail("the client asks for channel binding but chose SCRAM-SHA-256, not SCRAM-SHA-256-PLUS");
      if (!message.startsWith("p=tls-server-end-point,")) return this.fail("unsupported SCRAM channel binding type; pgbun supports tls-server-end-point");
    } else if (plus) {
      return this.fail("the client chose SCRAM-SHA-256-PLUS without channel binding");
    } else if (message.startsWith("y,") && this.channelBinding !== null) {
      // "y": the client could bind but believes we cannot. We offered PLUS, so someone removed it on the way.
      return this.fail("SCRAM channel binding negotiation error: the client thinks pgbun does not offer channel binding, but it was offered");
    } else if (!(message.startsWith("n,") || message.startsWith("y,"))) {
      return this.fail("malformed SCRAM gs2 header");
    }
    const flagEnd = message.indexOf(",");
    const headerEnd = message.indexOf(",", flagEnd + 1);
    if (headerEnd < 0) return this.fail("malformed SCRAM gs2 header");
    // PostgreSQL takes the role from the startup packet and has nothing to do with another identity.
    if (headerEnd !== flagEnd + 1) return this.fail("SCRAM authorization identities are not supported");
    this.boundTo = plus ? this.channelBinding : null;
    const bare = message.slice(headerEnd + 1);
    const [user, nonce] = bare.split(",");
    if (user?.startsWith("m=")) return this.fail("the client requires an unsupported SCRAM extension");
    // The name is read and ignored, as PostgreSQL does: libpq sends "n=" and the role is already known.
    if (!user?.startsWith("n=")) return this.fail("malformed SCRAM client-first-message: no username attribute");
    const clientNonce = nonce?.startsWith("r=") ? nonce.slice(2) : "";
    if (!NONCE.test(clientNonce)) return this.fail("malformed SCRAM client-first-message: no valid client nonce");
    this.gs2Header = message.slice(0, headerEnd + 1);
    this.clientFirstBare = bare;
    this.nonce = clientNonce + this.serverNonce;
    this.serverFirstMessage = `r=${this.nonce},s=${b64(this.verifier.salt)},i=${this.verifier.iterations}`;
    this.state = "awaiting-final";
    return { reply: this.serverFirstMessage };
  }

  /** Checks client-final-message ("c=biws,r=<nonce>,p=<proof>") and answers with server-final-message ("v=..."). */
  clientFinal(message: string): ScramReply {
    if (this.state !== "awaiting-final") return this.fail("unexpected SCRAM client-final-message");
    // Attribute values cannot hold a comma, so the last ",p=" is the proof and nothing can follow it.
    const proofAt = message.lastIndexOf(",p=");
    if (proofAt < 0) return this.fail("malformed SCRAM client-final-message: no proof");
    const withoutProof = message.slice(0, proofAt);
    const [binding, nonce] = withoutProof.split(",");
    if (!binding?.startsWith("c=")) return this.fail("malformed SCRAM client-final-message: no channel binding attribute");
    // Without binding, c= repeats the gs2 header; a different one means the header was tampered with.
    const header = Buffer.from(this.gs2Header);
    if (binding !== `c=${b64(this.boundTo === null ? header : Buffer.concat([header, this.boundTo]))}`) {
      return this.fail("SCRAM channel binding does not match the gs2 header");
    }
    if (nonce !== `r=${this.nonce}`) return this.fail("SCRAM nonce mismatch");
    const proof = unb64(message.slice(proofAt + 3));
    if (proof?.length !== KEY_LENGTH) return this.fail("malformed SCRAM client proof");
    const authMessage = `${this.clientFirstBare},${this.serverFirstMessage},${withoutProof}`;
    const clientKey = xor(proof, hmac(this.verifier.storedKey, authMessage));
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) return this.fail("wrong password");
    this.clientKey = clientKey;
    this.state = "done";
    return { reply: `v=${b64(hmac(this.verifier.serverKey, authMessage))}` };
  }

  private fail(error: string): ScramReply {
    this.state = "failed";
    return { error };
  }
}

type ClientState = "initial" | "awaiting-server-first" | "awaiting-server-final" | "done" | "failed";

/**
 * The client's gs2 flag: "n" (no TLS), "y" (TLS, but the server offered no SCRAM-SHA-256-PLUS), or the server's
 * tls-server-end-point data to bind to with SCRAM-SHA-256-PLUS.
 */
export type ClientChannelBinding = "n" | "y" | Uint8Array;

/**
 * What a stored verifier plus a client's proven proof give: enough to log in to a server that stores the same verifier
 * (same salt and iteration count), without the password.
 */
export interface ScramClientKeys {
  clientKey: Uint8Array;
  serverKey: Uint8Array;
  salt: Uint8Array;
  iterations: number;
}

/** pgbun logging into PostgreSQL with a plain-text password. Problems throw ScramError. */
export class ScramClientExchange {
  private state: ClientState = "initial";
  private readonly clientFirstBare: string;
  /** The gs2 header and channel binding data that c= repeats. */
  private bindingInput = Buffer.from("n,,");
  private serverSignature: Uint8Array | null = null;

  /**
   * `clientNonce` is fixed only by tests. `user` stays empty as in libpq: PostgreSQL ignores it and takes the
   * role from the startup packet; tests set it to replay RFC 7677, whose example names "user".
   */
  constructor(
    private readonly password: string | ScramClientKeys,
    private readonly clientNonce: string = randomNonce(),
    user = "",
  ) {
    if (!NONCE.test(clientNonce)) throw new ScramError("a SCRAM nonce must be printable ASCII without commas");
    this.clientFirstBare = `n=${saslName(user)},r=${clientNonce}`;
  }

  /** client-first-message, without channel binding: "n,,n=,r=<nonce>". */
  clientFirst(binding: ClientChannelBinding = "n"): string {
    this.expect("initial", "client-first-message already sent");
    this.state = "awaiting-server-first";
    const header = typeof binding === "string" ? `${binding},,` : "p=tls-server-end-point,,";
    this.bindingInput = typeof binding === "string" ? Buffer.from(header) : Buffer.concat([Buffer.from(header), binding]);
    return `${header}${this.clientFirstBare}`;
  }

  /** Takes server-first-message ("r=...,s=...,i=...") and returns client-final-message. */
  serverFirst(message: string): string {
    this.expect("awaiting-server-first", "unexpected SCRAM server-first-message");
    const [nonceAttr, saltAttr, iterAttr] = message.split(",");
    if (nonceAttr?.startsWith("m=")) throw this.fail("the server requires an unsupported SCRAM extension");
    const nonce = nonceAttr?.startsWith("r=") ? nonceAttr.slice(2) : "";
    const salt = saltAttr?.startsWith("s=") ? unb64(saltAttr.slice(2)) : null;
    const iterations = iterAttr?.startsWith("i=") ? parseIterations(iterAttr.slice(2)) : null;
    if (!NONCE.test(nonce) || salt === null || salt.length === 0 || iterations === null) {
      throw this.fail(`malformed SCRAM server-first-message: ${JSON.stringify(message)}`);
    }
    // The server must add its own part: a nonce that is only ours would let a recorded exchange be replayed.
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw this.fail("the SCRAM server nonce does not extend ours");
    }
    const keys = typeof this.password === "string" ? null : this.password;
    if (keys !== null && (keys.iterations !== iterations || !Buffer.from(keys.salt).equals(Buffer.from(salt)))) {
      throw this.fail(
        "the server's SCRAM secret for this user is not the one pgbun has (another salt or iteration count): " +
          "put the same SCRAM secret in pgbun as in pg_authid, or the plain password",
      );
    }
    const salted = keys === null ? saltedPassword(this.password as string, salt, iterations) : null;
    const clientKey = keys?.clientKey ?? hmac(salted!, "Client Key");
    const serverKey = keys?.serverKey ?? hmac(salted!, "Server Key");
    const withoutProof = `c=${b64(this.bindingInput)},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${message},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.serverSignature = hmac(serverKey, authMessage);
    this.state = "awaiting-server-final";
    return `${withoutProof},p=${b64(proof)}`;
  }

  /** Takes server-final-message; only a matching "v=" proves the server knew the password too. */
  serverFinal(message: string): void {
    this.expect("awaiting-server-final", "unexpected SCRAM server-final-message");
    const [first] = message.split(",");
    if (first?.startsWith("e=")) throw this.fail(`the server rejected SCRAM authentication: ${first.slice(2)}`);
    const signature = first?.startsWith("v=") ? unb64(first.slice(2)) : null;
    if (signature === null) throw this.fail(`malformed SCRAM server-final-message: ${JSON.stringify(message)}`);
    const want = this.serverSignature!;
    if (signature.length !== want.length || !timingSafeEqual(signature, want)) {
      throw this.fail("the SCRAM server signature does not match: the server does not know the password");
    }
    this.state = "done";
  }

  private expect(state: ClientState, problem: string): void {
    if (this.state !== state) throw this.fail(problem);
  }

  private fail(message: string): ScramError {
    this.state = "failed";
    return new ScramError(message);
  }
}
