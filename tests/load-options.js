// The flags shared by load-test.js and transaction-test.js: minimist flags, each also read from PGBUN_UPPER_SNAKE, checked.

import minimist from "minimist";

/** Every flag with its default; `null` means "not given" (the script decides). */
export const FLAGS = {
  mode: { default: "transaction", help: "pool mode to test: session, transaction or statement (database pgbun_<mode>)" },
  scenario: { default: "load", help: "load, boundary, idle or reconnect" },
  concurrency: { default: 50, help: "clients, one connection each" },
  duration: { default: 10, help: "seconds the load runs (10, 10s or 1m)" },
  rate: { default: 0, help: "target queries per second across all clients (0: as fast as they can)" },
  host: { default: "127.0.0.1", help: "pgbun's host" },
  port: { default: 6432, help: "pgbun's port" },
  database: { default: null, help: "database to connect to (default pgbun_<mode>)" },
  user: { default: "pgbun_user", help: "user clients log in as" },
  password: { default: "pgbun_pass", help: "its password" },
  "stats-url": { default: "http://127.0.0.1:6480", help: "pgbun's HTTP endpoint (GET /stats, POST /stats/reset-peak)" },
  out: { default: null, help: "also write the JSON result to this file" },
  "idle-gap": { default: 2, help: "idle scenario: seconds each client sleeps between transactions" },
  "reconnect-every": { default: 10, help: "reconnect scenario: queries per connection before reconnecting" },
  "direct-url": { default: null, help: "PostgreSQL itself, bypassing pgbun: used to terminate a server mid-query" },
  "client-idle-timeout-seconds": { default: null, help: "pgbun's client_idle_timeout (asked of its admin console when not given; 0 skips the check)" },
};

const NUMBERS = new Set(["concurrency", "duration", "rate", "port", "idle-gap", "reconnect-every", "client-idle-timeout-seconds"]);
const LIMITS = {
  concurrency: [1, 10000],
  duration: [0.1, 86400],
  rate: [0, 10000000],
  port: [1, 65535],
  "idle-gap": [0, 3600],
  "reconnect-every": [1, 10000000],
  "client-idle-timeout-seconds": [0, 86400],
};

export const envName = (flag) => "PGBUN_" + flag.toUpperCase().replace(/-/g, "_");

export class OptionError extends Error {}

function toNumber(flag, raw) {
  const text = String(raw).trim();
  // --duration also takes 30s or 2m, as people tend to write it.
  const m = /^(-?\d+(?:\.\d+)?)(s|m)?$/.exec(text);
  if (!m || (m[2] && flag !== "duration")) throw new OptionError(`--${flag} must be a number, not "${raw}"`);
  const n = Number(m[1]) * (m[2] === "m" ? 60 : 1);
  const [min, max] = LIMITS[flag];
  if (!(n >= min && n <= max)) throw new OptionError(`--${flag} must be from ${min} to ${max}, not ${raw}`);
  if ((flag === "concurrency" || flag === "port" || flag === "reconnect-every") && !Number.isInteger(n)) throw new OptionError(`--${flag} must be a whole number, not ${raw}`);
  return n;
}

/** Flags beat the environment, which beats the defaults. Throws OptionError naming the flag on a bad value. */
export function parseOptions(argv, env = process.env) {
  const args = minimist(argv, { string: Object.keys(FLAGS).filter((f) => !NUMBERS.has(f)), boolean: ["help"] });
  for (const key of Object.keys(args)) {
    if (key !== "_" && key !== "help" && !(key in FLAGS)) throw new OptionError(`unknown flag --${key}; see --help`);
  }
  if (args._.length > 0) throw new OptionError(`unexpected argument "${args._[0]}"; flags are --name value (see --help)`);
  const o = { help: args.help === true };
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const given = Array.isArray(args[flag]) ? args[flag].at(-1) : args[flag];
    const raw = given ?? env[envName(flag)] ?? spec.default;
    o[flag] = raw === null || raw === "" ? null : NUMBERS.has(flag) ? toNumber(flag, raw) : String(raw);
  }
  if (!["session", "transaction", "statement"].includes(o.mode)) throw new OptionError(`--mode must be session, transaction or statement, not "${o.mode}"`);
  if (!["load", "boundary", "idle", "reconnect"].includes(o.scenario)) throw new OptionError(`--scenario must be load, boundary, idle or reconnect, not "${o.scenario}"`);
  o.database ??= `pgbun_${o.mode}`;
  o["stats-url"] = o["stats-url"]?.replace(/\/+$/, "") ?? null;
  return o;
}

export function helpText(script, what) {
  const usage = [
    [`npx bun tests/${script} [flags]`, "from the repository, after npm ci"],
    ...(script === "load-test.js" ? [["npm run -s load-test -- [flags]", "the same; -s keeps npm's header off stdout"]] : []),
    [`docker compose run --rm test-runner ${script} [flags]`, "in the Docker stack"],
  ];
  const lines = [
    `${script}: ${what}`,
    "",
    "Usage:",
    ...usage.map(([cmd, note]) => `  ${cmd.padEnd(62)} ${note}`),
    "",
    "Flags (each also read from the environment variable shown):",
  ];
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const def = spec.default === null ? "" : ` (default ${spec.default})`;
    lines.push(`  --${flag.padEnd(29)} ${envName(flag).padEnd(36)} ${spec.help}${def}`);
  }
  return lines.join("\n");
}

export function pgbunUrl(o, database = o.database) {
  return `postgres://${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}@${o.host}:${o.port}/${encodeURIComponent(database)}`;
}

/** Parses the command line or exits 2 with one line naming the bad flag; prints help and exits 0 on --help. */
export function optionsOrExit(script, what) {
  try {
    const o = parseOptions(process.argv.slice(2));
    if (o.help) {
      process.stdout.write(helpText(script, what) + "\n");
      process.exit(0);
    }
    return o;
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    process.stderr.write(`${script}: ${err.message}\n`);
    process.exit(2);
  }
}
