// md5 password hashes and AuthenticationMD5Password answers against independently computed values.

import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { isMd5Hash, md5Hex, md5PasswordHash, md5Response, verifyMd5Response } from "./md5.ts";

const SALT = Uint8Array.of(0x01, 0x02, 0x03, 0x04);

test("md5Hex hashes strings as UTF-8 and bytes as they are", () => {
  expect(md5Hex("")).toBe("d41d8cd98f00b204e9800998ecf8427e");
  expect(md5Hex(new TextEncoder().encode("postgrespostgres"))).toBe("3175bce1d3201d16594cebf9d7eb3f9d");
});

test("the pg_authid hash of postgres/postgres is what md5sum says", () => {
  // printf 'postgrespostgres' | md5sum
  expect(md5PasswordHash("postgres", "postgres")).toBe("md53175bce1d3201d16594cebf9d7eb3f9d");
  // printf 'apppassapp' | md5sum: the password comes first, then the user name
  expect(md5PasswordHash("app", "apppass")).toBe("md5240aeccb7a1d859a99844d012bfe74cc");
});

test("the answer to a fixed salt matches a step-by-step computation", () => {
  const inner = createHash("md5").update("postgres" + "postgres").digest("hex");
  const outer = createHash("md5").update(Buffer.concat([Buffer.from(inner, "ascii"), SALT])).digest("hex");
  // { printf '%s' 3175bce1d3201d16594cebf9d7eb3f9d; printf '\x01\x02\x03\x04'; } | md5sum
  expect(outer).toBe("68be9ed08db75f318087ab337aaea044");
  expect(md5Response("postgres", "postgres", SALT)).toBe("md5" + outer);
});

test("a stored md5 hash answers the challenge exactly as its password would", () => {
  const hash = md5PasswordHash("postgres", "postgres");
  expect(md5Response("postgres", hash, SALT)).toBe(md5Response("postgres", "postgres", SALT));
});

test("the salt changes the answer", () => {
  expect(md5Response("postgres", "postgres", Uint8Array.of(4, 3, 2, 1))).not.toBe(md5Response("postgres", "postgres", SALT));
});

test("a right answer verifies against the plain password and against its hash", () => {
  const answer = md5Response("alice", "secret", SALT);
  expect(verifyMd5Response("alice", "secret", SALT, answer)).toBe(true);
  expect(verifyMd5Response("alice", md5PasswordHash("alice", "secret"), SALT, answer)).toBe(true);
});

test("wrong, truncated, re-cased and replayed answers do not verify", () => {
  const answer = md5Response("alice", "secret", SALT);
  expect(verifyMd5Response("alice", "other", SALT, answer)).toBe(false);
  expect(verifyMd5Response("bob", "secret", SALT, answer)).toBe(false);
  expect(verifyMd5Response("alice", "secret", Uint8Array.of(9, 9, 9, 9), answer)).toBe(false);
  expect(verifyMd5Response("alice", "secret", SALT, answer.slice(0, -1))).toBe(false);
  expect(verifyMd5Response("alice", "secret", SALT, answer.toUpperCase())).toBe(false);
  expect(verifyMd5Response("alice", "secret", SALT, "")).toBe(false);
});

test("isMd5Hash accepts only md5 followed by 32 lower-case hex digits", () => {
  expect(isMd5Hash("md53175bce1d3201d16594cebf9d7eb3f9d")).toBe(true);
  expect(isMd5Hash("md53175BCE1D3201D16594CEBF9D7EB3F9D")).toBe(false);
  expect(isMd5Hash("md53175bce1d3201d16594cebf9d7eb3f9")).toBe(false);
  expect(isMd5Hash("md53175bce1d3201d16594cebf9d7eb3f9d0")).toBe(false);
  expect(isMd5Hash("3175bce1d3201d16594cebf9d7eb3f9d")).toBe(false);
  expect(isMd5Hash("md53175bce1d3201d16594cebf9d7eb3f9d\n")).toBe(false);
  expect(isMd5Hash("SCRAM-SHA-256$4096:abc")).toBe(false);
});
