// A helper process that outlives a killed test run: it kills the run's children, stops its PostgreSQL and removes its folders.

import type { FileSink } from "bun";

/** What to undo if the test process dies: SIGKILL a pid, run a command (pg_ctl stop), remove a folder; in that order. */
export interface Undo {
  kill?: number;
  run?: string[];
  rm?: string;
}

// bun test fires no "exit" handlers, and a run killed by a signal or a timeout fires nothing at all. The watchdog
// learns of the death from EOF on its stdin (the test process held the only write end), so it needs no polling.
const SCRIPT = `
const jobs = new Map();
const decoder = new TextDecoder();
let rest = "";
for await (const chunk of Bun.stdin.stream()) {
  rest += decoder.decode(chunk, { stream: true });
  for (let nl = rest.indexOf("\\n"); nl >= 0; nl = rest.indexOf("\\n")) {
    const line = rest.slice(0, nl);
    rest = rest.slice(nl + 1);
    try {
      const m = JSON.parse(line);
      if (m.forget) jobs.delete(m.forget);
      else jobs.set(m.key, m);
    } catch {}
  }
}
const all = [...jobs.values()];
for (const j of all) if (j.kill) try { process.kill(j.kill, "SIGKILL"); } catch {}
for (const j of all) if (j.run) try { Bun.spawnSync(j.run, { stdout: "ignore", stderr: "ignore", cwd: "/" }); } catch {}
for (const j of all) if (j.rm) try { require("node:fs").rmSync(j.rm, { recursive: true, force: true }); } catch {}
`;

let sink: FileSink | null = null;
let seq = 0;

function send(message: object): void {
  try {
    if (!sink) {
      // Its own session, so killing the test run's process group (Ctrl-C, a CI step timeout) leaves it alive to clean up.
      const proc = Bun.spawn([process.execPath, "-e", SCRIPT], {
        cwd: "/",
        detached: true,
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
      });
      proc.unref();
      sink = proc.stdin;
      sink.unref();
    }
    sink.write(JSON.stringify(message) + "\n");
    sink.flush();
  } catch {
    /* without a watchdog the end-of-run hooks still clean up a run that ends normally */
  }
}

/** Registers what to undo should this process die; the returned function cancels it once the work is undone normally. */
export function undoIfKilled(undo: Undo): () => void {
  const key = String(++seq);
  send({ key, ...undo });
  return () => send({ forget: key });
}
