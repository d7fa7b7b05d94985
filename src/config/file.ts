// The TOML config file: its path, its [pgbun] section as written, and its [databases.NAME] and [users.NAME] sections checked.

import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { z } from "zod";
import { ConfigError, type ConfigSource } from "./errors.ts";
import { parseHostList, type HostAddress } from "./hosts.ts";
import { nearest } from "./suggest.ts";
import { DATABASE_KEYS, databaseSchema, isSettingKey, SETTING_KEYS, USER_KEYS, userSchema, type DatabaseConfig, type UserConfig } from "./schema.ts";

export interface ConfigFile {
  path: string;
  /** The [pgbun] section, every key known; values are checked later, when their source is known to win. */
  pgbun: Record<string, unknown>;
  databases: Map<string, DatabaseConfig>;
  users: Map<string, UserConfig>;
}

const SECTIONS = ["pgbun", "databases", "users"];

/** What each database and user key accepts, for the one-line error; zod's own wording names no key. */
const ALLOWED: Record<string, string> = {
  host: "expected a host name or IP address, or several: \"h1,h2:5433\" or a TOML list [\"h1\", \"h2:5433\"]",
  port: "expected an integer from 1 to 65535",
  dbname: "expected a database name",
  user: "expected a user name",
  password: "expected text",
  pool_mode: "expected one of session, transaction, statement",
  pool_size: "expected an integer from 1 to 100000",
  min_pool_size: "expected an integer from 0 to 100000",
  max_db_connections: "expected an integer, 0 (unlimited) or more",
  max_user_connections: "expected an integer, 0 (unlimited) or more",
  auth_type: "expected one of trust, plain, md5, scram-sha-256",
  auth_user: "expected a user name",
  auth_dbname: "expected a database name",
  auth_query: "expected a query returning the user name and its password, with $1 for the name",
};

/** Relative paths are taken from the working directory: inside a `bun build --compile` binary import.meta.dir is virtual. */
export function readConfigFile(given: string, source: ConfigSource, cwd: string): ConfigFile {
  const path = isAbsolute(given) ? given : resolve(cwd, given);
  const named = source === "flag" ? "--config" : "PGBUN_CONFIG";
  if (!existsSync(path) || !statSync(path).isFile()) {
    const problem = existsSync(path) ? "is not a file" : "does not exist";
    const relative = isAbsolute(given) ? "" : `, relative to ${cwd}`;
    throw new ConfigError(`config file ${path} ${problem} (given by ${named} ${JSON.stringify(given)}${relative})`, {
      key: "config",
      value: given,
      source,
      origin: named,
    });
  }
  let table: Record<string, unknown>;
  try {
    table = Bun.TOML.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid TOML: ${(err as Error).message}`, { key: "config", value: given, source, origin: named, cause: err });
  }
  for (const key of Object.keys(table)) {
    if (SECTIONS.includes(key)) continue;
    const hint = isSettingKey(key) ? `; ${key} belongs in the [pgbun] section` : suggestion(nearest(key, SECTIONS), "[", "]");
    throw new ConfigError(`unknown section or key ${key} in ${path}${hint}; expected [pgbun], [databases.NAME] and [users.NAME]`, {
      key,
      source: "file",
      origin: path,
    });
  }
  const pgbun = tableAt(table.pgbun, "[pgbun]", path);
  for (const key of Object.keys(pgbun)) {
    if (!isSettingKey(key)) {
      throw new ConfigError(`unknown key ${key} in [pgbun] of ${path}${suggestion(nearest(key, SETTING_KEYS), "", "")}`, { key, source: "file", origin: path });
    }
  }
  return { path, pgbun, databases: readDatabases(table.databases, path), users: readUsers(table.users, path) };
}

function readDatabases(raw: unknown, path: string): Map<string, DatabaseConfig> {
  const out = new Map<string, DatabaseConfig>();
  for (const [name, entry] of Object.entries(tableAt(raw, "[databases]", path))) {
    const where = `databases.${name}`;
    // PgBouncer writes a database as one libpq string; say what pgbun wants instead of a bare type error.
    if (typeof entry === "string") {
      throw new ConfigError(`${where} in ${path} is a string; pgbun wants a section: [databases.${name}] with host = "...", port = 5432, dbname = "...", user = "..."`, {
        key: where,
        source: "file",
        origin: path,
      });
    }
    // A TOML list of hosts is the same as libpq's comma-separated form.
    const table = tableAt(entry, `[${where}]`, path);
    const listed = Array.isArray(table.host) && table.host.every((h) => typeof h === "string") ? { ...table, host: table.host.join(",") } : table;
    const d = checked(databaseSchema, listed, where, DATABASE_KEYS, path);
    out.set(name, withHosts({ name, ...d, dbname: d.dbname ?? name }, where, path));
  }
  return out;
}

/** Splits a host list: host and port become the first host's, and `hosts` holds them all when the entry needs a router. */
function withHosts(d: DatabaseConfig, where: string, path: string): DatabaseConfig {
  let hosts: HostAddress[];
  try {
    hosts = parseHostList(d.host, d.port);
  } catch (err) {
    throw ConfigError.invalid(`${where}.host`, d.host, "file", path, (err as Error).message);
  }
  const routed = hosts.length > 1 || d.role !== undefined || d.read_write_split !== undefined || d.primary_reads !== undefined || d.patroni_url !== undefined;
  if (d.patroni_url !== undefined && d.patroni_url.length !== hosts.length) {
    const allowed = `expected one Patroni address per host (${hosts.length}), in the same order; "" for a host without one`;
    throw ConfigError.invalid(`${where}.patroni_url`, d.patroni_url.join(","), "file", path, allowed);
  }
  return { ...d, host: hosts[0]!.host, port: hosts[0]!.port, ...(routed ? { hosts } : {}) };
}

function readUsers(raw: unknown, path: string): Map<string, UserConfig> {
  const out = new Map<string, UserConfig>();
  for (const [name, entry] of Object.entries(tableAt(raw, "[users]", path))) {
    const u = checked(userSchema, entry, `users.${name}`, USER_KEYS, path);
    out.set(name, { name, ...u });
  }
  return out;
}

function tableAt(v: unknown, what: string, path: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ConfigError(`${what} in ${path} must be a section of keys, not ${JSON.stringify(v)}`, { key: what, source: "file", origin: path });
  }
  return v as Record<string, unknown>;
}

function checked<T extends z.ZodTypeAny>(schema: T, raw: unknown, where: string, keys: readonly string[], path: string): z.output<T> {
  const table = tableAt(raw, `[${where}]`, path);
  const r = schema.safeParse(table);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    throw new ConfigError(`unknown key ${key} in [${where}] of ${path}${suggestion(nearest(key, keys), "", "")}`, {
      key: `${where}.${key}`,
      source: "file",
      origin: path,
    });
  }
  const field = String(issue.path[0] ?? "");
  const allowed = issue.code === "custom" ? issue.message : (ALLOWED[field] ?? issue.message);
  const value = table[field];
  throw ConfigError.invalid(`${where}.${field}`, value, "file", path, allowed, field === "password");
}

function suggestion(near: string | null, open: string, close: string): string {
  return near === null ? "" : `; did you mean ${open}${near}${close}?`;
}
