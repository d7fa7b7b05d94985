// Test preload: bun ignores bunfig timeouts, so set the default here; clean up temp folders once the run ends.
import { afterAll, setDefaultTimeout } from "bun:test";
import { runAtEnd } from "./harness/cleanup.ts";

setDefaultTimeout(60_000);
afterAll(runAtEnd);
