// tls-server-end-point channel binding data (RFC 5929 §4.1): a hash of the server's certificate, taken with the hash
// of the certificate's own signature algorithm, SHA-256 where that is MD5 or SHA-1. Reads just enough DER to know it.

import { createHash } from "node:crypto";

const SEQUENCE = 0x30;
const OID = 0x06;
/** [0] EXPLICIT, the hashAlgorithm of RSASSA-PSS parameters. */
const CONTEXT_0 = 0xa0;

const RSA_PSS = "1.2.840.113549.1.1.10";

/** Signature algorithm OIDs by the hash they sign with. */
const SIGNATURE_HASH: Record<string, string> = {
  "1.2.840.113549.1.1.4": "md5", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha1", // sha1WithRSAEncryption
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha1", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.10040.4.3": "sha1", // dsa-with-sha1
  "2.16.840.1.101.3.4.3.1": "sha224",
  "2.16.840.1.101.3.4.3.2": "sha256",
};

/** Hash algorithm OIDs, as RSASSA-PSS parameters name them. */
const HASH: Record<string, string> = {
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function tlv(der: Uint8Array, at: number, limit: number): Tlv | null {
  if (at + 2 > limit) return null;
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  return start + len > limit ? null : { tag, start, end: start + len };
}

function oidText(der: Uint8Array, t: Tlv): string {
  const first = der[t.start]!;
  const parts = [Math.floor(first / 40), first % 40];
  let v = 0;
  for (let i = t.start + 1; i < t.end; i++) {
    v = v * 128 + (der[i]! & 0x7f);
    if (!(der[i]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}

/** The hash a certificate's signature uses, or null when it has none (Ed25519, Ed448) or the DER is not a certificate. */
export function signatureHash(der: Uint8Array): string | null {
  const cert = tlv(der, 0, der.length);
  if (cert?.tag !== SEQUENCE) return null;
  const tbs = tlv(der, cert.start, cert.end);
  if (tbs?.tag !== SEQUENCE) return null;
  const alg = tlv(der, tbs.end, cert.end);
  if (alg?.tag !== SEQUENCE) return null;
  const oid = tlv(der, alg.start, alg.end);
  if (oid?.tag !== OID) return null;
  const name = oidText(der, oid);
  if (name !== RSA_PSS) return SIGNATURE_HASH[name] ?? null;
  // RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1, ... }
  const params = tlv(der, oid.end, alg.end);
  if (params?.tag !== SEQUENCE) return "sha1";
  const first = tlv(der, params.start, params.end);
  if (first?.tag !== CONTEXT_0) return "sha1";
  const hashAlg = tlv(der, first.start, first.end);
  const hashOid = hashAlg?.tag === SEQUENCE ? tlv(der, hashAlg.start, hashAlg.end) : null;
  return hashOid?.tag === OID ? (HASH[oidText(der, hashOid)] ?? null) : null;
}

/** The tls-server-end-point channel binding data for a DER certificate, or null when no hash can be chosen for it. */
export function tlsServerEndPoint(der: Uint8Array): Uint8Array | null {
  const hash = signatureHash(der);
  if (hash === null) return null;
  const used = hash === "md5" || hash === "sha1" ? "sha256" : hash;
  return new Uint8Array(createHash(used).update(der).digest());
}
