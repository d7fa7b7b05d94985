// --upstream postgres://USER:PASSWORD@HOST:PORT/DB: one database to pool, and the user clients log in as to reach it.
// libpq's multi-host form (HOST1:PORT1,HOST2:PORT2) names every host of a cluster; target_session_attrs picks its role.

import { ConfigError, type ConfigSource } from "./errors.ts";
import { parseHostList, type HostAddress } from "./hosts.ts";
import type { DatabaseConfig, DatabaseRole, UserConfig } from "./schema.ts";

const ALLOWED =
  "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE (or HOST1:PORT1,HOST2:PORT2 for several hosts), with special characters in USER and PASSWORD percent-encoded";

/** libpq's target_session_attrs, as the role of the database it names. */
const SESSION_ATTRS: Record<string, DatabaseRole | null> = {
  any: null,
  "read-write": "primary",
  primary: "primary",
  "read-only": "replica",
  standby: "replica",
  "prefer-standby": "replica",
};

export interface Upstream {
  database: DatabaseConfig;
  user: UserConfig;
}

export function parseUpstream(text: string, source: ConfigSource): Upstream {
  const origin = source === "flag" ? "--upstream" : "PGBUN_UPSTREAM";
  const bad = (why: string) => ConfigError.invalid("upstream", masked(text), source, origin, `${why}; ${ALLOWED}`);
  // WHATWG URLs hold one host: a list is taken out first and the URL parsed with its first entry.
  const listed = /^(\s*[a-z]+:\/\/(?:[^/?#@]*@)?)([^/?#@]*,[^/?#@]*)(.*)$/is.exec(text);
  let hosts: HostAddress[] | null = null;
  if (listed !== null) {
    try {
      hosts = parseHostList(listed[2]!, 5432);
    } catch (err) {
      throw bad((err as Error).message);
    }
  }
  let url: URL;
  try {
    url = new URL((listed === null ? text : listed[1]! + listed[2]!.split(",")[0]! + listed[3]!).trim());
  } catch {
    throw bad("not a URL");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw bad(`the scheme is ${url.protocol.slice(0, -1)}, not postgres`);
  // Parameters such as sslmode=require would silently not apply, and a pooler quietly dropping TLS is worse than refusing.
  const param = [...url.searchParams.keys()].find((k) => k !== "target_session_attrs");
  if (param !== undefined) throw bad(`query parameters such as ${param} are not supported (target_session_attrs is)`);
  const attrs = url.searchParams.get("target_session_attrs");
  if (attrs !== null && !Object.hasOwn(SESSION_ATTRS, attrs)) throw bad(`target_session_attrs=${attrs} is not one of ${Object.keys(SESSION_ATTRS).join(", ")}`);
  const role = attrs === null ? null : SESSION_ATTRS[attrs]!;
  const user = decode(url.username, bad);
  const password = url.password === "" ? undefined : decode(url.password, bad);
  const db = decode(url.pathname.replace(/^\//, ""), bad);
  if (user === "") throw bad("the user is missing");
  if (db === "" || db.includes("/")) throw bad("the database name is missing");
  const port = url.port === "" ? 5432 : Number(url.port);
  if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
  const host = url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  const login = password === undefined ? {} : { password };
  const first = hosts?.[0] ?? { host, port };
  // hosts is always set, even to undefined: the URL replaces a same-named file database's address, host list included.
  const routed = hosts !== null || role !== null ? { hosts: hosts ?? [first], ...(role === null ? {} : { role }) } : { hosts: undefined };
  return { database: { name: db, host: first.host, port: first.port, dbname: db, user, ...login, ...routed }, user: { name: user, ...login } };
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
