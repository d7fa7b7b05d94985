import { describe, expect, test } from "bun:test";
import { Writer } from "../protocol/writer.ts";
import { AUTH_SASL } from "../protocol/tags.ts";
import { ServerAuth } from "./server-auth.ts";

/** AuthenticationSASL as PostgreSQL sends it, listing these mechanisms. */
function authSasl(mechanisms: string[]): Uint8Array {
  const w = new Writer().start(0x52).int32(AUTH_SASL);
  for (const m of mechanisms) w.cstr(m);
  return w.byte(0).end().take();
}

/** The mechanism and client-first-message of a SASLInitialResponse. */
function initial(msg: Uint8Array): { mechanism: string; first: string } {
  expect(String.fromCharCode(msg[0]!)).toBe("p");
  const text = new TextDecoder().decode(msg.subarray(5));
  const mechanism = text.slice(0, text.indexOf("\0"));
  return { mechanism, first: text.slice(mechanism.length + 1 + 4) };
}

describe("pgbun's SCRAM login to a server and channel binding", () => {
  const endPoint = new Uint8Array(32).fill(7);

  test("over TLS, with SCRAM-SHA-256-PLUS offered, it binds to the server's certificate", () => {
    const a = new ServerAuth("app", "apppass");
    a.channelBinding = () => endPoint;
    const msg = authSasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    const r = initial(a.handle(msg, 0, msg.length)!);
    expect(r.mechanism).toBe("SCRAM-SHA-256-PLUS");
    expect(r.first).toStartWith("p=tls-server-end-point,,n=,r=");
  });

  test("over TLS without PLUS offered it says y (it could have bound); in plain text n", () => {
    const tls = new ServerAuth("app", "apppass");
    tls.channelBinding = () => endPoint;
    const msg = authSasl(["SCRAM-SHA-256"]);
    expect(initial(tls.handle(msg, 0, msg.length)!)).toMatchObject({ mechanism: "SCRAM-SHA-256", first: expect.stringMatching(/^y,,n=,r=/) });
    const plain = new ServerAuth("app", "apppass");
    const both = authSasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    expect(initial(plain.handle(both, 0, both.length)!)).toMatchObject({ mechanism: "SCRAM-SHA-256", first: expect.stringMatching(/^n,,n=,r=/) });
  });

  test("a certificate with no usable hash falls back to SCRAM-SHA-256 without binding", () => {
    const a = new ServerAuth("app", "apppass");
    a.channelBinding = () => null;
    const msg = authSasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    expect(initial(a.handle(msg, 0, msg.length)!)).toMatchObject({ mechanism: "SCRAM-SHA-256", first: expect.stringMatching(/^n,,/) });
  });
});
