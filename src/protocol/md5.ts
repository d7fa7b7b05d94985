// md5 password hashing and the AuthenticationMD5Password challenge, as PostgreSQL defines them.

import { createHash, timingSafeEqual } from "node:crypto";

const MD5_HASH = /^md5[0-9a-f]{32}$/;

export function md5Hex(data: string | Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** The pg_authid form: "md5" + md5(password + user); the user is the salt, so renaming a role invalidates it. */
export function md5PasswordHash(user: string, password: string): string {
  return "md5" + md5Hex(password + user);
}

export function isMd5Hash(s: string): boolean {
  return MD5_HASH.test(s);
}

/**
 * What a client answers to AuthenticationMD5Password: "md5" + md5(md5(password + user) + salt).
 * A stored "md5..." hash works in place of the password, as PostgreSQL does the same on its side:
 * this is what lets pgbun log into a server holding only the hash.
 */
export function md5Response(user: string, passwordOrHash: string, salt: Uint8Array): string {
  const inner = isMd5Hash(passwordOrHash) ? passwordOrHash.slice(3) : md5Hex(passwordOrHash + user);
  return "md5" + createHash("md5").update(inner).update(salt).digest("hex");
}

/** `stored` is the plain password or its md5 hash; the comparison takes the same time wherever the strings differ. */
export function verifyMd5Response(user: string, stored: string, salt: Uint8Array, response: string): boolean {
  const want = Buffer.from(md5Response(user, stored, salt));
  const got = Buffer.from(response);
  // The expected length is public (always 35), so checking it first leaks nothing.
  return want.length === got.length && timingSafeEqual(want, got);
}
