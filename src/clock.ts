// A coarse clock the janitor advances each tick: timeouts are in seconds, so hot paths need not read the time.

export const clock = { now: Date.now() };
