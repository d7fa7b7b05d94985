// Certificates for TLS tests, made with openssl in a temporary folder: a CA, server certificates for localhost, client
// certificates, and a second CA whose certificates pgbun and PostgreSQL must refuse.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atEnd } from "./cleanup.ts";

export interface TestCertificates {
  dir: string;
  ca: string;
  /** CN localhost, for DNS localhost and IP 127.0.0.1 (not 127.0.0.2: the wrong host name). */
  serverCert: string;
  serverKey: string;
  /** Another certificate for the same names, as a rotation would bring. */
  rotatedCert: string;
  rotatedKey: string;
  /** Signed by the CA, for a client user (CN). */
  clientCert(cn: string): { cert: string; key: string };
  /** A second CA and a client certificate it signed: trusted by nobody here. */
  otherCa: string;
  strangerCert: string;
  strangerKey: string;
}

function openssl(dir: string, args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString().trim()}`);
}

/** P-256 keys: quick to make and to sign with. */
function keyPair(dir: string, name: string): void {
  openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", `${name}.key`]);
  // libpq refuses a client key others can read.
  chmodSync(join(dir, `${name}.key`), 0o600);
}

function selfSignedCa(dir: string, name: string, cn: string): void {
  keyPair(dir, name);
  openssl(dir, ["req", "-x509", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-days", "30", "-out", `${name}.crt`]);
}

function signed(dir: string, ca: string, name: string, cn: string, ext?: string): void {
  keyPair(dir, name);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`]);
  const extArgs = ext === undefined ? [] : ["-extfile", `${name}.ext`];
  if (ext !== undefined) writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "30", "-out", `${name}.crt`, ...extArgs]);
}

export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "pgbun-tls-"));
  atEnd(() => rmSync(dir, { recursive: true, force: true }));
  const san = "subjectAltName = DNS:localhost, IP:127.0.0.1\n";
  selfSignedCa(dir, "ca", "pgbun test CA");
  selfSignedCa(dir, "other-ca", "someone else's CA");
  signed(dir, "ca", "server", "localhost", san);
  signed(dir, "ca", "rotated", "localhost", san);
  signed(dir, "other-ca", "stranger", "app");
  const made = new Set<string>();
  const p = (name: string) => join(dir, name);
  return {
    dir,
    ca: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    rotatedCert: p("rotated.crt"),
    rotatedKey: p("rotated.key"),
    clientCert(cn) {
      const name = `client-${cn}`;
      if (!made.has(name)) signed(dir, "ca", name, cn);
      made.add(name);
      return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
    },
    otherCa: p("other-ca.crt"),
    strangerCert: p("stranger.crt"),
    strangerKey: p("stranger.key"),
  };
}
