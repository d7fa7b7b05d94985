// Test preload: bun ignores bunfig timeouts, so set the default here.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
