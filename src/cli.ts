// The command line: argv to a Config to run, or the --help and --version texts.

import pkg from "../package.json";
import { parseArgs } from "./config/argv.ts";
import { envName, flagName } from "./config/errors.ts";
import { configFromParsed } from "./config/load.ts";
import { SETTINGS, type Config, type SettingSpec } from "./config/schema.ts";
import { formatAddress } from "./config/values.ts";

export { ConfigError, formatConfigError } from "./config/errors.ts";

export type CliAction = { kind: "run"; config: Config } | { kind: "help"; text: string } | { kind: "version"; text: string };

/** Throws ConfigError; main.ts prints it with formatConfigError and exits 2. */
export function parseCli(argv: string[], env: Record<string, string | undefined>, cwd: string): CliAction {
  const args = parseArgs(argv);
  if (args.help) return { kind: "help", text: helpText() };
  if (args.version) return { kind: "version", text: `pgbun ${pkg.version}` };
  return { kind: "run", config: configFromParsed(args, env, cwd) };
}

export function helpText(): string {
  const lines = [
    `pgbun ${pkg.version}: a PostgreSQL connection pooler on Bun`,
    "",
    "Usage:",
    "  pgbun --upstream postgres://USER:PASSWORD@HOST:5432/DB [--pool-mode transaction] [--pool-size 20]",
    "  pgbun --config pgbun.toml",
    "  pgbun --pgbouncer-ini /etc/pgbouncer/pgbouncer.ini",
    "",
    "Options:",
    ...entry("--config PATH", "TOML file with [pgbun], [databases.NAME], [users.NAME]; relative to the working directory", "env PGBUN_CONFIG"),
    ...entry("--pgbouncer-ini PATH", "PgBouncer's pgbouncer.ini, read as it is (%include, auth_file, auth_hba_file); --config with a .ini file does the same", "env PGBUN_PGBOUNCER_INI"),
    ...entry("--upstream URL", "pool this database; clients log in to it as USER with PASSWORD (both percent-encoded); repeat for more", "env PGBUN_UPSTREAM"),
    ...entry("--pool-size N", "the same as --default-pool-size", "env PGBUN_POOL_SIZE"),
    ...entry("-h, --help", "print this help"),
    ...entry("-v, --version", "print the version"),
    "",
    "Settings: each has PgBouncer's name and meaning, and is set by a flag, a PGBUN_* environment variable or a key in",
    "[pgbun]; a flag beats the environment, which beats the file. Times are seconds (fractions allowed), 0 turns a timeout",
    "off. On/off settings take --name=false or --no-name. Lists are comma-separated.",
    "",
  ];
  for (const [key, spec] of Object.entries(SETTINGS) as Array<[string, SettingSpec]>) {
    lines.push(...entry(`${flagName(key)} ${metavar(spec)}`, spec.help, `default ${formatDefault(spec)}, env ${envName(key)}`));
  }
  return lines.join("\n");
}

function entry(flag: string, meaning: string, extra?: string): string[] {
  return [`  ${flag}${extra === undefined ? "" : `  (${extra})`}`, `        ${meaning}`];
}

function metavar(spec: SettingSpec): string {
  switch (spec.kind) {
    case "enum":
      return (spec.values ?? []).join("|");
    case "int":
      return "N";
    case "seconds":
      return "SECONDS";
    case "bool":
      return "true|false";
    case "list":
      return "USER,...";
    case "address":
    case "address?":
      return "HOST:PORT";
    case "string":
      return "TEXT";
  }
}

export function formatDefault(spec: SettingSpec): string {
  const d = spec.default;
  if (d === null) return "off";
  if (Array.isArray(d)) return d.length === 0 ? "none" : d.join(",");
  if (typeof d === "object") return formatAddress(d as { host: string; port: number });
  // Quoted only where the text has spaces or may be empty; an enum's value reads better bare.
  if (typeof d === "string") return spec.kind === "string" ? JSON.stringify(d) : d;
  return String(d);
}
