// Builds the Config from defaults, the TOML file, PGBUN_* environment variables and flags, in rising precedence.

import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { z } from "zod";
import { ConfigError, envName, type ConfigSource } from "./errors.ts";
import {
  databaseSchema,
  describeAllowed,
  SETTINGS,
  userSchema,
  zodFor,
  type Config,
  type DatabaseConfig,
  type FieldSpec,
  type Settings,
  type UserConfig,
} from "./schema.ts";

export type FlagValue = string | boolean | number | Array<string | boolean | number>;

export interface ConfigInputs {
  /** Flags by snake_case key (--default-pool-size becomes default_pool_size). */
  flags: Map<string, FlagValue>;
  env: Record<string, string | undefined>;
  cwd: string;
}

/** Keys accepted besides the settings themselves. */
const ALIASES: Record<string, keyof Settings> = { pool_size: "default_pool_size" };
export const EXTRA_FLAGS = ["config", "upstream", "help", "version"];

export function loadConfig(inputs: ConfigInputs): Config {
  const { flags, env, cwd } = inputs;
  for (const key of flags.keys()) {
    if (!(key in SETTINGS) && !(key in ALIASES) && !EXTRA_FLAGS.includes(key)) {
      throw new ConfigError(`unknown flag --${key.replace(/_/g, "-")}${suggest(key, [...Object.keys(SETTINGS), ...Object.keys(ALIASES), ...EXTRA_FLAGS], "--")}; see --help`);
    }
  }
  const configFlag = last(flags.get("config"));
  const configPath = configFlag !== undefined ? String(configFlag) : env.PGBUN_CONFIG;
  const file: { table: Record<string, unknown>; path: string | null } = configPath ? readToml(configPath, cwd) : { table: {}, path: null };
  const section = asTable(file.table.pgbun, "[pgbun]");
  for (const key of Object.keys(section)) {
    if (!(key in SETTINGS) && !(key in ALIASES)) {
      throw new ConfigError(`unknown key "${key}" in [pgbun] of ${file.path}${suggest(key, Object.keys(SETTINGS), "")}`);
    }
  }
  for (const key of Object.keys(file.table)) {
    if (key !== "pgbun" && key !== "databases" && key !== "users") {
      throw new ConfigError(`unknown section [${key}] in ${file.path}: expected [pgbun], [databases.NAME] or [users.NAME]`);
    }
  }

  const settings = {} as Record<string, unknown>;
  for (const [key, spec] of Object.entries(SETTINGS) as Array<[keyof Settings, FieldSpec]>) {
    const alias = Object.keys(ALIASES).find((a) => ALIASES[a] === key);
    let raw: unknown;
    let source: ConfigSource = "default";
    const fromFlag = last(flags.get(key) ?? (alias ? flags.get(alias) : undefined));
    const fromEnv = env[envName(key)] ?? (alias ? env[envName(alias)] : undefined);
    const fromFile = section[key] ?? (alias ? section[alias] : undefined);
    if (fromFlag !== undefined) [raw, source] = [fromFlag, "flag"];
    else if (fromEnv !== undefined) [raw, source] = [fromEnv, "env"];
    else if (fromFile !== undefined) [raw, source] = [fromFile, "file"];
    else raw = spec.default;
    const value = coerce(spec, raw);
    const parsed = zodFor(spec).safeParse(value);
    if (!parsed.success) throw new ConfigError("invalid value", key, raw, source, describeAllowed(spec));
    settings[key] = parsed.data;
  }

  const databases = new Map<string, DatabaseConfig>();
  for (const [name, raw] of Object.entries(asTable(file.table.databases, "[databases]"))) {
    const d = checked(databaseSchema, raw, `databases.${name}`);
    databases.set(name, { name, ...d, dbname: d.dbname ?? name });
  }
  const users = new Map<string, UserConfig>();
  for (const [name, raw] of Object.entries(asTable(file.table.users, "[users]"))) {
    users.set(name, { name, ...checked(userSchema, raw, `users.${name}`) });
  }

  const upstream = last(flags.get("upstream")) ?? env.PGBUN_UPSTREAM;
  if (upstream !== undefined) addUpstream(String(upstream), databases, users, flags.has("upstream") ? "flag" : "env");

  if (databases.size === 0) {
    throw new ConfigError(
      "no database to pool: pass --upstream postgres://USER:PASSWORD@HOST:PORT/DB, or add a [databases.NAME] section to the --config file",
    );
  }
  return { settings: settings as unknown as Settings, databases, users, source: { configFile: file.path } };
}

function last(v: FlagValue | undefined): string | boolean | number | undefined {
  return Array.isArray(v) ? v[v.length - 1] : v;
}

function coerce(spec: FieldSpec, raw: unknown): unknown {
  const k = spec.kind;
  if (typeof raw === "string") {
    if (k === "int" || k === "seconds") return /^\s*-?\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : raw;
    if (k === "bool") {
      const v = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(v)) return true;
      if (["false", "0", "no", "off"].includes(v)) return false;
      return raw;
    }
    if (k === "list") return raw.split(",").map((s) => s.trim()).filter(Boolean);
    if (k === "address" || k === "address?") return raw === "" && k === "address?" ? null : parseAddress(raw);
  }
  if (typeof raw === "number" && k === "string") return String(raw);
  return raw;
}

function parseAddress(s: string): unknown {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s.trim());
  if (!m) return s;
  return { host: m[1] || "0.0.0.0", port: Number(m[2]) };
}

function addUpstream(
  url: string,
  databases: Map<string, DatabaseConfig>,
  users: Map<string, UserConfig>,
  source: ConfigSource,
): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError("invalid URL", "upstream", url, source, "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE");
  }
  const db = decodeURIComponent(u.pathname.replace(/^\//, ""));
  const user = decodeURIComponent(u.username);
  if (!/^postgres(ql)?:$/.test(u.protocol) || !db || !user) {
    throw new ConfigError("invalid URL", "upstream", url.replace(/:[^:@/]*@/, ":***@"), source, "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE");
  }
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  databases.set(db, {
    name: db,
    host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: u.port ? Number(u.port) : 5432,
    dbname: db,
    user,
    password,
  });
  if (!users.has(user)) users.set(user, { name: user, password });
}

function readToml(path: string, cwd: string): { table: Record<string, unknown>; path: string } {
  // Relative to the working directory: inside a compiled binary import.meta.dir is virtual.
  const full = isAbsolute(path) ? path : resolve(cwd, path);
  if (!existsSync(full)) throw new ConfigError(`config file ${full} does not exist (given by --config or PGBUN_CONFIG)`);
  try {
    return { table: Bun.TOML.parse(readFileSync(full, "utf8")) as Record<string, unknown>, path: full };
  } catch (err) {
    throw new ConfigError(`config file ${full} is not valid TOML: ${(err as Error).message}`);
  }
}

function asTable(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(`${what} must be a table`);
  return v as Record<string, unknown>;
}

function checked<T extends z.ZodTypeAny>(schema: T, raw: unknown, where: string): z.infer<T> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = [where, ...issue.path].join(".");
  if (issue.code === "unrecognized_keys") {
    return fail(`unknown key ${issue.keys.map((k) => `"${k}"`).join(", ")} in [${where}]`);
  }
  const value = issue.path.reduce<unknown>((o, p) => (o as Record<string, unknown> | undefined)?.[p as string], raw);
  throw new ConfigError(issue.message, key, value, "file", issue.message);
}

function fail(message: string): never {
  throw new ConfigError(message);
}

function suggest(key: string, known: string[], prefix: string): string {
  let best = "";
  let bestScore = 3;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestScore) [best, bestScore] = [k, d];
  }
  return best ? `; did you mean ${prefix}${prefix ? best.replace(/_/g, "-") : best}?` : "";
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
