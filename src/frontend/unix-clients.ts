// Which clients came in over the Unix socket (unix_socket_dir): hba "local" lines are theirs, and they have no address.

const viaUnix = new WeakSet<object>();

export function markUnixClient(c: object): void {
  viaUnix.add(c);
}

export function cameViaUnixSocket(c: object): boolean {
  return viaUnix.has(c);
}
