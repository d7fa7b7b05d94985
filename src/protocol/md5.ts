// md5 password hashing and the AuthenticationMD5Password challenge, as PostgreSQL defines them.

import { createHash, timingSafeEqual } from "node:crypto";

export function md5Hex(data: string | Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** The pg_authid form: "md5" + md5(password + user). */
export function md5PasswordHash(user: string, password: string): string {
  return "md5" + md5Hex(password + user);
}

export function isMd5Hash(s: string): boolean {
  return s.length === 35 && /^md5[0-9a-f]{32}$/.test(s);
}

/** What a client answers to AuthenticationMD5Password; works from the plain password or the stored hash. */
export function md5Response(user: string, passwordOrHash: string, salt: Uint8Array): string {
  const inner = isMd5Hash(passwordOrHash) ? passwordOrHash.slice(3) : md5Hex(passwordOrHash + user);
  return "md5" + md5Hex(Buffer.concat([Buffer.from(inner), Buffer.from(salt)]));
}

export function verifyMd5Response(user: string, stored: string, salt: Uint8Array, response: string): boolean {
  const want = Buffer.from(md5Response(user, stored, salt));
  const got = Buffer.from(response);
  return want.length === got.length && timingSafeEqual(want, got);
}
