// The virtual database names that open the admin console.

export const ADMIN_DATABASES = new Set(["pgbun", "pgbouncer"]);
