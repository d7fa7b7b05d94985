// auth_file in PgBouncer's userlist.txt format: one user a line, `"name" "secret"`, the secret plain text, an md5 hash
// or a SCRAM secret; whatever follows the second field is ignored, and "" inside a field stands for one quote.

import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "./errors.ts";

const MD5_LOOKING = /^md5[0-9a-fA-F]+$/;
const MD5_HASH = /^md5[0-9a-f]{32}$/;
const SCRAM = /^SCRAM-SHA-256\$[1-9][0-9]*:[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*$/;

/** A path from a setting: absolute, or taken from the working directory as PgBouncer does. */
export function settingPath(given: string, cwd: string): string {
  return isAbsolute(given) ? given : resolve(cwd, given);
}

/** Reads a file a setting names, or says in one line which setting to fix. */
export function readSettingFile(setting: string, given: string, cwd: string): { path: string; text: string } {
  const path = settingPath(given, cwd);
  if (!existsSync(path) || !statSync(path).isFile()) {
    const problem = existsSync(path) ? "is not a file" : "does not exist";
    const relative = isAbsolute(given) ? "" : ` (relative to the working directory ${cwd})`;
    throw new ConfigError(`${setting} file ${path} ${problem}${relative}: fix ${setting} (--${setting.replace(/_/g, "-")}) or create the file`, {
      key: setting,
      value: given,
    });
  }
  try {
    return { path, text: readFileSync(path, "utf8") };
  } catch (err) {
    throw new ConfigError(`${setting} file ${path} cannot be read: ${(err as Error).message}`, { key: setting, value: given, cause: err });
  }
}

/** Users and their secrets, in file order (a later line for the same user wins, as in PgBouncer). */
export function parseAuthFile(text: string, path: string): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) return;
    const where = `${path}:${i + 1}`;
    const first = quoted(line, 0);
    const gap = first === null ? -1 : skipSpace(line, first.end);
    const second = first === null || gap === first.end ? null : quoted(line, gap);
    if (first === null || second === null) {
      throw new ConfigError(`auth_file line ${where} is not "user" "secret": each line holds two double-quoted fields (write "" for a quote inside one)`, {
        key: "auth_file",
        source: "file",
        origin: path,
      });
    }
    const secret = second.value;
    if (MD5_LOOKING.test(secret) && !MD5_HASH.test(secret) && secret.length === 35) {
      throw badSecret(where, first.value, 'an md5 secret is "md5" followed by 32 lowercase hex digits, md5(password + user)');
    }
    if (secret.startsWith("SCRAM-SHA-256$") && !SCRAM.test(secret)) {
      throw badSecret(where, first.value, "a SCRAM secret is SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as in pg_authid");
    }
    users.set(first.value, secret);
  });
  return users;
}

function badSecret(where: string, user: string, allowed: string): ConfigError {
  return new ConfigError(`auth_file line ${where}: the secret of user "${user}" is malformed: ${allowed}`, { key: "auth_file", source: "file" });
}

function skipSpace(line: string, at: number): number {
  while (at < line.length && (line[at] === " " || line[at] === "\t")) at++;
  return at;
}

/** A field in double quotes starting at `at`, with "" read as one quote; null when there is none. */
function quoted(line: string, at: number): { value: string; end: number } | null {
  if (line[at] !== '"') return null;
  let value = "";
  for (let i = at + 1; i < line.length; i++) {
    if (line[i] !== '"') {
      value += line[i];
      continue;
    }
    if (line[i + 1] === '"') {
      value += '"';
      i++;
      continue;
    }
    return { value, end: i + 1 };
  }
  return null;
}
