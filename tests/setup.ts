// Test preload: bun ignores bunfig timeouts and applies setDefaultTimeout to the first file only, so package.json passes
// --timeout as well; this covers a single file run as `npx bun test tests/x.test.ts`. Temp folders are cleaned at the end.
import { afterAll, setDefaultTimeout } from "bun:test";
import { runAtEnd } from "./harness/cleanup.ts";

setDefaultTimeout(60_000);
afterAll(runAtEnd);
