// The one decision about a host after each health check: is it the primary, a replica, down, or a second primary that
// must get nothing (split brain)? Pure, with a table test; the cluster acts on it.

export interface RoleFacts {
  /** The cluster's primary before this check: none, this host, or another host whose own latest check succeeded or failed. */
  primary: "none" | "this" | "other-up" | "other-down";
  /** The host answered the check. */
  ok: boolean;
  /** The check failed in a way that says nothing about the host's health (too_many_connections). */
  inconclusive: boolean;
  /** pg_is_in_recovery() said true. */
  inRecovery: boolean;
  /** What the host's Patroni REST endpoint said of it; none when it has no patroni_url or the endpoint did not answer. */
  patroni: "leader" | "not-leader" | "none";
}

export type RoleDecision =
  /** Nothing to change (a failed check that proves nothing, or the primary still answering as one). */
  | "keep"
  /** The check failed: the host is down; if it was the primary, writes wait for a primary again. */
  | "down"
  /** A replica, as before or newly (a rejoined old primary). */
  | "replica"
  /** The cluster's primary is in recovery now: it was demoted; writes wait for a new primary. */
  | "demoted"
  /** This host becomes the primary: the first one found, or the new one after the old one went down. */
  | "adopt"
  /** It claims to be primary while the cluster's primary still answers as one: it gets nothing, and this is logged loudly. */
  | "conflict"
  /** It claims to be primary but Patroni says it is not the leader (yet): not trusted with writes. */
  | "unconfirmed";

export function decideRole(f: RoleFacts): RoleDecision {
  if (!f.ok) return f.inconclusive ? "keep" : "down";
  if (f.inRecovery) return f.primary === "this" ? "demoted" : "replica";
  if (f.patroni === "not-leader") return f.primary === "this" ? "demoted" : "unconfirmed";
  switch (f.primary) {
    case "this":
      return "keep";
    case "none":
    case "other-down":
      return "adopt";
    case "other-up":
      return "conflict";
  }
}
