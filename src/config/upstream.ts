// --upstream postgres://USER:PASSWORD@HOST:PORT/DB: one database to pool, and the user clients log in as to reach it.

import { ConfigError, type ConfigSource } from "./errors.ts";
import type { DatabaseConfig, UserConfig } from "./schema.ts";

const ALLOWED = "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE, with special characters in USER and PASSWORD percent-encoded";

export interface Upstream {
  database: DatabaseConfig;
  user: UserConfig;
}

export function parseUpstream(text: string, source: ConfigSource): Upstream {
  const origin = source === "flag" ? "--upstream" : "PGBUN_UPSTREAM";
  const bad = (why: string) => ConfigError.invalid("upstream", masked(text), source, origin, `${why}; ${ALLOWED}`);
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw bad("not a URL");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw bad(`the scheme is ${url.protocol.slice(0, -1)}, not postgres`);
  // Parameters such as sslmode=require would silently not apply, and a pooler quietly dropping TLS is worse than refusing.
  const param = [...url.searchParams.keys()][0];
  if (param !== undefined) throw bad(`query parameters such as ${param} are not supported`);
  const user = decode(url.username, bad);
  const password = url.password === "" ? undefined : decode(url.password, bad);
  const db = decode(url.pathname.replace(/^\//, ""), bad);
  if (user === "") throw bad("the user is missing");
  if (db === "" || db.includes("/")) throw bad("the database name is missing");
  const port = url.port === "" ? 5432 : Number(url.port);
  if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
  const host = url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  const login = password === undefined ? {} : { password };
  return { database: { name: db, host, port, dbname: db, user, ...login }, user: { name: user, ...login } };
}

function decode(s: string, bad: (why: string) => ConfigError): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad("a percent-escape is malformed");
  }
}

/** Shown in errors without the password, which may be the database's real one. */
function masked(text: string): string {
  return text.replace(/^([a-z]+:\/\/[^:@/]*:)[^@]*@/i, "$1***@");
}
