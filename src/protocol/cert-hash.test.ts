import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signatureHash, tlsServerEndPoint } from "./cert-hash.ts";

let dir: string;

function openssl(...args: string[]): string {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A self-signed certificate from `key`, signed with the digest and options given; returns its PEM file. */
function certificate(name: string, key: string, sign: string[]): string {
  openssl("req", "-x509", "-new", "-key", key, "-subj", `/CN=${name}`, "-days", "1", ...sign, "-out", `${name}.crt`);
  return join(dir, `${name}.crt`);
}

/** openssl's own fingerprint of the certificate with this digest, as bytes. */
function fingerprint(file: string, digest: string): Uint8Array {
  const hex = openssl("x509", "-in", file, "-noout", "-fingerprint", `-${digest}`).split("=")[1]!.trim().replace(/:/g, "");
  return new Uint8Array(Buffer.from(hex, "hex"));
}

const der = (file: string) => new Uint8Array(new X509Certificate(readFileSync(file)).raw);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pgbun-cert-hash-"));
  openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.key");
  openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "ec.key");
  openssl("genpkey", "-algorithm", "ED25519", "-out", "ed.key");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tls-server-end-point (RFC 5929 4.1)", () => {
  // [certificate, how it is signed, the hash the binding must use]
  const cases: Array<[string, string, string[], string]> = [
    ["rsa-sha256", "rsa.key", ["-sha256"], "sha256"],
    ["rsa-sha384", "rsa.key", ["-sha384"], "sha384"],
    ["rsa-sha512", "rsa.key", ["-sha512"], "sha512"],
    ["rsa-sha224", "rsa.key", ["-sha224"], "sha224"],
    // SHA-1 signatures bind with SHA-256, as the RFC says.
    ["rsa-sha1", "rsa.key", ["-sha1"], "sha256"],
    ["ecdsa-sha384", "ec.key", ["-sha384"], "sha384"],
    ["ecdsa-sha256", "ec.key", ["-sha256"], "sha256"],
    ["rsa-pss-sha384", "rsa.key", ["-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"], "sha384"],
  ];
  for (const [name, key, sign, hash] of cases) {
    test(`${name}: hashed with ${hash}, as openssl's fingerprint`, () => {
      const file = certificate(name, key, sign);
      expect(tlsServerEndPoint(der(file))).toEqual(fingerprint(file, hash));
    });
  }

  test("a certificate whose signature has no hash (Ed25519) gives nothing to bind to", () => {
    const file = certificate("ed25519", "ed.key", []);
    expect(signatureHash(der(file))).toBeNull();
    expect(tlsServerEndPoint(der(file))).toBeNull();
  });

  test("bytes that are not a certificate give nothing, without throwing", () => {
    for (const junk of [new Uint8Array(0), new Uint8Array([0x30]), new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), new Uint8Array([0x04, 0x02, 0x01, 0x02])]) {
      expect(tlsServerEndPoint(junk)).toBeNull();
    }
  });
});
