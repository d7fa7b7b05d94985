// Entry point: command line and config, then the running process and its signals.

import { formatConfigError, parseCli } from "./cli.ts";
import { ConfigError } from "./config/errors.ts";
import { Lifecycle } from "./lifecycle.ts";
import { log } from "./log.ts";
import { superviseWorkers, workerRole } from "./workers.ts";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let action;
  try {
    action = parseCli(argv, process.env, process.cwd());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(formatConfigError(err) + "\n");
      process.exit(2);
    }
    throw err;
  }
  if (action.kind !== "run") {
    process.stdout.write(action.text + "\n");
    process.exit(0);
  }
  const config = action.config;
  const s = config.settings;
  const role = workerRole(process.env, s);
  if (s.workers > 1 && role === null) {
    await superviseWorkers(s);
    return;
  }
  const app = new Lifecycle(config, argv, process.cwd(), role);
  // Settings that pgbun does not carry out (from a pgbouncer.ini, or PgBouncer's names in its own config), each said
  // once, with what pgbun does instead: nothing given is silently ignored.
  if (role === null || role.index === 0) for (const n of config.notices ?? []) log.warn("config", n);
  if (s.auth_type === "trust") {
    log.warn("main", "auth_type is trust: ANY client that can reach the listener logs in WITHOUT a password; use only for local development");
  }
  // Signals are handled before anyone can learn the port: a SIGHUP right after "listening" must reload, not kill.
  process.on("SIGHUP", () => app.reload());
  process.on("SIGTERM", () => app.gracefulStop());
  process.on("SIGINT", () => {
    log.info("main", "SIGINT: closing at once");
    app.exit(0);
  });
  let port: number;
  try {
    port = app.start();
  } catch (err) {
    process.stderr.write(
      `pgbun: cannot listen on ${s.listen.host}:${s.listen.port} (or stats_listen): ${(err as Error).message}; choose another address with --listen / --stats-listen\n`,
    );
    process.exit(1);
  }
  let unixPath: string | null = null;
  try {
    unixPath = await app.listenUnix(port);
  } catch (err) {
    process.stderr.write(`pgbun: cannot listen on a Unix socket in ${s.unix_socket_dir}: ${(err as Error).message}; fix unix_socket_dir (--unix-socket-dir), or set it to "" to listen on TCP only\n`);
    app.exit(1);
  }
  // Workers stay quiet: their supervisor prints the one line once all of them listen.
  if (role === null) process.stdout.write(`pgbun listening on ${s.listen.host}:${port}\n`);
  if (unixPath !== null) process.stdout.write(`pgbun listening on Unix socket ${unixPath}\n`);
  if (app.httpPort !== null) process.stdout.write(`pgbun stats on http://${s.stats_listen!.host}:${app.httpPort}\n`);
  log.info("main", "started", { listen: `${s.listen.host}:${port}`, pool_mode: s.pool_mode, databases: [...config.databases.keys()].join(",") });

}

void main();
