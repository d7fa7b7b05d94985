// The version, read from package.json at build time so a compiled binary carries it.

import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
