// The Config: defaults, then the TOML file, then PGBUN_* environment variables, then flags, each overriding the one before.

import { parseHba } from "./hba-file.ts";
import { parseArgs, type ParsedArgs } from "./argv.ts";
import { parseAuthFile, readSettingFile } from "./auth-file.ts";
import { ConfigError, envName, flagName, type ConfigSource } from "./errors.ts";
import { readConfigFile, type ConfigFile } from "./file.ts";
import { NOT_IMPLEMENTED, readPgbouncerIni, type IniConfig } from "./pgbouncer-ini.ts";
import { readTls } from "./tls.ts";
import { describeAllowed, SETTING_KEYS, SETTINGS, zodFor, type Config, type DatabaseConfig, type Settings, type UserConfig } from "./schema.ts";
import { parseUpstream } from "./upstream.ts";
import { coerce, emptyMeansUnset } from "./values.ts";

export interface LoadInputs {
  argv: readonly string[];
  env: Record<string, string | undefined>;
  cwd: string;
}

/**
 * Reads everything afresh, so a reload is the same call with the same inputs. --help and --version are ignored here;
 * cli.ts answers them before any config is needed.
 */
export function loadConfig(inputs: LoadInputs): Config {
  return configFromParsed(parseArgs(inputs.argv), inputs.env, inputs.cwd);
}

export function configFromParsed(args: ParsedArgs, env: Record<string, string | undefined>, cwd: string): Config {
  const file = configFile(args, env, cwd);
  const settings = resolveSettings(args, env, file?.pgbun ?? {}, file?.path ?? "");
  const databases = new Map(file?.databases);
  const users = new Map(file?.users);

  const envUpstream = nonEmpty(env.PGBUN_UPSTREAM);
  const upstreams: Array<[string, ConfigSource]> =
    args.upstream.length > 0 ? args.upstream.map((u) => [u, "flag"]) : envUpstream !== undefined ? [[envUpstream, "env"]] : [];
  for (const [text, source] of upstreams) {
    const up = parseUpstream(text, source);
    // The command line outranks the file: its address and login replace a same-named database's, its other keys stay.
    const { password: _, ...fileDatabase } = databases.get(up.database.name) ?? up.database;
    databases.set(up.database.name, { ...fileDatabase, ...up.database });
    users.set(up.user.name, { ...users.get(up.user.name), ...up.user });
  }

  if (databases.size === 0) {
    const where = file === null ? "a --config file" : file.path;
    throw new ConfigError(
      `no database to pool: pass --upstream postgres://USER:PASSWORD@HOST:PORT/DB, or add a [databases.NAME] section with host, port and dbname to ${where}`,
    );
  }
  const notices = [...(file !== null && "notices" in file ? (file as IniConfig).notices : []), ...unenforced(settings, databases, users)];
  return { settings, databases, users, source: { configFile: file?.path ?? null }, tls: readTls(settings, cwd), ...authFiles(settings, cwd), notices };
}

/**
 * The file the settings come from: --config (TOML, or PgBouncer's ini when it ends in .ini), or --pgbouncer-ini; the
 * same from PGBUN_CONFIG and PGBUN_PGBOUNCER_INI when no flag names one.
 */
function configFile(args: ParsedArgs, env: Record<string, string | undefined>, cwd: string): ConfigFile | null {
  if (args.config !== undefined && args.pgbouncerIni !== undefined) {
    throw new ConfigError("--config and --pgbouncer-ini both name a config file: give one", { key: "config" });
  }
  const read = (given: string, source: ConfigSource, ini: boolean) => (ini || /\.ini$/i.test(given) ? readPgbouncerIni(given, source, cwd) : readConfigFile(given, source, cwd));
  if (args.pgbouncerIni !== undefined) return read(args.pgbouncerIni, "flag", true);
  if (args.config !== undefined) return read(args.config, "flag", false);
  const envIni = nonEmpty(env.PGBUN_PGBOUNCER_INI);
  const envConfig = nonEmpty(env.PGBUN_CONFIG);
  if (envIni !== undefined && envConfig !== undefined) {
    throw new ConfigError("PGBUN_CONFIG and PGBUN_PGBOUNCER_INI both name a config file: set one", { key: "config" });
  }
  if (envIni !== undefined) return read(envIni, "env", true);
  if (envConfig !== undefined) return read(envConfig, "env", false);
  return null;
}

/** auth_file and auth_hba_file, read with the config so that a reload re-reads them and a bad one is refused like a bad setting. */
function authFiles(s: Settings, cwd: string): Pick<Config, "authFile" | "hba"> {
  if (!/^0?[0-7]{3}$/.test(s.unix_socket_mode.trim())) {
    throw new ConfigError(`invalid value ${JSON.stringify(s.unix_socket_mode)} for unix_socket_mode: expected an octal file mode such as 0777 or 0700`, {
      key: "unix_socket_mode",
      value: s.unix_socket_mode,
    });
  }
  const out: Pick<Config, "authFile" | "hba"> = {};
  if (s.auth_file !== "") {
    const f = readSettingFile("auth_file", s.auth_file, cwd);
    out.authFile = parseAuthFile(f.text, f.path);
  }
  if (s.auth_type === "hba") {
    if (s.auth_hba_file === "") {
      throw new ConfigError("auth_type = hba needs the rules: set auth_hba_file (--auth-hba-file) to a file in pg_hba.conf format", { key: "auth_hba_file" });
    }
    const f = readSettingFile("auth_hba_file", s.auth_hba_file, cwd);
    out.hba = parseHba(f.text, f.path);
  }
  return out;
}

interface Candidate {
  raw: unknown;
  source: ConfigSource;
  origin: string;
}

/** Aliases by the setting they stand for: checked after the setting's own name at each level. */
const ALIASES: Partial<Record<keyof Settings, string>> = { default_pool_size: "pool_size" };

function resolveSettings(args: ParsedArgs, env: Record<string, string | undefined>, section: Record<string, unknown>, path: string): Settings {
  const out: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) {
    const spec = SETTINGS[key];
    const c = fromFlags(key, args) ?? fromEnv(key, env) ?? (section[key] !== undefined ? { raw: section[key], source: "file", origin: path } : null);
    if (c === null) {
      // A copy, so that no Config shares the default lists and addresses with another.
      out[key] = structuredClone(spec.default);
      continue;
    }
    const parsed = zodFor(spec).safeParse(coerce(spec, c.raw));
    if (!parsed.success) throw ConfigError.invalid(key, c.raw, c.source, c.origin, describeAllowed(spec));
    out[key] = parsed.data;
  }
  return out as unknown as Settings;
}

function fromFlags(key: keyof Settings, args: ParsedArgs): Candidate | null {
  for (const name of namesOf(key)) {
    const raw = args.flags.get(name);
    if (raw !== undefined) return { raw, source: "flag", origin: flagName(name) };
  }
  return null;
}

function fromEnv(key: keyof Settings, env: Record<string, string | undefined>): Candidate | null {
  for (const name of namesOf(key)) {
    const raw = env[envName(name)];
    if (raw === undefined || (raw.trim() === "" && emptyMeansUnset(SETTINGS[key]))) continue;
    return { raw, source: "env", origin: envName(name) };
  }
  return null;
}

function namesOf(key: keyof Settings): string[] {
  const alias = ALIASES[key];
  return alias === undefined ? [key] : [key, alias];
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === "" ? undefined : s;
}

/** Settings pgbun accepts with PgBouncer's names but does not carry out yet: set away from their defaults, each is said once. */
const UNENFORCED = ["max_db_connections", "reserve_pool_size", "server_login_retry", "tcp_keepalive", "log_pooler_errors", "application_name_add_host"] as const;

function unenforced(settings: Settings, databases: Map<string, DatabaseConfig>, users: Map<string, UserConfig>): string[] {
  const out: string[] = [];
  for (const key of UNENFORCED) {
    if (settings[key] !== SETTINGS[key].default) out.push(`${key} = ${String(settings[key])} is not implemented: ${NOT_IMPLEMENTED[key]}`);
  }
  for (const d of databases.values()) {
    if (d.max_db_connections) out.push(`[databases.${d.name}] max_db_connections is not implemented: ${NOT_IMPLEMENTED.max_db_connections}`);
  }
  for (const u of users.values()) {
    if (u.max_user_connections) out.push(`[users.${u.name}] max_user_connections is not implemented: ${NOT_IMPLEMENTED.max_user_connections}`);
  }
  return out;
}
