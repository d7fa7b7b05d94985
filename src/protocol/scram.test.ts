// SCRAM-SHA-256 against RFC 7677's example, PostgreSQL 15's own verifiers, and malformed peers on both sides.

import { describe, expect, test } from "bun:test";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import {
  formatScramVerifier,
  isScramVerifier,
  parseScramVerifier,
  saslPrep,
  ScramClientExchange,
  ScramError,
  ScramServerExchange,
  scramVerifierFromPassword,
  type ScramReply,
} from "./scram.ts";

// RFC 7677 section 3: user "user", password "pencil".
const SALT_B64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
const SALT = new Uint8Array(Buffer.from(SALT_B64, "base64"));
const CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const NONCE = CLIENT_NONCE + SERVER_NONCE;
const CLIENT_FIRST = `n,,n=user,r=${CLIENT_NONCE}`;
const SERVER_FIRST = `r=${NONCE},s=${SALT_B64},i=4096`;
const PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const CLIENT_FINAL = `c=biws,r=${NONCE},p=${PROOF}`;
const SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/**
 * Verifiers PostgreSQL 15.18 stored for these passwords (CREATE ROLE ... PASSWORD U&'...', then SELECT
 * rolpassword). The non-ASCII ones pin down SASLprep, including where PostgreSQL falls back to the raw password.
 */
const POSTGRES_VERIFIERS: [string, string, string][] = [
  ["ascii", "pencil", "SCRAM-SHA-256$4096:nTxnE1Bd380DkmhG/tjN8Q==$F5QJQSFq3cPTzyhNlyEAIxGJUfhLSen6clTNNZeCMzA=:Z0SELKZUpvsxAH2EvrdVIcm8HSrbBEHri+puewBRmuw="],
  ["fullwidth letters, NFKC to ASCII", "\uff30\uff21\uff33\uff33", "SCRAM-SHA-256$4096:9RPt+kj0L4wrQItmYjOnbw==$WSAzIDQSMyGMz0rZMTthkRfr0nlKaRr2lwgL5e243vI=:siaSIaVuhSobYrsG4DNpYBrI7ws3y7kf/uIRbczjVqo="],
  ["zero width space, mapped to a space", "a\u200bb", "SCRAM-SHA-256$4096:aJw+sIf5DXxG7BQP6qUnnQ==$3BSc5w26+xNfMWJ5oS65L3g5k448W/IBm47Kznq0vfA=:rCSWDa0uLyeHPw1XD5n0PXGA2lQ1iH2u1f/r/ilvHHA="],
  ["only a soft hyphen, which maps to nothing: raw", "\u00ad", "SCRAM-SHA-256$4096:foLX6o1Vm7H6x3gPoIljug==$ClxYcDJmDQbYR8KdcUz0l9C0BBYtH0yAFmi08Y7cPhc=:Iip2Ydg5vP7NEBpVtf5eYvjyy0kVoeBpIBwxYxOTiyo="],
  ["right-to-left around a left-to-right letter: raw", "\u0627\uff58\u0628", "SCRAM-SHA-256$4096:m6O2mhxH1PA1i2bYiuCBEQ==$hM6xLB+C3AL96IPWITJIP3h4sF2OteOMNhPKS//l2eo=:XpLEHWPgh0Kon0llNajgQBRtVVBHpjFQQMOasB+ERNY="],
  ["right-to-left around a fullwidth digit", "\u0627\uff11\u0628", "SCRAM-SHA-256$4096:s812mq1JavR3D/zDfI4Q3g==$n5pjBiF629Vi4xZ8cq55rDM0BR2kfIjSKiDWf4i+1gY=:7GaVIXYF0FtEuhZzYGur4vOVNJTyfF8GVSj4n6MU458="],
  ["U+0340, prohibited before NFKC makes it U+0300: raw", "\uff58\u0340", "SCRAM-SHA-256$4096:9jPfBLniUrNfHyHw17Wtdw==$IZN/AVZld8ZzSsOmi1fAgfu+pyIZmPdJflviPm2HZos=:oYOXu7YR9cH2SOFcICslPU9bq8zUTTfBITEw1/CFqKk="],
  ["bidi checked before NFKC turns U+2100 into a/c", "\u0627\u2100\u0628", "SCRAM-SHA-256$4096:LAVUDgjs8hl/ijwWtXFi/g==$2PURaqPM1zTIRdszKfdNVCBE3rIRhqZAepuu3d/YRzg=:aolBu2pIF6uwbeprAreYzl6GY4wlPGxSFg1R/drlf5U="],
];

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** RFC 5802's client proof, computed here independently of scram.ts. */
function clientProof(password: string, salt: Uint8Array, iterations: number, authMessage: string): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const signature = createHmac("sha256", storedKey).update(authMessage).digest();
  return b64(clientKey.map((byte, i) => byte ^ signature[i]!));
}

function reply(r: ScramReply): string {
  if ("error" in r) throw new Error(`unexpected SCRAM error: ${r.error}`);
  return r.reply;
}

function errorOf(r: ScramReply): string {
  if ("reply" in r) throw new Error(`expected an error, got ${r.reply}`);
  return r.error;
}

function scramErrorFrom(f: () => unknown): ScramError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ScramError);
    expect((e as ScramError).code).toBe("SCRAM_ERROR");
    return e as ScramError;
  }
  throw new Error("expected a ScramError");
}

/** A server exchange that has answered a client-first-message, with what that client must send next. */
function serverAfterFirst(password = "pencil", header = "n,,") {
  const s = new ScramServerExchange(scramVerifierFromPassword(password, SALT, 4096), SERVER_NONCE);
  const bare = `n=,r=${CLIENT_NONCE}`;
  const serverFirst = reply(s.clientFirst(header + bare));
  const withoutProof = `c=${b64(Buffer.from(header))},r=${NONCE}`;
  const proof = clientProof(password, SALT, 4096, `${bare},${serverFirst},${withoutProof}`);
  return { s, withoutProof, final: `${withoutProof},p=${proof}` };
}

describe("RFC 7677's example exchange", () => {
  test("the client side produces its proof and accepts its server signature", () => {
    const c = new ScramClientExchange("pencil", CLIENT_NONCE, "user");
    expect(c.clientFirst()).toBe(CLIENT_FIRST);
    expect(c.serverFirst(SERVER_FIRST)).toBe(CLIENT_FINAL);
    expect(() => c.serverFinal(`v=${SERVER_SIGNATURE}`)).not.toThrow();
  });

  test("the server side accepts its proof and answers with its server signature", () => {
    const s = new ScramServerExchange(scramVerifierFromPassword("pencil", SALT, 4096), SERVER_NONCE);
    expect(s.clientFirst(CLIENT_FIRST)).toEqual({ reply: SERVER_FIRST });
    expect(s.ok).toBe(false);
    expect(s.clientFinal(CLIENT_FINAL)).toEqual({ reply: `v=${SERVER_SIGNATURE}` });
    expect(s.ok).toBe(true);
  });

  test("the independent proof helper agrees with the RFC", () => {
    const authMessage = `n=user,r=${CLIENT_NONCE},${SERVER_FIRST},c=biws,r=${NONCE}`;
    expect(clientProof("pencil", SALT, 4096, authMessage)).toBe(PROOF);
  });
});

describe("a full exchange between pgbun's two sides", () => {
  test("succeeds with the right password and proves the server to the client", () => {
    const s = new ScramServerExchange(scramVerifierFromPassword("right"));
    const c = new ScramClientExchange("right");
    const first = c.clientFirst();
    expect(first).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
    const final = c.serverFirst(reply(s.clientFirst(first)));
    c.serverFinal(reply(s.clientFinal(final)));
    expect(s.ok).toBe(true);
  });

  test("fails with a wrong password, as an error and not an exception", () => {
    const s = new ScramServerExchange(scramVerifierFromPassword("right"));
    const c = new ScramClientExchange("wrong");
    const final = c.serverFirst(reply(s.clientFirst(c.clientFirst())));
    expect(errorOf(s.clientFinal(final))).toBe("wrong password");
    expect(s.ok).toBe(false);
  });

  test("works against a verifier PostgreSQL stored", () => {
    const v = parseScramVerifier(POSTGRES_VERIFIERS[0]![2])!;
    const s = new ScramServerExchange(v);
    const c = new ScramClientExchange("pencil");
    c.serverFinal(reply(s.clientFinal(c.serverFirst(reply(s.clientFirst(c.clientFirst()))))));
    expect(s.ok).toBe(true);
  });

  test("uses a fresh nonce every time", () => {
    expect(new ScramClientExchange("x").clientFirst()).not.toBe(new ScramClientExchange("x").clientFirst());
    const v = scramVerifierFromPassword("x");
    const first = `n,,n=,r=${CLIENT_NONCE}`;
    expect(new ScramServerExchange(v).clientFirst(first)).not.toEqual(new ScramServerExchange(v).clientFirst(first));
  });
});

describe("the server side", () => {
  test("accepts a gs2 header of y when the client binds nothing", () => {
    const { s, final } = serverAfterFirst("pencil", "y,,");
    expect(final).toStartWith("c=eSws,");
    expect("reply" in s.clientFinal(final)).toBe(true);
    expect(s.ok).toBe(true);
  });

  test("rejects a c= attribute that does not repeat the gs2 header", () => {
    const { s, final } = serverAfterFirst("pencil", "y,,");
    expect(errorOf(s.clientFinal(final.replace("c=eSws", "c=biws")))).toContain("channel binding");
  });

  test("explains that channel binding is not offered", () => {
    const s = new ScramServerExchange(scramVerifierFromPassword("x"));
    expect(errorOf(s.clientFirst(`p=tls-server-end-point,,n=,r=${CLIENT_NONCE}`))).toContain("SCRAM-SHA-256-PLUS");
  });

  test("reports malformed client-first-messages as errors", () => {
    const bad: [string, string][] = [
      ["", "gs2 header"],
      ["garbage", "gs2 header"],
      ["x,,n=,r=abc", "gs2 header"],
      ["n", "gs2 header"],
      ["n,", "gs2 header"],
      ["n,a=admin,n=,r=abc", "authorization"],
      ["n,,m=ext,n=,r=abc", "extension"],
      ["n,,r=abc", "username"],
      ["n,,", "username"],
      ["n,,n=", "nonce"],
      ["n,,n=,r=", "nonce"],
      ["n,,n=,s=abc", "nonce"],
      ["n,,n=,r=ab\u0001c", "nonce"],
      ["n,,n=,r=ab c", "nonce"],
    ];
    for (const [message, problem] of bad) {
      const s = new ScramServerExchange(scramVerifierFromPassword("x", SALT, 1));
      expect(errorOf(s.clientFirst(message))).toContain(problem);
      expect(s.ok).toBe(false);
    }
  });

  test("accepts a client-first-message that names a user or carries extensions", () => {
    const s = new ScramServerExchange(scramVerifierFromPassword("x", SALT, 1), SERVER_NONCE);
    expect(reply(s.clientFirst(`n,,n=some=2Cone,r=${CLIENT_NONCE},x=ext`))).toBe(`r=${NONCE},s=${SALT_B64},i=1`);
  });

  test("reports malformed client-final-messages as errors", () => {
    const { withoutProof, final } = serverAfterFirst();
    const bad: [string, string][] = [
      ["", "no proof"],
      [withoutProof, "no proof"],
      [`r=${NONCE},p=AAAA`, "channel binding"],
      [`c=biws,r=${CLIENT_NONCE},p=${PROOF}`, "nonce"],
      [`c=biws,r=${NONCE}x,p=${PROOF}`, "nonce"],
      [`c=biws,p=${PROOF}`, "nonce"],
      [`${withoutProof},p=!!!!`, "proof"],
      [`${withoutProof},p=AAAA`, "proof"],
      [`${withoutProof},p=${PROOF}`, "wrong password"],
      [`${final}x`, "proof"],
    ];
    for (const [message, problem] of bad) {
      const { s } = serverAfterFirst();
      expect(errorOf(s.clientFinal(message))).toContain(problem);
      expect(s.ok).toBe(false);
    }
  });

  test("refuses messages out of order and anything after a failure", () => {
    const s = new ScramServerExchange(scramVerifierFromPassword("x"));
    expect(errorOf(s.clientFinal(CLIENT_FINAL))).toContain("unexpected");
    const again = serverAfterFirst();
    expect(errorOf(again.s.clientFirst(CLIENT_FIRST))).toContain("unexpected");
    expect(errorOf(again.s.clientFinal(again.final))).toContain("unexpected");
    expect(again.s.ok).toBe(false);
    const done = serverAfterFirst();
    reply(done.s.clientFinal(done.final));
    expect(errorOf(done.s.clientFinal(done.final))).toContain("unexpected");
    expect(done.s.ok).toBe(false);
  });

  test("refuses a nonce that could not travel in an attribute, and keys of the wrong size", () => {
    expect(() => new ScramServerExchange(scramVerifierFromPassword("x"), "a,b")).toThrow(ScramError);
    const v = scramVerifierFromPassword("x");
    expect(() => new ScramServerExchange({ ...v, storedKey: v.storedKey.slice(1) })).toThrow(ScramError);
  });
});

describe("the client side", () => {
  const afterClientFirst = (c: ScramClientExchange) => {
    c.clientFirst();
    return c;
  };

  test("throws ScramError on malformed server-first-messages", () => {
    const bad: [string, string][] = [
      ["", "malformed"],
      ["garbage", "malformed"],
      [`m=ext,r=${NONCE},s=${SALT_B64},i=4096`, "extension"],
      [`r=${NONCE},s=${SALT_B64}`, "malformed"],
      [`r=${NONCE},i=4096,s=${SALT_B64}`, "malformed"],
      [`r=${NONCE},s=,i=4096`, "malformed"],
      [`r=${NONCE},s=not*base64,i=4096`, "malformed"],
      [`r=${NONCE},s=${SALT_B64},i=0`, "malformed"],
      [`r=${NONCE},s=${SALT_B64},i=-1`, "malformed"],
      [`r=${NONCE},s=${SALT_B64},i=4k`, "malformed"],
      [`r=${NONCE},s=${SALT_B64},i=2147483648`, "malformed"],
      [`r=${SERVER_NONCE},s=${SALT_B64},i=4096`, "does not extend ours"],
      [`r=${CLIENT_NONCE},s=${SALT_B64},i=4096`, "does not extend ours"],
      [`r=x${NONCE},s=${SALT_B64},i=4096`, "does not extend ours"],
    ];
    for (const [message, problem] of bad) {
      const c = afterClientFirst(new ScramClientExchange("pencil", CLIENT_NONCE));
      expect(scramErrorFrom(() => c.serverFirst(message)).message).toContain(problem);
    }
  });

  test("throws ScramError unless the server signature matches", () => {
    const bad: [string, string][] = [
      ["v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=", "does not match"],
      ["v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", "malformed"], // same bytes, non-canonical padding bits
      ["v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", "malformed"],
      ["v=AAAA", "does not match"],
      ["v=", "does not match"],
      ["v=%%%", "malformed"],
      ["", "malformed"],
      ["e=invalid-proof", "invalid-proof"],
    ];
    for (const [message, problem] of bad) {
      const c = afterClientFirst(new ScramClientExchange("pencil", CLIENT_NONCE, "user"));
      c.serverFirst(SERVER_FIRST);
      expect(scramErrorFrom(() => c.serverFinal(message)).message).toContain(problem);
    }
  });

  test("throws ScramError on messages out of order", () => {
    const c = new ScramClientExchange("pencil", CLIENT_NONCE, "user");
    expect(scramErrorFrom(() => c.serverFirst(SERVER_FIRST)).message).toContain("unexpected");
    const d = afterClientFirst(new ScramClientExchange("pencil", CLIENT_NONCE, "user"));
    expect(scramErrorFrom(() => d.serverFinal(`v=${SERVER_SIGNATURE}`)).message).toContain("unexpected");
    expect(scramErrorFrom(() => d.clientFirst()).message).toContain("already sent");
  });

  test("refuses a nonce that could not travel in an attribute", () => {
    expect(() => new ScramClientExchange("x", "")).toThrow(ScramError);
    expect(() => new ScramClientExchange("x", "a b")).toThrow(ScramError);
  });

  test("escapes a user name that holds ',' or '='", () => {
    expect(new ScramClientExchange("x", CLIENT_NONCE, "a,b=c").clientFirst()).toBe(`n,,n=a=2Cb=3Dc,r=${CLIENT_NONCE}`);
  });

  test("reuses SaltedPassword for a salt and count it has seen", () => {
    const salt = Uint8Array.of(7, 7, 7, 7, 7, 7, 7, 7);
    const serverFirst = `r=${NONCE},s=${b64(salt)},i=200000`;
    const time = () => {
      const c = new ScramClientExchange("cache me", CLIENT_NONCE);
      c.clientFirst();
      const started = performance.now();
      c.serverFirst(serverFirst);
      return performance.now() - started;
    };
    const cold = time();
    const warm = time();
    expect(warm).toBeLessThan(cold / 4);
  });
});

describe("stored verifiers", () => {
  test("PostgreSQL's verifiers parse, format back unchanged and match the password they were made from", () => {
    for (const [what, password, text] of POSTGRES_VERIFIERS) {
      expect(isScramVerifier(text)).toBe(true);
      const v = parseScramVerifier(text);
      expect(v, what).not.toBeNull();
      expect(formatScramVerifier(v!)).toBe(text);
      expect(scramVerifierFromPassword(password, v!.salt, v!.iterations), what).toEqual(v!);
    }
  });

  test("a fresh verifier has 4096 iterations, a random 16-byte salt, and round-trips", () => {
    const a = scramVerifierFromPassword("pw");
    const b = scramVerifierFromPassword("pw");
    expect(a.iterations).toBe(4096);
    expect(a.salt.length).toBe(16);
    expect(a.storedKey.length).toBe(32);
    expect(a.serverKey.length).toBe(32);
    expect(a.salt).not.toEqual(b.salt);
    expect(parseScramVerifier(formatScramVerifier(a))).toEqual(a);
    expect(formatScramVerifier(scramVerifierFromPassword("pw", SALT, 10))).toStartWith(`SCRAM-SHA-256$10:${SALT_B64}$`);
  });

  test("bad iteration counts are refused", () => {
    for (const n of [0, -1, 1.5, Number.NaN, 2 ** 31]) {
      expect(() => scramVerifierFromPassword("pw", SALT, n)).toThrow(ScramError);
    }
  });

  test("malformed verifiers do not parse", () => {
    const good = POSTGRES_VERIFIERS[0]![2];
    const [, params, keys] = good.split("$") as [string, string, string];
    const [storedKey, serverKey] = keys.split(":") as [string, string];
    for (const bad of [
      "",
      "md53175bce1d3201d16594cebf9d7eb3f9d",
      good.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
      good.replace("$4096:", "$0:"),
      good.replace("$4096:", "$x:"),
      good.replace("$4096:", "$-1:"),
      good.replace("$4096:", "$:"),
      good + "$",
      good + ":extra",
      `SCRAM-SHA-256$${params}`,
      `SCRAM-SHA-256$4096$${keys}`,
      `SCRAM-SHA-256$4096:$${keys}`,
      `SCRAM-SHA-256$4096:*salt*$${keys}`,
      `SCRAM-SHA-256$${params}$${storedKey}`,
      `SCRAM-SHA-256$${params}$${storedKey}:AAAA`,
      `SCRAM-SHA-256$${params}$${serverKey.slice(4)}:${serverKey}`,
    ]) {
      expect(parseScramVerifier(bad), bad).toBeNull();
    }
  });

  test("isScramVerifier tells a verifier-looking secret from a password, even when it does not parse", () => {
    expect(isScramVerifier("SCRAM-SHA-256$broken")).toBe(true);
    expect(isScramVerifier("md53175bce1d3201d16594cebf9d7eb3f9d")).toBe(false);
    expect(isScramVerifier("pencil")).toBe(false);
  });
});

describe("SASLprep as PostgreSQL applies it", () => {
  test("leaves ASCII alone, control characters included", () => {
    expect(saslPrep("pencil")).toBe("pencil");
    expect(saslPrep("a\u0001b\u007f")).toBe("a\u0001b\u007f");
  });

  test("maps, then normalises with NFKC", () => {
    expect(saslPrep("\uff30\uff21\uff33\uff33")).toBe("PASS");
    expect(saslPrep("a\u00a0b\u3000c")).toBe("a b c");
    expect(saslPrep("I\u00adX\u200d")).toBe("IX");
    expect(saslPrep("\ufb01")).toBe("fi");
    expect(saslPrep("e\u0301")).toBe("\u00e9");
    expect(saslPrep("\u0627\u0031\u0628")).toBe("\u0627\u0031\u0628");
  });

  test("fails, so the raw password is used, on what PostgreSQL refuses", () => {
    for (const s of [
      "\u00ad", // nothing left after mapping
      "x\ud800", // a lone surrogate, invalid UTF-8 to PostgreSQL
      "x\ue000", // private use
      "x\u0080", // non-ASCII control
      "x\u0221", // unassigned in Unicode 3.2
      "x\u{1f600}", // likewise
      "x\u0340", // prohibited before normalisation
      "\u0627x\u0628", // right-to-left mixed with left-to-right
      "1\u0627", // right-to-left text must start and end right-to-left
    ]) {
      expect(saslPrep(s), JSON.stringify(s)).toBeNull();
    }
  });
});

describe("channel binding (tls-server-end-point)", () => {
  const DATA = new Uint8Array(createHash("sha256").update("the server's certificate").digest());
  const OTHER = new Uint8Array(createHash("sha256").update("a man in the middle's certificate").digest());

  /** A client binding to `clientData` against a server offering PLUS with `serverData`, through to the end. */
  function exchange(clientData: Uint8Array | "n" | "y", serverData: Uint8Array | null, mechanism: string) {
    const c = new ScramClientExchange("pencil", CLIENT_NONCE);
    const s = new ScramServerExchange(scramVerifierFromPassword("pencil", SALT, 4096), SERVER_NONCE);
    s.channelBinding = serverData;
    const first = c.clientFirst(clientData);
    const serverFirst = s.clientFirst(first, mechanism);
    if ("error" in serverFirst) return { first, error: serverFirst.error };
    const final = c.serverFirst(serverFirst.reply);
    const done = s.clientFinal(final);
    if ("error" in done) return { first, final, error: done.error };
    c.serverFinal(done.reply);
    return { first, final, error: null };
  }

  test("SCRAM-SHA-256-PLUS: the gs2 header names tls-server-end-point and c= carries it with the certificate hash", () => {
    const r = exchange(DATA, DATA, "SCRAM-SHA-256-PLUS");
    expect(r.error).toBeNull();
    expect(r.first).toBe(`p=tls-server-end-point,,n=,r=${CLIENT_NONCE}`);
    expect(r.final).toStartWith(`c=${b64(Buffer.concat([Buffer.from("p=tls-server-end-point,,"), DATA]))},r=`);
  });

  test("a proof bound to another certificate is refused", () => {
    expect(exchange(OTHER, DATA, "SCRAM-SHA-256-PLUS").error).toContain("channel binding");
  });

  test("with PLUS offered, a client that says it could bind but thinks we cannot (y) is refused: a downgrade", () => {
    expect(exchange("y", DATA, "SCRAM-SHA-256").error).toContain("channel binding negotiation error");
    // Without TLS nothing was offered, so y is the truth and the login goes on.
    expect(exchange("y", null, "SCRAM-SHA-256").error).toBeNull();
  });

  test("a client without channel binding (n) still logs in where PLUS is offered", () => {
    expect(exchange("n", DATA, "SCRAM-SHA-256").error).toBeNull();
  });

  test("PLUS is refused where it was not offered, and binding data needs PLUS", () => {
    expect(exchange(DATA, null, "SCRAM-SHA-256-PLUS").error).toContain("not offered");
    expect(exchange(DATA, DATA, "SCRAM-SHA-256").error).toContain("chose SCRAM-SHA-256, not SCRAM-SHA-256-PLUS");
    const s = new ScramServerExchange(scramVerifierFromPassword("pencil", SALT, 4096), SERVER_NONCE);
    s.channelBinding = DATA;
    expect(errorOf(s.clientFirst(`p=tls-unique,,n=,r=${CLIENT_NONCE}`, "SCRAM-SHA-256-PLUS"))).toContain("tls-server-end-point");
  });

  test("the client's y flag is repeated in c= (eSws)", () => {
    const c = new ScramClientExchange("pencil", CLIENT_NONCE, "user");
    expect(c.clientFirst("y")).toBe(`y,,n=user,r=${CLIENT_NONCE}`);
    expect(c.serverFirst(SERVER_FIRST)).toStartWith(`c=eSws,r=${NONCE},p=`);
  });
});
