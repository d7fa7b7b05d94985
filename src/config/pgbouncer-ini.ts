// PgBouncer's own pgbouncer.ini, read as it is: [databases] connection strings, [users], [pgbouncer] settings and
// %include. Settings pgbun implements keep their names and meanings, PgBouncer's defaults where they differ from pgbun's
// apply (auth_type md5, unix_socket_dir /tmp), and every setting pgbun does not implement becomes a notice saying
// what pgbun does instead, logged once at start: nothing is dropped silently.

import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { ConfigError, type ConfigSource } from "./errors.ts";
import type { ConfigFile } from "./file.ts";
import { databaseSchema, isSettingKey, SETTING_KEYS, userSchema, type DatabaseConfig, type UserConfig } from "./schema.ts";
import { nearest } from "./suggest.ts";

export interface IniConfig extends ConfigFile {
  notices: string[];
}

/** PgBouncer's [pgbouncer] settings pgbun does not carry out, with what it does instead. */
export const NOT_IMPLEMENTED: Record<string, string> = {
  logfile: "pgbun logs to stderr only; redirect it, or let systemd or Docker collect it",
  pidfile: "pgbun writes no pid file and does not daemonize; run it under a supervisor",
  user: "pgbun does not switch user; start it as the user it should run as",
  syslog: "pgbun logs to stderr only",
  syslog_ident: "pgbun logs to stderr only",
  syslog_facility: "pgbun logs to stderr only",
  log_stats: "pgbun always logs statistics every stats_period",
  verbose: "pgbun's log_level (debug, info, warn, error) sets the detail",
  so_reuseport: "pgbun's workers setting starts processes sharing the port with SO_REUSEPORT",
  peer_id: "pgbun's workers route cancel requests among themselves; it has no peering between hosts",
  server_round_robin: "pgbun hands out servers LIFO",
  track_extra_parameters: "pgbun tracks every startup parameter and every parameter PostgreSQL reports, per client",
  ignore_startup_parameters: "pgbun accepts every startup parameter and applies it on the server",
  disable_pqexec: "pgbun always accepts the simple query protocol",
  conffile: "pgbun re-reads the file it was started with",
  service_name: "Windows services are not supported",
  job_name: "Windows services are not supported",
  scram_iterations: "pgbun makes SCRAM secrets from plain passwords with 4096 iterations, PostgreSQL's default",
  auth_ident_file: "pgbun has no user name maps",
  auth_ldap_options: "pgbun has no LDAP authentication",
  server_check_delay: "pgbun checks no idle server before handing it out; a dead one is replaced on first use",
  server_check_query: "pgbun checks no idle server before handing it out; a dead one is replaced on first use",
  server_fast_close: "pgbun closes retired servers when their client releases them",
  pool_idle_timeout: "pgbun keeps pools until reload; wildcard databases' pools go after autodb_idle_timeout",
  dns_max_ttl: "pgbun resolves host names at each server connection",
  dns_nxdomain_ttl: "pgbun resolves host names at each server connection",
  dns_zone_check_period: "pgbun resolves host names at each server connection",
  resolv_conf: "pgbun uses the system's resolver",
  query_wait_notify: "pgbun sends no notice to waiting clients",
  login_notify_message: "pgbun sends no notice at login",
  tcp_defer_accept: "pgbun uses the system's default",
  tcp_socket_buffer: "pgbun uses the system's default",
  tcp_keepcnt: "pgbun uses the system's keepalive defaults",
  tcp_keepidle: "pgbun uses the system's keepalive defaults",
  tcp_keepintvl: "pgbun uses the system's keepalive defaults",
  tcp_user_timeout: "pgbun uses the system's default",
  pkt_buf: "pgbun sizes its buffers as messages arrive",
  listen_backlog: "pgbun uses Bun's default",
  sbuf_loopcnt: "pgbun handles each socket's data at once",
  suspend_timeout: "pgbun has no online restart (SUSPEND)",
  unix_socket_group: "pgbun leaves the socket's group as created; set unix_socket_mode",
  max_db_client_connections: "only max_client_conn limits clients",
  max_user_client_connections: "only max_client_conn limits clients",
  max_user_connections: "pgbun does not limit server connections per user; lower pool sizes instead",
  reserve_pool_timeout: "pgbun has no reserve pool; raise default_pool_size instead",
  cancel_wait_timeout: "a cancel request is sent once; its server is not reused until it has landed",
  transaction_timeout: "use idle_transaction_timeout, or PostgreSQL's transaction_timeout",
  stats_users_prefix: "pgbun has stats_users",
  client_tls13_ciphers: "pgbun takes TLS 1.3 suites from client_tls_ciphers",
  server_tls13_ciphers: "pgbun takes TLS 1.3 suites from server_tls_ciphers",
  client_tls_dheparams: "pgbun uses OpenSSL's defaults",
  client_tls_ecdhcurve: "pgbun uses OpenSSL's defaults",
  // Names pgbun accepts in its own config but does not enforce yet.
  max_db_connections: "pgbun does not limit server connections per database yet; lower pool sizes instead",
  reserve_pool_size: "pgbun has no reserve pool; raise default_pool_size instead",
  server_login_retry: "pgbun retries a failed server login when the next client needs one",
  tcp_keepalive: "pgbun uses the system's keepalive defaults",
  log_pooler_errors: "pgbun logs the errors it sends to clients at warn level",
  application_name_add_host: "pgbun passes the client's application_name unchanged",
};

/** [databases] keys pgbun does not carry out, with what it does instead. */
const DATABASE_NOT_IMPLEMENTED: Record<string, string> = {
  connect_query: "pgbun runs no query on new server connections; use ALTER ROLE ... SET or ALTER DATABASE ... SET",
  client_encoding: "each client's own client_encoding is set on the server it uses",
  datestyle: "each client's own DateStyle is set on the server it uses",
  timezone: "each client's own TimeZone is set on the server it uses",
  reserve_pool: "pgbun has no reserve pool; raise pool_size instead",
  reserve_pool_size: "pgbun has no reserve pool; raise pool_size instead",
  max_db_connections: "pgbun does not limit server connections per database yet; lower pool_size instead",
  max_db_client_connections: "only max_client_conn limits clients",
  server_lifetime: "the global server_lifetime applies",
  query_wait_timeout: "the global query_wait_timeout applies",
  load_balance_hosts: "pgbun connects to the first host of a list",
  target_session_attrs: "pgbun accepts any server",
  application_name: "each client's own application_name is set on the server it uses",
};

/** [users] keys pgbun does not carry out. */
const USER_NOT_IMPLEMENTED: Record<string, string> = {
  pool_size: "the database's pool_size or default_pool_size applies",
  reserve_pool_size: "pgbun has no reserve pool",
  max_user_connections: "pgbun does not limit server connections per user yet",
  max_user_client_connections: "only max_client_conn limits clients",
  query_timeout: "the global query_timeout applies",
  query_wait_timeout: "the global query_wait_timeout applies",
  idle_transaction_timeout: "the global idle_transaction_timeout applies",
  transaction_timeout: "use PostgreSQL's transaction_timeout",
  client_idle_timeout: "the global client_idle_timeout applies",
};

/** Keys pgbun takes from [pgbouncer] under another name, or that need PgBouncer's defaults. */
const HANDLED_APART = new Set(["listen_addr", "listen_port"]);

interface Line {
  text: string;
  file: string;
  line: number;
}

export function readPgbouncerIni(given: string, source: ConfigSource, cwd: string): IniConfig {
  const path = isAbsolute(given) ? given : resolve(cwd, given);
  const named = source === "flag" ? "--pgbouncer-ini" : source === "env" ? "PGBUN_PGBOUNCER_INI" : "pgbouncer_ini";
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new ConfigError(`pgbouncer.ini ${path} ${existsSync(path) ? "is not a file" : "does not exist"} (given by ${named} ${JSON.stringify(given)})`, {
      key: "pgbouncer_ini",
      value: given,
      source,
      origin: named,
    });
  }
  const notices: string[] = [];
  const sections = new Map<string, Array<{ key: string; value: string; at: Line }>>();
  let section: string | null = null;
  for (const l of expandIncludes(path, cwd, [])) {
    const t = l.text.trim();
    if (t === "" || t.startsWith(";") || t.startsWith("#")) continue;
    const header = /^\[([^\]]+)\]$/.exec(t);
    if (header) {
      section = header[1]!.trim().toLowerCase();
      if (!["databases", "users", "pgbouncer", "peers"].includes(section)) throw iniError(l, `unknown section [${header[1]}]; PgBouncer has [databases], [users], [pgbouncer] and [peers]`);
      continue;
    }
    const eq = t.indexOf("=");
    if (eq < 0) throw iniError(l, `expected key = value, %include FILE or [section], not ${JSON.stringify(t)}`);
    if (section === null) throw iniError(l, "a setting before any [section]");
    const key = unquoteName(t.slice(0, eq).trim());
    const value = t.slice(eq + 1).trim();
    const list = sections.get(section) ?? [];
    list.push({ key, value, at: l });
    sections.set(section, list);
  }

  const pgbun: Record<string, unknown> = {};
  const settings = new Map<string, { value: string; at: Line }>();
  // A later line for the same key wins, as in PgBouncer (an %include after a setting overrides it).
  for (const e of sections.get("pgbouncer") ?? []) settings.set(e.key.toLowerCase(), { value: e.value, at: e.at });
  for (const [key, { value, at }] of settings) {
    if (HANDLED_APART.has(key)) continue;
    const instead = NOT_IMPLEMENTED[key];
    if (instead !== undefined) {
      notices.push(`${key} = ${value} (${at.file}:${at.line}) is not implemented: ${instead}`);
      continue;
    }
    if (!isSettingKey(key)) {
      const near = nearest(key, [...SETTING_KEYS, ...Object.keys(NOT_IMPLEMENTED), ...HANDLED_APART]);
      throw iniError(at, `unknown setting ${key} in [pgbouncer]${near === null ? "" : `; did you mean ${near}?`}`);
    }
    pgbun[key] = value;
  }
  // PgBouncer's defaults where pgbun's differ, so that the same file means the same thing.
  pgbun.auth_type ??= "md5";
  pgbun.unix_socket_dir ??= "/tmp";
  const port = settings.get("listen_port")?.value ?? "6432";
  const addr = settings.get("listen_addr");
  if (addr === undefined || addr.value === "") {
    pgbun.listen = `127.0.0.1:${port}`;
    notices.push(
      `listen_addr is not set: PgBouncer would accept connections on its Unix socket only; pgbun also listens on 127.0.0.1:${port} (set listen_addr to choose the address)`,
    );
  } else {
    const all = addr.value.split(",").map((a) => a.trim()).filter((a) => a !== "");
    const first = all[0]!;
    pgbun.listen = first.includes(":") && first !== "*" ? `[${first}]:${port}` : `${first}:${port}`;
    if (all.length > 1) notices.push(`listen_addr = ${addr.value} (${addr.at.file}:${addr.at.line}) lists several addresses: pgbun listens on ${first} only`);
  }

  for (const e of sections.get("peers") ?? []) notices.push(`[peers] ${e.key} (${e.at.file}:${e.at.line}) is not implemented: pgbun's workers route cancel requests among themselves; it has no peering between hosts`);

  const socketDir = String(pgbun.unix_socket_dir);
  const databases = new Map<string, DatabaseConfig>();
  for (const { key: name, value, at } of sections.get("databases") ?? []) {
    databases.set(name, databaseFrom(name, value, at, socketDir, notices));
  }
  const users = new Map<string, UserConfig>();
  for (const { key: name, value, at } of sections.get("users") ?? []) users.set(name, userFrom(name, value, at, notices));
  return { path, pgbun, databases, users, notices };
}

/** The file's lines with each `%include FILE` replaced by that file's (relative to the working directory, as PgBouncer). */
function expandIncludes(path: string, cwd: string, stack: string[]): Line[] {
  if (stack.includes(path)) throw new ConfigError(`%include loop: ${[...stack, path].join(" includes ")}`, { key: "pgbouncer_ini" });
  if (stack.length > 10) throw new ConfigError(`%include nested more than 10 deep at ${path}`, { key: "pgbouncer_ini" });
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const from = stack.length > 0 ? ` (included by ${stack[stack.length - 1]})` : "";
    throw new ConfigError(`cannot read ${path}${from}: ${(err as Error).message}`, { key: "pgbouncer_ini" });
  }
  const out: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const inc = /^\s*%include\s+(.+?)\s*$/.exec(raw);
    if (inc) {
      const file = inc[1]!;
      out.push(...expandIncludes(isAbsolute(file) ? file : resolve(cwd, file), cwd, [...stack, path]));
      return;
    }
    out.push({ text: raw, file: path, line: i + 1 });
  });
  return out;
}

/** A [databases] name may be double-quoted to hold any character. */
function unquoteName(s: string): string {
  const m = /^"(.*)"$/.exec(s);
  return m ? m[1]!.replaceAll('""', '"') : s;
}

/** key=value pairs as libpq writes them: values may be single-quoted, with \' and \\ inside. */
export function parseConnString(s: string, at: Line): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (i >= s.length) break;
    const eq = s.indexOf("=", i);
    if (eq < 0) throw iniError(at, `expected key=value in ${JSON.stringify(s)}`);
    const key = s.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (i < s.length && /\s/.test(s[i]!)) i++;
    let value = "";
    if (s[i] === "'") {
      i++;
      for (; i < s.length && s[i] !== "'"; i++) {
        if (s[i] === "\\" && i + 1 < s.length) i++;
        value += s[i];
      }
      if (s[i] !== "'") throw iniError(at, `an unclosed quote in ${JSON.stringify(s)}`);
      i++;
    } else {
      for (; i < s.length && !/\s/.test(s[i]!); i++) value += s[i];
    }
    out.set(key, value);
  }
  return out;
}

const DB_TEXT = ["host", "dbname", "user", "password", "auth_user", "auth_dbname", "auth_query", "pool_mode"] as const;
const DB_INT = ["port", "pool_size", "min_pool_size"] as const;

function databaseFrom(name: string, value: string, at: Line, socketDir: string, notices: string[]): DatabaseConfig {
  const params = parseConnString(value, at);
  const raw: Record<string, unknown> = {};
  for (const [key, v] of params) {
    if ((DB_TEXT as readonly string[]).includes(key)) raw[key] = key === "pool_mode" ? v.toLowerCase() : v;
    else if ((DB_INT as readonly string[]).includes(key)) raw[key] = /^\d+$/.test(v) ? Number(v) : v;
    else if (DATABASE_NOT_IMPLEMENTED[key] !== undefined) notices.push(`[databases] ${name}: ${key}=${v} (${at.file}:${at.line}) is not implemented: ${DATABASE_NOT_IMPLEMENTED[key]}`);
    else throw iniError(at, `unknown key ${key} in database ${name}; PgBouncer's keys are host, port, dbname, user, password, auth_user, pool_size, pool_mode, ...`);
  }
  // No host means the Unix socket, in unix_socket_dir as PgBouncer does; a list means round robin, which pgbun lacks.
  const host = typeof raw.host === "string" ? raw.host : "";
  if (host === "") raw.host = socketDir;
  else if (host.startsWith("@")) throw iniError(at, `database ${name}: abstract Unix sockets (host=${host}) are not supported; give the socket's folder`);
  else if (host.includes(",")) {
    raw.host = host.split(",")[0]!.trim();
    notices.push(`[databases] ${name}: host=${host} (${at.file}:${at.line}) lists several hosts: pgbun connects to ${String(raw.host)} only`);
  }
  if (raw.host === "") throw iniError(at, `database ${name} has no host and unix_socket_dir is empty: give host=`);
  const r = databaseSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = String(issue.path[0] ?? "");
    if (field === "password") {
      // PgBouncer would send this one password for whichever user a client logs in as; pgbun refuses to guess.
      throw iniError(at, `database ${name}: password= needs user=: add user=NAME to its connection string, or remove password= and put the users' secrets in auth_file`);
    }
    throw iniError(at, `database ${name}: invalid ${field}=${JSON.stringify(raw[field] ?? "")}: ${issue.message}`);
  }
  return { name, ...r.data, dbname: r.data.dbname ?? name };
}

function userFrom(name: string, value: string, at: Line, notices: string[]): UserConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, v] of parseConnString(value, at)) {
    if (key === "pool_mode" || key === "auth_type") raw[key] = v.toLowerCase();
    else if (USER_NOT_IMPLEMENTED[key] !== undefined) notices.push(`[users] ${name}: ${key}=${v} (${at.file}:${at.line}) is not implemented: ${USER_NOT_IMPLEMENTED[key]}`);
    else throw iniError(at, `unknown key ${key} for user ${name}; PgBouncer's [users] keys are pool_mode, pool_size, max_user_connections, ...`);
  }
  const r = userSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw iniError(at, `user ${name}: invalid ${String(issue.path[0] ?? "")}: ${issue.message}`);
  }
  return { name, ...r.data };
}

function iniError(at: Line, why: string): ConfigError {
  return new ConfigError(`${at.file}:${at.line}: ${why}`, { key: "pgbouncer_ini", source: "file", origin: at.file });
}
