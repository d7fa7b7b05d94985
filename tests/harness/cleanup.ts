// Work to do when the test run ends (bun test does not fire process "exit" handlers): temp folders, stray servers.

const tasks: Array<() => void> = [];

export function atEnd(task: () => void): void {
  tasks.push(task);
}

export function runAtEnd(): void {
  for (const t of tasks.splice(0).reverse()) {
    try {
      t();
    } catch {
      /* best effort: the run is over */
    }
  }
}

process.on("exit", runAtEnd);
