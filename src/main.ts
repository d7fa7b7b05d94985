// Entry point: command line and config, the client listener, the janitor tick, and signals.

import { parseCli, formatConfigError } from "./cli.ts";
import { ConfigError } from "./config/errors.ts";
import { listen } from "./frontend/listener.ts";
import { configureLog, log } from "./log.ts";
import { startJanitor } from "./pool/janitor.ts";
import { Registry } from "./pool/registry.ts";

function main(): void {
  let action;
  try {
    action = parseCli(process.argv.slice(2), process.env, process.cwd());
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
  configureLog({ level: s.log_level, format: s.log_format });
  if (s.auth_type === "trust") {
    log.warn("main", "auth_type is trust: ANY client that can reach the listener logs in WITHOUT a password; use only for local development");
  }
  const registry = new Registry(config);
  let server;
  try {
    server = listen(registry, s.listen.host, s.listen.port);
  } catch (err) {
    process.stderr.write(
      `pgbun: cannot listen on ${s.listen.host}:${s.listen.port}: ${(err as Error).message}; choose another address with --listen or listen in the config\n`,
    );
    process.exit(1);
  }
  const stopJanitor = startJanitor(registry);
  process.stdout.write(`pgbun listening on ${s.listen.host}:${server.port}\n`);
  log.info("main", "started", { listen: `${s.listen.host}:${server.port}`, pool_mode: s.pool_mode, databases: [...config.databases.keys()].join(",") });

  const stop = (signal: string) => {
    log.info("main", "stopping", { signal });
    server.stop(true);
    stopJanitor();
    process.exit(0);
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main();
