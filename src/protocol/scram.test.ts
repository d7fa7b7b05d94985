import { expect, test } from "bun:test";
import { md5PasswordHash, md5Response, verifyMd5Response } from "./md5.ts";
import { formatScramVerifier, parseScramVerifier, ScramClientExchange, ScramServerExchange, scramVerifierFromPassword } from "./scram.ts";

// RFC 7677's example exchange, user "user", password "pencil".
const SALT = new Uint8Array(Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"));
const CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SERVER_FIRST = `r=${CLIENT_NONCE}${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`;
const PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

test("md5 hashes match PostgreSQL's pg_authid form", () => {
  // printf 'postgrespostgres' | md5sum
  expect(md5PasswordHash("postgres", "postgres")).toBe("md53175bce1d3201d16594cebf9d7eb3f9d");
  const salt = Uint8Array.of(1, 2, 3, 4);
  const fromPlain = md5Response("postgres", "postgres", salt);
  expect(md5Response("postgres", md5PasswordHash("postgres", "postgres"), salt)).toBe(fromPlain);
  expect(verifyMd5Response("postgres", "postgres", salt, fromPlain)).toBe(true);
  expect(verifyMd5Response("postgres", "other", salt, fromPlain)).toBe(false);
});

test("SCRAM client side reproduces RFC 7677's proof and accepts its server signature", () => {
  const c = new ScramClientExchange("pencil", CLIENT_NONCE);
  expect(c.clientFirst()).toBe(`n,,n=,r=${CLIENT_NONCE}`);
  // our client-first-bare carries an empty user name (as libpq does), so the proof differs from the RFC's n=user one
  const rfc = new ScramClientExchange("pencil", CLIENT_NONCE);
  (rfc as unknown as { clientFirstBare: string }).clientFirstBare = `n=user,r=${CLIENT_NONCE}`;
  expect(rfc.serverFirst(SERVER_FIRST)).toBe(`c=biws,r=${CLIENT_NONCE}${SERVER_NONCE},p=${PROOF}`);
  expect(() => rfc.serverFinal(`v=${SERVER_SIGNATURE}`)).not.toThrow();
  expect(() => rfc.serverFinal("v=AAAA")).toThrow("signature mismatch");
});

test("SCRAM server side verifies RFC 7677's client proof", () => {
  const v = scramVerifierFromPassword("pencil", SALT, 4096);
  const s = new ScramServerExchange(v, SERVER_NONCE);
  expect(s.clientFirst(`n,,n=user,r=${CLIENT_NONCE}`)).toEqual({ reply: SERVER_FIRST });
  expect(s.clientFinal(`c=biws,r=${CLIENT_NONCE}${SERVER_NONCE},p=${PROOF}`)).toEqual({ reply: `v=${SERVER_SIGNATURE}` });
  expect(s.ok).toBe(true);
});

test("a round trip succeeds with the right password and fails with a wrong one; malformed input is an error, not a throw", () => {
  const v = scramVerifierFromPassword("right");
  for (const [pw, ok] of [
    ["right", true],
    ["wrong", false],
  ] as const) {
    const c = new ScramClientExchange(pw);
    const s = new ScramServerExchange(v);
    const first = s.clientFirst(c.clientFirst());
    if (!("reply" in first)) throw new Error("no reply");
    const final = s.clientFinal(c.serverFirst(first.reply));
    expect("reply" in final).toBe(ok);
  }
  const s = new ScramServerExchange(v);
  expect("error" in s.clientFirst("garbage")).toBe(true);
  expect("error" in s.clientFirst("p=tls-server-end-point,,n=,r=abc")).toBe(true);
  expect("error" in s.clientFinal("c=biws")).toBe(true);
});

test("verifiers round-trip through PostgreSQL's text form", () => {
  const v = scramVerifierFromPassword("pw", SALT, 4096);
  const text = formatScramVerifier(v);
  expect(text).toStartWith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$");
  expect(parseScramVerifier(text)).toEqual(v);
  expect(parseScramVerifier("SCRAM-SHA-256$x")).toBeNull();
});
